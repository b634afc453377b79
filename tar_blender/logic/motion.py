"""Read motion files (``tar-motion`` v1, see docs/motion-file.md) for import, numpy only.

The engine's ``tar_core.motion_file`` writes and fully validates the format; Blender's Python
has no engine, so this reader checks what the importer relies on and names the bad key.

Nothing is allocated from an unchecked size: every member's ``.npy`` header is read first (from the
zip, without loading) and the file is refused when a member is not the documented shape, holds more
than ``MAX_ROWS`` rows (six hours at 60 fps) or declares more data than it holds. Values must be finite
and within ``LIMITS``. ``check_import`` then refuses imports Blender cannot hold: keys past its last
frame, or more keyframes than ``import_budget`` allows for the machine's memory.
"""

from __future__ import annotations

import json
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["LIMITS", "MAX_ROWS", "MotionData", "MotionError", "check_import", "import_budget", "read_headers",
           "read_motion"]

MAX_ROWS = 6 * 3600 * 60  # 1,296,000 rows: the format's cap (docs/motion-file.md)
MAX_STRING_BYTES = 1 << 20
MAX_EXTRA_BYTES = 16 << 20
BLENDER_MAX_FRAME = 1_048_574  # Blender's last scene frame (MAXFRAME)
CURVES_PER_PERSON = 24 * 4 + 3  # a quaternion per bone and the pelvis location
BYTES_PER_KEY = 160  # a Blender keyframe (BezTriple) and the arrays that build it, measured generously
# key -> (lowest, highest); the same ranges as the engine's validator.
LIMITS = {
    "poses": (-32.0, 32.0), "trans": (-1e4, 1e4), "joints_cam": (-1e4, 1e4), "betas": (-100.0, 100.0),
    "frame_times": (-1e9, 1e9), "mocap_framerate": (0.01, 10000.0), "image_size": (1, 65536),
    "camera_intrinsics": (-1e6, 1e6),
}
MAX_PIXELS = 1 << 27
# key -> per-row shape (None: not per row) for the members this reader uses.
_ROW_SHAPES = {"poses": (72,), "trans": (3,), "joints_cam": (24, 3), "joints_2d": (24, 2), "frame_times": (),
               "frame_ids": (), "bbox_xyxy": (4,), "confidence": (), "contacts": (4,), "poses_raw": (72,),
               "trans_raw": (3,)}  # fmt: skip
_FIXED_SHAPES = {"betas": (10,), "camera_intrinsics": (3, 3), "image_size": (2,), "mocap_framerate": (),
                 "mocap_frame_rate": (), "track_id": (), "format_version": (), "ground_plane": (4,)}


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


def _npy_header(fh, name: str, path) -> tuple[tuple, np.dtype]:
    try:
        version = np.lib.format.read_magic(fh)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(fh)
        elif version in ((2, 0), (3, 0)):
            shape, _, dtype = np.lib.format.read_array_header_2_0(fh)
        else:
            raise ValueError(f"version {version}")
    except Exception as exc:  # numpy raises ValueError, EOFError, SyntaxError ... for damaged headers
        raise MotionError(path, name, f"damaged .npy header ({exc})") from None
    return tuple(shape), dtype


def read_headers(path: str | Path) -> dict[str, tuple[tuple, np.dtype]]:
    """Every member's (shape, dtype) from its ``.npy`` header, nothing loaded; refuses a file whose members
    are not the documented shapes, hold more than ``MAX_ROWS`` rows or declare more data than they hold."""
    path = Path(path)
    heads = {}
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            if len(infos) > 256:
                raise MotionError(path, "file", f"{len(infos)} members: not a motion file")
            for info in infos:
                name = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
                if name == info.filename:
                    raise MotionError(path, name, "is not a .npy array")
                with zf.open(info) as fh:
                    shape, dtype = _npy_header(fh, name, path)
                    offset = fh.tell()
                if dtype.hasobject or dtype.kind == "V":
                    raise MotionError(path, "file", f"{name} holds Python objects; a motion file holds plain arrays")
                heads[name] = (shape, dtype, info.file_size - offset)
    except zipfile.BadZipFile as exc:
        raise MotionError(path, "file", f"not a complete .npz ({exc})") from None
    except MotionError:
        raise
    except Exception as exc:  # zlib.error, EOFError, OSError ...: damaged
        raise MotionError(path, "file", f"unreadable .npz ({type(exc).__name__}: {exc})") from None
    if "poses" not in heads:
        raise MotionError(path, "poses", "missing")
    n = heads["poses"][0][0] if len(heads["poses"][0]) == 2 else 0  # shapes first, then the stored sizes
    if n < 1 or heads["poses"][0] != (n, 72):
        raise MotionError(path, "poses", f"expected (N, 72), got {heads['poses'][0]}")
    if n > MAX_ROWS:
        raise MotionError(path, "poses", f"{n} rows; a motion file holds at most {MAX_ROWS} (six hours at 60 fps)")
    for name, (shape, dtype, stored) in heads.items():
        want = (n, *_ROW_SHAPES[name]) if name in _ROW_SHAPES else _FIXED_SHAPES.get(name)
        if want is not None and shape != want:
            raise MotionError(path, name, f"expected {want}, got {shape}")
        nbytes = int(np.prod(shape, dtype=np.float64)) * dtype.itemsize
        if want is None and nbytes > (MAX_STRING_BYTES if dtype.kind == "U" else MAX_EXTRA_BYTES):
            raise MotionError(path, name, "larger than a motion file's member may be")
        if nbytes != stored:
            raise MotionError(path, name, f"its header declares shape {shape} but the file does not hold that "
                                          "much data (damaged or truncated)")
    return {name: (shape, dtype) for name, (shape, dtype, _) in heads.items()}


