"""Synthetic training data: rendered clips cropped around the person, stored one ``.npz`` per clip.

``make_dataset`` renders clips (``tar_core.synthetic``) and writes ``clip_00000.npz``, ... with the crops and
their exact ground truth; it skips clips already written, so an interrupted run picks up where it stopped.
``ClipDataset`` reads those folders as a ``torch`` dataset of frame windows centred on every frame.

Keys of a clip file (F frames):

- ``crops`` (F, 256, 256, 3) uint8 RGB, square crops (``tar_core.geometry.cropping.crop``) of the full frames;
- ``center`` (F, 2) f32 and ``box_size`` (F,) f32, the crop boxes in full-image pixels;
- ``K`` (3, 3) f32 full-image intrinsics, ``image_size`` (2,) i32 as (width, height);
- ``poses`` (F, 72) f32 SMPL axis-angle in the camera frame, ``trans`` (F, 3) f32, ``betas`` (10,) f32;
- ``joints_cam`` (F, 24, 3) f32 metres, ``joints_2d`` (F, 24, 2) f32 full-image pixels;
- ``motion`` (str) and ``seed`` (int) of the clip's ``ClipSpec``;
- optional (files from before they existed lack them): ``tilt`` () f32 camera roll in radians, ``backdrop`` (str)
  and ``occluders`` () i32, the number of occluders drawn; ``planted_feet`` () bool, whether the bodies travel
  by their standing foot (absent in files made before the option: they do not).

Each clip varies the motion (``MOTION_CYCLE``), body, clothing, lighting, a textured backdrop, the camera's
focal length (0.6-1.8 x ``default_focal``), roll (+-0.17 rad), height, distance and azimuth, and half the
clips have 1-2 partial occluders (see docs/synthetic.md).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from tar_core.geometry.camera import CROP_SIZE
from tar_core.geometry.cropping import crop, square_box
from tar_core.util.atomic import atomic_path

__all__ = ["CLIP_KEYS", "MOTION_CYCLE", "clip_path", "make_dataset"]

MOTION_CYCLE = ("walk", "turn", "arms", "squat", "random", "random")
CLIP_KEYS = ("crops", "center", "box_size", "K", "image_size", "poses", "trans", "betas", "joints_cam",
             "joints_2d", "motion", "seed")  # fmt: skip
BOX_SCALE = 1.2
_SEED_STRIDE = 100003


def clip_path(out_dir: str | Path, i: int) -> Path:
    """Where clip ``i`` of a dataset folder lives."""
    return Path(out_dir) / f"clip_{i:05d}.npz"


def _loads(path: Path) -> bool:
    """True when ``path`` is a complete clip file (all keys present and readable)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            if not all(k in z.files for k in CLIP_KEYS):
                return False
            n = len(z["center"])
            return n > 0 and z["crops"].shape == (n, CROP_SIZE, CROP_SIZE, 3)
    except Exception:
        return False


def _render_clip(spec, body, video: Path | None = None, threads: int = 0, fast_denoise: bool = True) -> dict:
    """Ground truth, renders and crops of one clip, as the arrays of its file; ``video``: also keep the full
    frames there (mp4), e.g. to run the keypoints engine on the same clips; ``threads``, ``fast_denoise``: as
    ``render_frames``."""
    from tar_core.synthetic.groundtruth import make_ground_truth
    from tar_core.synthetic.scene import render_frames

    gt = make_ground_truth(spec, body)
    uv = gt.verts_cam_2d  # (F, V, 2)
    boxes = [square_box(np.concatenate([p.min(0), p.max(0)]), BOX_SCALE) for p in uv]
    crops = []
    with contextlib.ExitStack() as stack:
        writer = None
        if video is not None:
            tmp = stack.enter_context(atomic_path(video, suffix=".mp4"))
            writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), spec.fps, (spec.width, spec.height))
            if not writer.isOpened():
                raise RuntimeError(f"cannot write {video}")
            stack.callback(writer.release)
        frames = render_frames(gt, body, backdrop=True, threads=threads, fast_denoise=fast_denoise)
        for img, box in zip(frames, boxes, strict=True):
            bgr = np.ascontiguousarray(img[..., :3])
            if writer is not None:
                writer.write(bgr)
            crops.append(crop(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), box, CROP_SIZE))
    return {
        "crops": np.stack(crops).astype(np.uint8),
        "center": np.stack([b.center for b in boxes]).astype(np.float32),
        "box_size": np.array([b.size for b in boxes], dtype=np.float32),
        "K": np.asarray(gt.K, dtype=np.float32),
        "image_size": np.array([spec.width, spec.height], dtype=np.int32),
        "poses": np.asarray(gt.poses_cam, dtype=np.float32),
        "trans": np.asarray(gt.trans_cam, dtype=np.float32),
        "betas": np.asarray(gt.betas, dtype=np.float32),
        "joints_cam": np.asarray(gt.joints_cam, dtype=np.float32),
        "joints_2d": np.asarray(gt.joints_2d, dtype=np.float32),
        "motion": np.array(spec.motion),
        "seed": np.array(spec.seed, dtype=np.int64),
        "tilt": np.array(spec.tilt, dtype=np.float32),
        "backdrop": np.array(spec.backdrop),
        "occluders": np.array(len(gt.look.get("occluders", [])), dtype=np.int32),
    }


