"""Synthetic training data: rendered clips cropped around the person, stored one ``.npz`` per clip.

``make_dataset`` renders clips (``tar_core.synthetic``) and writes ``clip_00000.npz``, ... with the crops and
their exact ground truth; it skips clips already written, so an interrupted run picks up where it stopped.
``ClipDataset`` reads those folders as a ``torch`` dataset of frame windows centred on every frame.

Keys of a clip file (F frames):

- ``crops`` (F, 256, 256, 3) uint8 RGB, square crops (``tar_core.cropping.crop``) of the full frames;
- ``center`` (F, 2) f32 and ``box_size`` (F,) f32, the crop boxes in full-image pixels;
- ``K`` (3, 3) f32 full-image intrinsics, ``image_size`` (2,) i32 as (width, height);
- ``poses`` (F, 72) f32 SMPL axis-angle in the camera frame, ``trans`` (F, 3) f32, ``betas`` (10,) f32;
- ``joints_cam`` (F, 24, 3) f32 metres, ``joints_2d`` (F, 24, 2) f32 full-image pixels;
- ``motion`` (str) and ``seed`` (int) of the clip's ``ClipSpec``;
- optional (files from before they existed lack them): ``tilt`` () f32 camera roll in radians, ``backdrop`` (str)
  and ``occluders`` () i32, the number of occluders drawn.

Each clip varies the motion (``MOTION_CYCLE``), body, clothing, lighting, a textured backdrop, the camera's
focal length (0.6-1.8 x ``default_focal``), roll (+-0.17 rad), height, distance and azimuth, and half the
clips have 1-2 partial occluders (see docs/synthetic.md).
"""

from __future__ import annotations

import bisect
import contextlib
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from .atomic import atomic_path
from .camera import CROP_SIZE
from .cropping import crop, normalize, square_box
from .rotations import axis_angle_to_matrix

__all__ = ["CLIP_KEYS", "MOTION_CYCLE", "ClipDataset", "clip_path", "make_dataset"]

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


def _render_clip(spec, body, video: Path | None = None) -> dict:
    """Ground truth, renders and crops of one clip, as the arrays of its file; ``video``: also keep the full
    frames there (mp4), e.g. to run the keypoints engine on the same clips."""
    from .synthetic.groundtruth import make_ground_truth
    from .synthetic.scene import render_frames

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
        for img, box in zip(render_frames(gt, body, backdrop=True), boxes, strict=True):
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


def _clip_spec(i: int, frames: int, size: int, seed: int, samples: int):
    """Clip ``i``'s ``ClipSpec``: its variety is drawn from its own seed, so it never depends on other clips."""
    from .camera import default_focal
    from .synthetic.groundtruth import ClipSpec

    clip_seed = seed * _SEED_STRIDE + i
    rng = np.random.default_rng([clip_seed, 3])
    focal = float(default_focal(size, size) * rng.uniform(0.6, 1.8))
    tilt = float(rng.uniform(-0.17, 0.17))
    occluders = 0 if rng.random() < 0.5 else int(rng.integers(1, 3))
    return ClipSpec(motion=MOTION_CYCLE[i % len(MOTION_CYCLE)], frames=frames, width=size, height=size,
                    seed=clip_seed, samples=samples, focal=focal, tilt=tilt, backdrop="textured",
                    occluders=occluders)  # fmt: skip