def read_motion(path: str | Path) -> MotionData:
    """Load a motion file with ``allow_pickle=False`` after checking its headers (``read_headers``); raises
    MotionError naming the bad key."""
    path = Path(path)
    if not path.is_file():
        raise MotionError(path, "file", "does not exist")
    read_headers(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            a = {k: z[k] for k in z.files}
    except Exception as exc:  # zip, header or pickle errors: all mean "not a motion file"
        raise MotionError(path, "file", f"not a readable .npz of plain arrays ({exc})") from None
    n = _check_arrays(path, a)
    times, fps = _check_timing(path, a, n)
    body = str(a["body_model"])
    if body not in ("smpl", "mannequin"):
        raise MotionError(path, "body_model", f"{body!r} is neither 'smpl' nor 'mannequin'")
    prov, track_id = _check_metadata(path, a)
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


def _check_arrays(path: Path, a: dict) -> int:
    """The required keys, format, numeric finite arrays of the documented shapes and ranges; returns N."""
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
    for key, (lo, hi) in LIMITS.items():
        values = a[key]
        if values.size and (values.min() < lo or values.max() > hi):
            bad = values.min() if values.min() < lo else values.max()
            raise MotionError(path, key, f"value {bad:g} is outside {lo:g}..{hi:g}")
    return n


def _check_timing(path: Path, a: dict, n: int) -> tuple[np.ndarray, float]:
    """Increasing times, a positive frame rate, a pinhole camera and a sane image size."""
    if int(a["image_size"][0]) * int(a["image_size"][1]) > MAX_PIXELS:
        raise MotionError(path, "image_size", f"more than {MAX_PIXELS / 1e6:.0f} megapixels")
    times = np.asarray(a["frame_times"], dtype=np.float64)
    if times.shape != (n,) or np.any(np.diff(times) <= 0):
        raise MotionError(path, "frame_times", "must be N strictly increasing times")
    if a["mocap_framerate"].shape != () or not float(a["mocap_framerate"]) > 0:
        raise MotionError(path, "mocap_framerate", "must be a positive number")
    K = a["camera_intrinsics"]
    if K.shape != (3, 3) or not (K[0, 0] > 0 and K[1, 1] > 0):
        raise MotionError(path, "camera_intrinsics", "expected a pinhole K (3, 3) with positive focal lengths")
    if a["image_size"].shape != (2,) or np.any(a["image_size"] <= 0):
        raise MotionError(path, "image_size", "expected positive (width, height)")
    return times, float(a["mocap_framerate"])


def _check_metadata(path: Path, a: dict) -> tuple[dict, int]:
    """The provenance (a JSON object) and the track id (an integer)."""
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
    return prov, track_id


def import_budget() -> int:
    """Keyframes an import may create: a quarter of this machine's memory at ``BYTES_PER_KEY`` each
    (40 million when the memory cannot be read)."""
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return 40_000_000
    return max(1_000_000, memory // 4 // BYTES_PER_KEY)


def check_import(motions: list[MotionData], fps: float, frame_start: float = 1.0, budget: int | None = None) -> None:
    """Refuse, before Blender allocates anything, an import it cannot hold: keys beyond its frame range, or
    more keyframes than ``budget`` (default ``import_budget()``)."""
    budget = import_budget() if budget is None else budget
    keys = 0
    for m in motions:
        last = frame_start + float(m.frame_times[-1]) * fps
        first = frame_start + float(m.frame_times[0]) * fps
        if max(abs(first), abs(last)) > BLENDER_MAX_FRAME:
            raise MotionError(m.path, "frame_times", f"keys would reach frame {max(abs(first), abs(last)):.0f}, "
                                                     f"beyond Blender's last frame {BLENDER_MAX_FRAME}")
        keys += m.num_frames * CURVES_PER_PERSON
    if keys > budget:
        raise MotionError(motions[-1].path, "poses", f"importing needs {keys:,} keyframes (about "
                          f"{keys * BYTES_PER_KEY / 1e9:.1f} GB), more than this machine can hold safely "
                          f"({budget:,}); import fewer people or a shorter part")
