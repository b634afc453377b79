"""The motion file: one ``.npz`` per tracked person, the contract between engine and add-on.

Format ``tar-motion`` version 1 (documented in docs/motion-file.md). Everything is in the camera
frame of the video with OpenCV axes (+x right, +y down, +z forward), metres;
``joints_cam = SMPL(poses, betas).joints + trans``. Files are written atomically (temporary name,
then rename) and read with ``allow_pickle=False`` only, after every member's ``.npy`` header has been
checked (shapes, dtypes, at most ``MAX_ROWS`` rows) so nothing is allocated from an unchecked size.
Values must be finite and within the documented ranges (``LIMITS``). This module needs numpy alone.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from tar_core.errors import MotionFileError
from tar_core.util.atomic import atomic_path
from tar_core.util.npz import npz_headers

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "LIMITS",
    "MAX_ROWS",
    "Motion",
    "MotionFileError",
    "check_headers",
    "read_motion",
    "validate_arrays",
    "validate_file",
    "write_motion",
]

FORMAT = "tar-motion"
FORMAT_VERSION = 1
ENGINES = ("tar", "keypoints", "ground-truth")
BODY_MODELS = ("smpl", "mannequin")
GENDERS = ("neutral", "male", "female")
MAX_ROWS = 6 * 3600 * 60  # 1,296,000: six hours at 60 fps, checked from the headers before loading
MAX_STRING_BYTES = 1 << 20  # a string member (provenance included) holds at most 1 MiB
MAX_EXTRA_BYTES = 16 << 20  # a member this format does not name holds at most 16 MiB
# key -> (lowest, highest) allowed value; beyond these a number is damage, not a measurement.
LIMITS = {
    "poses": (-32.0, 32.0),  # radians (a turn is 6.28; writers give at most pi per joint)
    "trans": (-1e4, 1e4),  # metres
    "joints_cam": (-1e4, 1e4),  # metres
    "betas": (-100.0, 100.0),
    "frame_ids": (0, 2**31 - 1),
    "frame_times": (-1e9, 1e9),  # seconds
    "mocap_framerate": (0.01, 10000.0),  # frames per second
    "image_size": (1, 65536),  # pixels per side; width x height at most 2^27 (134 megapixels)
    "track_id": (0, 2**31 - 1),
}
MAX_PIXELS = 1 << 27


@dataclass
class Motion:
    """The contents of one motion file (N rows, one per frame where the person was seen)."""

    poses: np.ndarray  # (N, 72) f32 SMPL axis-angle, global orientation in the camera frame
    trans: np.ndarray  # (N, 3) f32 metres, camera frame
    betas: np.ndarray  # (10,) f32
    frame_ids: np.ndarray  # (N,) i64 source frame index of each row
    frame_times: np.ndarray  # (N,) f64 presentation time, seconds from the clip start
    image_size: np.ndarray  # (2,) i32 width, height (display orientation)
    camera_intrinsics: np.ndarray  # (3, 3) f32 K in pixels
    bbox_xyxy: np.ndarray  # (N, 4) f32
    joints_cam: np.ndarray  # (N, 24, 3) f32
    joints_2d: np.ndarray  # (N, 24, 2) f32
    confidence: np.ndarray  # (N,) f32 in 0..1
    mocap_framerate: float
    track_id: int
    engine: str  # tar | keypoints | ground-truth
    body_model: str  # smpl | mannequin
    gender: str = "neutral"
    provenance: str = "{}"  # JSON
    format: str = FORMAT
    format_version: int = FORMAT_VERSION
    # Optional (an engine may write them; absent keys read as None):
    contacts: np.ndarray | None = None  # (N, 4) f32 0..1 left heel, left toe, right heel, right toe
    ground_plane: np.ndarray | None = None  # (4,) f32 unit normal (up) and d: n . p + d = 0, camera frame
    poses_raw: np.ndarray | None = None  # (N, 72) f32 the engine's solution before smoothing
    trans_raw: np.ndarray | None = None  # (N, 3) f32

    @property
    def num_frames(self) -> int:
        return int(self.poses.shape[0])

    @property
    def provenance_dict(self) -> dict:
        return json.loads(self.provenance)

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The npz members, with both frame-rate spellings, in their contract dtypes."""
        out = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if v is None and f.name in _OPTIONAL:
                continue
            spec = _SPEC.get(f.name) or _OPTIONAL.get(f.name)
            out[f.name] = np.asarray(v, dtype=spec[1]) if spec else np.asarray(v)
        out["mocap_frame_rate"] = out["mocap_framerate"]
        return out


