"""``render-clip``: a synthetic video of the mannequin plus its exact ground-truth motion file."""

from __future__ import annotations

import platform
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from tar_core import __version__
from tar_core.body_model import BodyModel, load_body_model
from tar_core.errors import UsageError
from tar_core.motion_file import write_motion
from tar_core.synthetic.groundtruth import ClipSpec, GroundTruth, make_ground_truth
from tar_core.util.atomic import atomic_path

__all__ = ["motion_path_for", "render_clip"]

_FOURCC = {".mp4": "mp4v", ".mov": "mp4v", ".avi": "XVID", ".mkv": "XVID"}


def motion_path_for(video: str | Path) -> Path:
    """The ground-truth motion file written beside a rendered clip: ``CLIP.npz``."""
    return Path(video).with_suffix(".npz")


def render_clip(spec: ClipSpec, out_video: str | Path, body: BodyModel | None = None,
                progress: Callable[[int, int], None] | None = None) -> tuple[Path, Path, GroundTruth, dict]:
    """Render ``spec`` to ``out_video`` (mp4v .mp4, or XVID .avi) and write ``CLIP.npz`` beside it.

    Both files appear atomically. Returns (video path, motion path, ground truth, timings).
    """
    import cv2

    out_video = Path(out_video)
    suffix = out_video.suffix.lower()
    if suffix not in _FOURCC:
        raise UsageError(f"unsupported video extension {suffix!r}; use one of {', '.join(_FOURCC)}")
    body = body or load_body_model()
    t0 = time.perf_counter()
    gt = make_ground_truth(spec, body)
    t_gt = time.perf_counter() - t0

    from tar_core.synthetic.scene import render_frames

    with atomic_path(out_video, suffix=suffix) as tmp:  # the video appears only when all is written
        writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*_FOURCC[suffix]), spec.fps,
                                 (spec.width, spec.height))
        if not writer.isOpened():
            raise RuntimeError(f"OpenCV cannot write {suffix} video here")
        t1 = time.perf_counter()
        try:
            for img in render_frames(gt, body, progress=progress):
                writer.write(img[..., :3])
        finally:
            writer.release()
        t_render = time.perf_counter() - t1

        import bpy

        provenance = {
            "engine_version": __version__,
            "generator": "tar_core render-clip",
            "renderer": f"Blender {bpy.app.version_string} Cycles CPU, {spec.samples} samples, denoised",
            "motion": spec.motion,
            "seed": spec.seed,
            "frames": spec.frames,
            "size": [spec.width, spec.height],
            "fps": spec.fps,
            "camera_roll": spec.tilt,
            "backdrop": spec.backdrop,
            "occluders_requested": spec.occluders,
            "planted_feet": spec.planted_feet,
            "body_model": body.describe(),
            "body_model_sha256": body.data.sha256,
            "camera_center_world": np.round(gt.cam_center, 6).tolist(),
            "camera_rotation_world_to_cam": np.round(gt.R_wc, 8).tolist(),
            "appearance": gt.look,
            "video": out_video.name,
            "machine": platform.machine(),
        }
        motion_path = write_motion(motion_path_for(out_video), gt.motion(body, provenance))
    timings = {"ground_truth_s": t_gt, "render_s": t_render, "render_s_per_frame": t_render / spec.frames}
    return out_video, motion_path, gt, timings