def make_dataset(
    out_dir: str | Path,
    clips: int,
    frames: int,
    size: int = 256,
    seed: int = 0,
    samples: int = 4,
    progress: Callable[[int, int], None] | None = None,
    videos: bool = False,
) -> list[Path]:
    """Render ``clips`` clips of ``frames`` frames (``size`` x ``size`` renders) into ``out_dir``.

    Clip ``i`` plays motion ``MOTION_CYCLE[i % 6]`` with seed ``s = seed * 100003 + i``; from ``s`` alone it also
    draws a focal length of ``default_focal * U(0.6, 1.8)``, a camera roll ``U(-0.17, 0.17)`` rad and 0
    occluders (probability 0.5) or 1-2, over a textured backdrop. A clip whose file already exists and loads is
    skipped. Files are written atomically. ``videos``: also keep each clip's full frames as ``clip_<i>.mp4``
    (for ``evaluate --engine keypoints``). Returns the paths of all ``clips`` clips.
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
                from .body_model import load_body_model

                body = load_body_model()
            spec = _clip_spec(i, frames, size, seed, samples)
            arrays = _render_clip(spec, body, video)
            with atomic_path(path, suffix=".npz") as tmp, open(tmp, "wb") as f:
                np.savez_compressed(f, **arrays)
        paths.append(path)
        if progress:
            progress(i + 1, clips)
    return paths


class ClipDataset(Dataset):
    """Windows of ``seq_len`` crops centred on every frame of the clips in ``dirs``, with the middle frame's
    targets. Frames before a clip's start or after its end repeat its first / last frame.

    An item is a dict of float32 tensors: ``images`` (T, 3, 256, 256) ImageNet-normalised; for the middle frame
    ``joints_2d`` (24, 2) full-image pixels, ``joints_2d_conf`` (24,), ``joints_3d`` (24, 3) camera frame,
    ``has_3d`` (), ``rotmat`` (24, 3, 3), ``betas`` (10,), ``has_smpl`` (), ``center`` (2,), ``size`` (),
    ``focal`` () and ``principal`` (2,).
    """

    cache_bytes = 1 << 30  # decompressed crops kept in memory (a 32-frame clip is 6.3 MB)

    def __init__(self, dirs: Sequence[str | Path] | str | Path, seq_len: int = 9):
        if isinstance(dirs, str | Path):
            dirs = [dirs]
        if seq_len < 1:
            raise ValueError(f"seq_len must be >= 1, got {seq_len}")
        self.seq_len = int(seq_len)
        self.paths: list[Path] = []
        for d in dirs:
            found = sorted(Path(d).glob("clip_*.npz"))
            if not found:
                raise ValueError(f"no clip_*.npz files in {str(d)!r}")
            self.paths.extend(found)
        self.lengths = []
        for p in self.paths:
            with np.load(p, allow_pickle=False) as z:
                self.lengths.append(int(z["box_size"].shape[0]))
        self.starts = np.concatenate([[0], np.cumsum(self.lengths)]).astype(np.int64)
        self._cache: OrderedDict[int, dict] = OrderedDict()

    def __len__(self) -> int:
        return int(self.starts[-1])

    def locate(self, k: int) -> tuple[int, int]:
        """Dataset index -> (clip number, frame within the clip)."""
        n = len(self)
        if k < 0:
            k += n
        if not 0 <= k < n:
            raise IndexError(f"index {k} out of range for {n} frames")
        c = bisect.bisect_right(self.starts, k) - 1
        return c, k - int(self.starts[c])

    def _clip(self, c: int) -> dict:
        if c in self._cache:
            self._cache.move_to_end(c)
            return self._cache[c]
        with np.load(self.paths[c], allow_pickle=False) as z:
            clip = {k: z[k] for k in ("crops", "center", "box_size", "K", "poses", "betas", "joints_cam",
                                      "joints_2d")}  # fmt: skip
        self._cache[c] = clip
        # Decompressing a clip costs ~5x an item; keep as many as fit the byte budget (random sampling
        # touches every clip), at least the newest one.
        while len(self._cache) > 1 and sum(v["crops"].nbytes for v in self._cache.values()) > self.cache_bytes:
            self._cache.popitem(last=False)
        return clip

    def __getitem__(self, k: int) -> dict[str, torch.Tensor]:
        c, f = self.locate(int(k))
        clip = self._clip(c)
        n = self.lengths[c]
        window = np.clip(f + np.arange(self.seq_len) - self.seq_len // 2, 0, n - 1)
        K = clip["K"]

        def t(x) -> torch.Tensor:
            return torch.as_tensor(np.asarray(x, dtype=np.float32))

        return {
            "images": normalize(clip["crops"][window]),
            "joints_2d": t(clip["joints_2d"][f]),
            "joints_2d_conf": torch.ones(clip["joints_2d"].shape[1], dtype=torch.float32),
            "joints_3d": t(clip["joints_cam"][f]),
            "has_3d": torch.tensor(1.0),
            "rotmat": t(axis_angle_to_matrix(clip["poses"][f].reshape(-1, 3).astype(np.float64))),
            "betas": t(clip["betas"]),
            "has_smpl": torch.tensor(1.0),
            "center": t(clip["center"][f]),
            "size": t(clip["box_size"][f]),
            "focal": t(K[0, 0]),
            "principal": t(K[:2, 2]),
        }
