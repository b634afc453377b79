"""Read motion files (``tar-motion`` v1, see docs/motion-file.md) for import, numpy only.

The engine's ``tar_core.motion_file`` writes and fully validates the format; Blender's Python
has no engine, so this reader checks what the importer relies on and names the bad key.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["MotionData", "MotionError", "read_motion"]


class MotionError(ValueError):
    def __init__(self, path, key: str, message: str):
        super().__init__(f"{Path(path).name}: {key}: {message}")
        self.key = key


@dataclass
class MotionData:
    path: str
    poses: np.ndarray  # (N, 72) SMPL axis-angle, global orientation in the camera frame
    trans: np.ndarray  # (N, 3) camera frame (OpenCV axes), metres
    betas: np.ndarray  # (10,)
    frame_times: np.ndarray  # (N,) seconds
    fps: float
    image_size: tuple[int, int]  # width, height
    K: np.ndarray  # (3, 3)
    joints_cam: np.ndarray  # (N, 24, 3)
    joints_2d: np.ndarray  # (N, 24, 2)
    body_model: str  # smpl | mannequin
    gender: str
    track_id: int
    engine: str
    provenance: dict
    contacts: np.ndarray | None = None  # (N, 4) 0..1 left heel, left toe, right heel, right toe
    ground_plane: np.ndarray | None = None  # (4,) unit normal (up) and d, camera frame: n . p + d = 0

    @property
    def num_frames(self) -> int:
        return int(self.poses.shape[0])


_SHAPES = {"poses": (72,), "trans": (3,), "joints_cam": (24, 3), "joints_2d": (24, 2)}


def _optional(path, a: dict, n: int):
    """The optional ``contacts`` (N, 4) in 0..1 and ``ground_plane`` (4,) with a unit normal, or None."""
    contacts = a.get("contacts")
    if contacts is not None:
        if contacts.shape != (n, 4) or contacts.dtype.kind != "f" or not np.all((contacts >= 0) & (contacts <= 1)):
            raise MotionError(path, "contacts", f"expected (N, 4) values in 0..1, got {contacts.shape}")
        contacts = contacts.astype(np.float64)
    ground = a.get("ground_plane")
    if ground is not None:
        if ground.shape != (4,) or not np.all(np.isfinite(ground)) or abs(np.linalg.norm(ground[:3]) - 1) > 1e-3:
            raise MotionError(path, "ground_plane", "expected (4,): a unit normal and an offset")
        ground = ground.astype(np.float64)
    return contacts, ground


def read_motion(path: str | Path) -> MotionData:
    """Load a motion file with ``allow_pickle=False``; raises MotionError naming the bad key."""
    path = Path(path)
    if not path.is_file():
        raise MotionError(path, "file", "does not exist")
    try:
        with np.load(path, allow_pickle=False) as z:
            a = {k: z[k] for k in z.files}
    except Exception as exc:  # zip, header or pickle errors: all mean "not a motion file"
        raise MotionError(path, "file", f"not a readable .npz of plain arrays ({exc})") from None
    for key in ("format", "format_version", "poses", "trans", "betas", "frame_times", "mocap_framerate",
                "image_size", "camera_intrinsics", "joints_cam", "joints_2d", "body_model"):
        if key not in a:
            raise MotionError(path, key, "missing")
    if str(a["format"]) != "tar-motion":
        raise MotionError(path, "format", f"{str(a['format'])!r} is not 'tar-motion'")
    fv = a["format_version"]
    if fv.shape != () or fv.dtype.kind not in "iu" or int(fv) != 1:
        raise MotionError(path, "format_version", f"{fv!s} is not the supported integer version 1")
    n = a["poses"].shape[0] if a["poses"].ndim == 2 else 0
    if n < 1:
        raise MotionError(path, "poses", f"expected (N, 72), got {a['poses'].shape}")
    for key in ("poses", "trans", "betas", "frame_times", "mocap_framerate", "camera_intrinsics", "image_size",
                "joints_cam", "joints_2d"):
        if a[key].dtype.kind not in "fiu":
            raise MotionError(path, key, f"must be numeric, got {a[key].dtype}")
        if not np.all(np.isfinite(a[key])):
            raise MotionError(path, key, "contains NaN or infinity")
    for key, tail in _SHAPES.items():
        if a[key].shape != (n, *tail):
            raise MotionError(path, key, f"expected {(n, *tail)}, got {a[key].shape}")
    if a["betas"].shape != (10,):
        raise MotionError(path, "betas", f"expected (10,), got {a['betas'].shape}")
    times = np.asarray(a["frame_times"], dtype=np.float64)
    if times.shape != (n,) or np.any(np.diff(times) <= 0):
        raise MotionError(path, "frame_times", "must be N strictly increasing times")
    if a["mocap_framerate"].shape != () or not float(a["mocap_framerate"]) > 0:
        raise MotionError(path, "mocap_framerate", "must be a positive number")
    fps = float(a["mocap_framerate"])
    K = a["camera_intrinsics"]
    if K.shape != (3, 3) or not (K[0, 0] > 0 and K[1, 1] > 0):
        raise MotionError(path, "camera_intrinsics", "expected a pinhole K (3, 3) with positive focal lengths")
    if a["image_size"].shape != (2,) or np.any(a["image_size"] <= 0):
        raise MotionError(path, "image_size", "expected positive (width, height)")
    body = str(a["body_model"])
    if body not in ("smpl", "mannequin"):
        raise MotionError(path, "body_model", f"{body!r} is neither 'smpl' nor 'mannequin'")
    try:
        prov = json.loads(str(a["provenance"])) if "provenance" in a else {}
    except json.JSONDecodeError:
        raise MotionError(path, "provenance", "not JSON") from None
    if not isinstance(prov, dict):
        raise MotionError(path, "provenance", "must be a JSON object")
    try:
        track_id = int(a["track_id"]) if "track_id" in a else 0
    except (TypeError, ValueError):
        raise MotionError(path, "track_id", "must be an integer") from None
    contacts, ground = _optional(path, a, n)
    return MotionData(
        contacts=contacts, ground_plane=ground, path=str(path), poses=a["poses"].astype(np.float64),
        trans=a["trans"].astype(np.float64),
        betas=a["betas"].astype(np.float64), frame_times=times, fps=fps,
        image_size=(int(a["image_size"][0]), int(a["image_size"][1])),
        K=a["camera_intrinsics"].astype(np.float64), joints_cam=a["joints_cam"].astype(np.float64),
        joints_2d=a["joints_2d"].astype(np.float64), body_model=body,
        gender=str(a["gender"]) if "gender" in a else "neutral",
        track_id=track_id,
        engine=str(a["engine"]) if "engine" in a else "unknown", provenance=prov,
    )  # fmt: skip