# key -> (shape with N for rows, dtype); strings and scalars are checked separately.
_SPEC: dict[str, tuple[tuple, type]] = {
    "poses": (("N", 72), np.float32),
    "trans": (("N", 3), np.float32),
    "betas": ((10,), np.float32),
    "frame_ids": (("N",), np.int64),
    "frame_times": (("N",), np.float64),
    "image_size": ((2,), np.int32),
    "camera_intrinsics": ((3, 3), np.float32),
    "bbox_xyxy": (("N", 4), np.float32),
    "joints_cam": (("N", 24, 3), np.float32),
    "joints_2d": (("N", 24, 2), np.float32),
    "confidence": (("N",), np.float32),
    "mocap_framerate": ((), np.float64),
    "mocap_frame_rate": ((), np.float64),
    "track_id": ((), np.int64),
    "format_version": ((), np.int64),
}
_OPTIONAL: dict[str, tuple[tuple, type]] = {
    "contacts": (("N", 4), np.float32),
    "ground_plane": ((4,), np.float32),
    "poses_raw": (("N", 72), np.float32),
    "trans_raw": (("N", 3), np.float32),
}
_STRINGS = {
    "format": (FORMAT,),
    "engine": ENGINES,
    "body_model": BODY_MODELS,
    "gender": GENDERS,
    "provenance": None,
}


def _string(arrays: dict, key: str) -> str:
    v = arrays[key]
    if not (isinstance(v, np.ndarray) and v.dtype.kind == "U" and v.ndim == 0):
        raise MotionFileError(key, "must be a string (0-d unicode array)")
    return str(v)


def validate_arrays(arrays: dict[str, np.ndarray]) -> int:
    """Check a motion file's members against the contract; return N. Raises MotionFileError."""
    for key in (*_SPEC, *_STRINGS):
        if key not in arrays:
            raise MotionFileError(key, "missing")
    for key, allowed in _STRINGS.items():
        s = _string(arrays, key)
        if allowed is not None and s not in allowed:
            raise MotionFileError(key, f"{s!r} is not one of {', '.join(allowed)}")
    version = arrays["format_version"]
    if version.shape != () or version.dtype.kind not in "iu":
        raise MotionFileError("format_version", "must be an integer scalar")
    if int(version) != FORMAT_VERSION:
        raise MotionFileError("format_version", f"version {int(version)} is not supported (this reader: 1)")
    n = arrays["poses"].shape[0] if arrays["poses"].ndim == 2 else -1
    if n < 1:
        raise MotionFileError("poses", f"must be (N, 72) with N >= 1, got {arrays['poses'].shape}")
    for key, (shape, dtype) in (*_SPEC.items(), *((k, v) for k, v in _OPTIONAL.items() if k in arrays)):
        a = arrays[key]
        want = tuple(n if d == "N" else d for d in shape)
        if a.shape != want:
            raise MotionFileError(key, f"shape {a.shape}, expected {want}")
        kind = np.dtype(dtype).kind
        if a.dtype.kind != kind and not (kind == "f" and a.dtype.kind == "f"):
            raise MotionFileError(key, f"dtype {a.dtype}, expected {np.dtype(dtype)}")
        if kind == "f" and not np.all(np.isfinite(a)):
            raise MotionFileError(key, "contains NaN or infinity")
    for key, (lo, hi) in LIMITS.items():
        a = arrays[key]
        if a.size and (a.min() < lo or a.max() > hi):
            bad = a.min() if a.min() < lo else a.max()
            raise MotionFileError(key, f"value {bad:g} is outside {lo:g}..{hi:g}")
    w, h = (int(v) for v in arrays["image_size"])
    if w * h > MAX_PIXELS:
        raise MotionFileError("image_size", f"{w}x{h} is more than {MAX_PIXELS / 1e6:.0f} megapixels")
    if not np.isclose(float(arrays["mocap_framerate"]), float(arrays["mocap_frame_rate"])):
        raise MotionFileError("mocap_frame_rate", "differs from mocap_framerate")
    if np.any(np.diff(arrays["frame_ids"]) <= 0):
        raise MotionFileError("frame_ids", "must be strictly increasing")
    if np.any(np.diff(arrays["frame_times"]) <= 0):
        raise MotionFileError("frame_times", "must be strictly increasing")
    if np.any(arrays["image_size"] <= 0):
        raise MotionFileError("image_size", "width and height must be positive")
    K = arrays["camera_intrinsics"]
    if np.abs(K).max() > 1e6:
        raise MotionFileError("camera_intrinsics", f"value {np.abs(K).max():g} is beyond 1e6 pixels")
    if K[0, 0] <= 0 or K[1, 1] <= 0 or not np.allclose(K[2], [0, 0, 1]) or K[1, 0] != 0:
        raise MotionFileError("camera_intrinsics", "not a pinhole matrix [[fx,s,cx],[0,fy,cy],[0,0,1]]")
    for key in ("confidence", "contacts"):
        c = arrays.get(key)
        if c is not None and np.any((c < 0) | (c > 1)):
            raise MotionFileError(key, "values must lie in 0..1")
    g = arrays.get("ground_plane")
    if g is not None and not np.isclose(np.linalg.norm(g[:3]), 1.0, atol=1e-3):
        raise MotionFileError("ground_plane", "the first three values must be a unit normal")
    try:
        prov = json.loads(_string(arrays, "provenance"))
    except json.JSONDecodeError as exc:
        raise MotionFileError("provenance", f"not JSON ({exc})") from None
    if not isinstance(prov, dict):
        raise MotionFileError("provenance", "must be a JSON object")
    return n