def _clip_spec(i: int, frames: int, size: int, seed: int, samples: int, planted_feet: bool = False):
    """Clip ``i``'s ``ClipSpec``: its variety is drawn from its own seed, so it never depends on other clips."""
    from tar_core.geometry.camera import default_focal
    from tar_core.synthetic.groundtruth import ClipSpec

    clip_seed = seed * _SEED_STRIDE + i
    rng = np.random.default_rng([clip_seed, 3])
    focal = float(default_focal(size, size) * rng.uniform(0.6, 1.8))
    tilt = float(rng.uniform(-0.17, 0.17))
    occluders = 0 if rng.random() < 0.5 else int(rng.integers(1, 3))
    return ClipSpec(motion=MOTION_CYCLE[i % len(MOTION_CYCLE)], frames=frames, width=size, height=size,
                    seed=clip_seed, samples=samples, focal=focal, tilt=tilt, backdrop="textured",
                    occluders=occluders, planted_feet=planted_feet)  # fmt: skip


def make_dataset(
    out_dir: str | Path,
    clips: int,
    frames: int,
    size: int = 256,
    seed: int = 0,
    samples: int = 4,
    progress: Callable[[int, int], None] | None = None,
    videos: bool = False,
    threads: int = 0,
    fast_denoise: bool = True,
    planted_feet: bool = False,
) -> list[Path]:
    """Render ``clips`` clips of ``frames`` frames (``size`` x ``size`` renders) into ``out_dir``.

    Clip ``i`` plays motion ``MOTION_CYCLE[i % 6]`` with seed ``s = seed * 100003 + i``; from ``s`` alone it also
    draws a focal length of ``default_focal * U(0.6, 1.8)``, a camera roll ``U(-0.17, 0.17)`` rad and 0
    occluders (probability 0.5) or 1-2, over a textured backdrop. A clip whose file already exists and loads is
    skipped. Files are written atomically. ``videos``: also keep each clip's full frames as ``clip_<i>.mp4``
    (for ``evaluate --engine keypoints``). ``threads`` > 0: Cycles threads (0: one per core); ``fast_denoise``
    (default): OIDN's fast mode, a third of the CPU time per frame. ``planted_feet``: bodies travel by their
    standing foot (``ClipSpec.planted_feet``; the clip file says so in ``planted_feet``). Returns the paths of
    all ``clips`` clips.
    """
    if clips < 0 or frames < 1 or size < 1:
        raise ValueError(f"need clips >= 0, frames >= 1 and size >= 1, got {clips}, {frames}, {size}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    body = None
    paths = []
    for i in range(clips):
        path = clip_path(out_dir, i)
        video = path.with_suffix(".mp4") if videos else None
        if not _loads(path) or (video is not None and not video.is_file()):
            if body is None:
                from tar_core.body_model import load_body_model

                body = load_body_model()
            spec = _clip_spec(i, frames, size, seed, samples, planted_feet)
            arrays = {**_render_clip(spec, body, video, threads, fast_denoise), "planted_feet": np.array(planted_feet)}
            with atomic_path(path, suffix=".npz") as tmp, open(tmp, "wb") as f:
                np.savez_compressed(f, **arrays)
        paths.append(path)
        if progress:
            progress(i + 1, clips)
    return paths