def write_motion(path: str | Path, motion: Motion) -> Path:
    """Validate and write ``motion`` to ``path`` atomically (temporary file, then rename)."""
    path = Path(path)
    arrays = motion.to_arrays()
    validate_arrays(arrays)
    # The archive is built in memory and written in one go: a full disk then fails one plain write (and the
    # temporary file is removed), never a zip writer left half-open on a closed file.
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    with atomic_path(path, suffix=".npz.tmp") as tmp, open(tmp, "wb") as fh:
        fh.write(buffer.getbuffer())
    return path


def check_headers(path: str | Path) -> int:
    """Check a motion file's members from their ``.npy`` headers alone (nothing is loaded); return N.
    Raises MotionFileError: not a complete npz, too many rows, a member of the wrong shape or type."""
    path = Path(path)
    try:
        heads = npz_headers(path, check=False)  # shapes first: a lying header is named by its key
    except ValueError as exc:
        raise MotionFileError("file", f"unreadable npz: {path} ({exc})") from None
    except OSError as exc:
        raise MotionFileError("file", f"cannot read {path} ({exc.strerror or exc})") from None
    poses = heads.get("poses")
    if poses is None:
        raise MotionFileError("poses", "missing")
    n = poses.shape[0] if len(poses.shape) == 2 else -1
    if n > MAX_ROWS:
        raise MotionFileError("poses", f"{n} rows; a motion file holds at most {MAX_ROWS} "
                                       f"(six hours at 60 fps)")
    for key, head in heads.items():
        if head.kind in "OV":
            raise MotionFileError(key, "holds Python objects or raw bytes; a motion file holds plain arrays")
        spec = _SPEC.get(key)
        if spec is not None:
            want = tuple(n if d == "N" else d for d in spec[0])
            if head.shape != want:
                raise MotionFileError(key, f"shape {head.shape}, expected {want}")
            if head.itemsize > 8:
                raise MotionFileError(key, f"dtype {head.descr}, expected {np.dtype(spec[1])}")
        elif key in _STRINGS:
            if head.shape != () or head.nbytes > MAX_STRING_BYTES:
                raise MotionFileError(key, f"must be a string of at most {MAX_STRING_BYTES} bytes")
        elif head.nbytes > MAX_EXTRA_BYTES:
            raise MotionFileError(key, f"extra member of {head.nbytes} bytes (at most {MAX_EXTRA_BYTES})")
        try:
            head.check_stored()
        except ValueError as exc:
            raise MotionFileError(key, f"{path}: {exc}") from None
    return n


def _load_arrays(path: str | Path) -> dict[str, np.ndarray]:
    path = Path(path)
    if not path.is_file():
        raise MotionFileError("file", f"{path} does not exist")
    with open(path, "rb") as fh:
        if fh.read(4) != b"PK\x03\x04":
            raise MotionFileError("file", f"unreadable npz: {path} is not a zip archive")
    check_headers(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except ValueError as exc:
        if "allow_pickle" in str(exc):
            raise MotionFileError("file", "holds Python objects; a motion file holds plain arrays") from None
        raise MotionFileError("file", f"unreadable npz: {path} ({exc})") from None
    except Exception as exc:  # zipfile.BadZipFile (CRC), zlib.error, EOFError, OSError: damaged data
        raise MotionFileError("file", f"unreadable npz: {path} ({type(exc).__name__}: {exc})") from None


def read_motion(path: str | Path) -> Motion:
    """Read and validate a motion file."""
    arrays = _load_arrays(path)
    validate_arrays(arrays)
    kw = {}
    for f in fields(Motion):
        v = arrays.get(f.name)
        if f.name in _OPTIONAL:
            kw[f.name] = v
        elif f.name in _STRINGS:
            kw[f.name] = str(v)
        elif f.name in ("track_id", "format_version"):
            kw[f.name] = int(v)
        elif f.name == "mocap_framerate":
            kw[f.name] = float(v)
        else:
            kw[f.name] = v
    return Motion(**kw)


def validate_file(path: str | Path) -> int:
    """Validate a motion file on disk; return its row count. Raises MotionFileError."""
    return validate_arrays(_load_arrays(path))
