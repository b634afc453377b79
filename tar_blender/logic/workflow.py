"""The artist's workflow around a capture, stdlib only: where keys land in the scene, take names,
where motion files live and when a capture can be reused, focal length in millimetres, checks of
the preferences, progress over the engine's stages and the "no engine" diagnosis.

Nothing here touches bpy; the thin modules ask these functions and apply the answers.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "CACHE_FILE", "NO_ENGINE_HINT", "FULL_FRAME_DIAGONAL_MM", "Timing", "cache_key", "cached_outputs", "capture_folder",
    "check_checkpoint", "check_python", "check_smpl_file", "clip_name", "engine_missing", "fps_settings",
    "focal_mm_to_pixels", "frame_range", "person_label", "picked_person", "plan_timing", "preview_folder",
    "preview_status", "stage_progress", "take_name", "write_cache",
]  # fmt: skip

# --------------------------------------------------------------------------------------------
# Timing: keys at scene frame = start + t x scene fps, for the clip's real timestamps.
# --------------------------------------------------------------------------------------------

_EPS = 1e-6  # frames: float noise such as 191.00000000000003 is not a frame more


def fps_settings(fps: float) -> tuple[int, float]:
    """Blender's (render.fps, render.fps_base) for a frame rate: fps / fps_base equals it (29.97 -> 30, 1.001)."""
    if not fps > 0:
        raise ValueError(f"frame rate must be positive, got {fps}")
    whole = max(1, round(fps))
    return whole, whole / fps


def frame_range(first: float, last: float) -> tuple[int, int]:
    """The integer frame range that covers keys from ``first`` to ``last`` exactly (no frame more)."""
    return math.floor(first + _EPS), max(math.floor(first + _EPS), math.ceil(last - _EPS))


@dataclass(frozen=True)
class Timing:
    """Where a clip lands in the scene."""

    start: float  # the scene frame of clip time 0 (the movie clip's first frame plays here)
    fps: float  # scene frames per second the keys are placed with
    first: float  # frame of the earliest key over all people
    last: float  # frame of the latest key
    frame_start: int  # the integer range covering exactly first..last
    frame_end: int
    scene_fps: tuple[int, float] | None  # (render.fps, fps_base) to set, None: keep the scene's

    def frames(self, frame_times: Iterable[float]) -> list[float]:
        return [self.start + float(t) * self.fps for t in frame_times]


def plan_timing(spans: Sequence[tuple[float, float]], clip_fps: float, scene_fps: float, *, playhead: int,
                scene_start: int, use_clip_timing: bool, at_playhead: bool = True) -> Timing:
    """Place a clip: its time 0 at the playhead (or at the scene's start frame: ``at_playhead=False``),
    keys at ``start + t x fps`` where fps is the clip's when ``use_clip_timing`` (the scene takes it
    and the clip's frame range), else the scene's own fps.

    ``spans``: each person's first and last row time (seconds from the clip start).
    """
    if not spans:
        raise ValueError("no frame times to place")
    start = float(playhead if at_playhead else scene_start)
    fps_pair = fps_settings(clip_fps) if use_clip_timing else None
    fps = fps_pair[0] / fps_pair[1] if fps_pair else float(scene_fps)
    first = start + min(float(t0) for t0, _ in spans) * fps
    last = start + max(float(t1) for _, t1 in spans) * fps
    lo, hi = frame_range(first, last)
    return Timing(start=start, fps=fps, first=first, last=last, frame_start=lo, frame_end=hi, scene_fps=fps_pair)


# --------------------------------------------------------------------------------------------
# Takes and motion files
# --------------------------------------------------------------------------------------------

_UNSAFE = re.compile(r"[^\w.-]+")


def clip_name(path: str | os.PathLike[str]) -> str:
    """A clip's name for takes and folders: its file stem, with characters unsafe in a path replaced."""
    stem = Path(path).stem or "clip"
    return _UNSAFE.sub("_", stem).strip("._") or "clip"


def take_name(clip: str, track_id: int) -> str:
    """One action per person per capture: ``<clip>_p<id>``."""
    return f"{clip}_p{int(track_id)}"


CACHE_FILE = "tar_capture.json"


def cache_key(clip: str | os.PathLike[str], settings: dict) -> str:
    """Identity of one capture: the clip's absolute path, size and modification time, and every engine setting."""
    st = os.stat(clip)
    blob = json.dumps({"clip": os.path.abspath(clip), "size": st.st_size, "mtime_ns": st.st_mtime_ns,
                       "settings": settings}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def _read_cache(folder: Path) -> dict | None:
    try:
        data = json.loads((folder / CACHE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def capture_folder(base: str | os.PathLike[str], clip: str, key: str) -> Path:
    """Where a capture's motion files go: ``<base>/<clip>/``, or ``<base>/<clip>/run-<key8>/`` when
    that folder already holds a capture made with other settings (so no take loses its files)."""
    folder = Path(base) / clip
    data = _read_cache(folder)
    if data is None or data.get("key") == key:
        return folder
    return folder / f"run-{key[:8]}"


PREVIEW_FOLDER = "people-preview"


def preview_folder(base: str | os.PathLike[str], clip: str) -> Path:
    """Where the people preview of a clip goes (``people.png``, ``people.json``): ``<base>/<clip>/people-preview/``,
    beside the clip's captures and never mixed with their motion files."""
    return Path(base) / clip / PREVIEW_FOLDER


def person_label(person: dict) -> str:
    """A preview person's line in the panel: their id, where they appear and for how long."""
    first, last = int(person.get("first_frame", 0)), int(person.get("last_frame", 0))
    when = f"frames {first}–{last}" if first == 0 else f"from frame {first} to {last}"
    return f"Person {int(person['id'])}: {when}"


def picked_person(text: str, ids: Iterable[int]) -> int | None:
    """The preview id the Person field names (None: all people, a point, or an id the preview lacks)."""
    text = text.strip()
    if not text.isdigit():
        return None
    value = int(text)
    return value if value in set(ids) else None


def preview_status(people: Sequence[dict]) -> str:
    """What the panel says after a preview."""
    if not people:
        return "Preview: nobody found in the clip"
    if len(people) == 1:
        return "Preview: 1 person found"
    return f"Preview: {len(people)} people found: pick one, or All People"


def cached_outputs(folder: str | os.PathLike[str], key: str) -> list[str] | None:
    """The motion files of an earlier capture with the same key in ``folder``, or None (all must still exist)."""
    data = _read_cache(Path(folder))
    if data is None or data.get("key") != key:
        return None
    files = [str(Path(folder) / name) for name in data.get("outputs", [])]
    return files if files and all(os.path.isfile(f) for f in files) else None


def write_cache(folder: str | os.PathLike[str], key: str, outputs: Sequence[str], settings: dict) -> None:
    """Record that ``outputs`` (files in ``folder``) are the result of the capture ``key``."""
    folder = Path(folder)
    names = [Path(p).name for p in outputs if Path(p).parent.resolve() == folder.resolve()]
    (folder / CACHE_FILE).write_text(json.dumps({"key": key, "outputs": names, "settings": settings}, indent=1),
                                     encoding="utf-8")


# --------------------------------------------------------------------------------------------
# Focal length
# --------------------------------------------------------------------------------------------

FULL_FRAME_DIAGONAL_MM = math.hypot(36.0, 24.0)  # 43.27 mm: what "35 mm equivalent" refers to


def focal_mm_to_pixels(focal_mm: float, width: int, height: int) -> float:
    """A 35 mm-equivalent focal length in pixels of a width x height image (diagonal field of view kept)."""
    if not (focal_mm > 0 and width > 0 and height > 0):
        raise ValueError(f"need a positive focal length and image size, got {focal_mm} mm, {width}x{height}")
    return focal_mm * math.hypot(width, height) / FULL_FRAME_DIAGONAL_MM


# --------------------------------------------------------------------------------------------
# Preferences, checked when they are set
# --------------------------------------------------------------------------------------------


def check_smpl_file(path: str) -> str | None:
    """Why ``path`` cannot be the SMPL model file, or None when it can (empty: the mannequin)."""
    if not path:
        return None
    p = Path(path)
    if p.suffix.lower() == ".pkl":
        return (f"{p.name} is the official .pkl: convert it once with "
                f"`python -m tar_core smpl-convert {p.name} {p.stem}.npz` and choose the .npz")
    if p.suffix.lower() != ".npz":
        return f"{p.name}: the SMPL model must be an .npz file"
    if not p.is_file():
        return f"{p}: file not found"
    try:
        with zipfile.ZipFile(p) as z:
            names = {n.removesuffix(".npy") for n in z.namelist()}
    except (OSError, zipfile.BadZipFile):
        return f"{p.name} is not a readable .npz"
    missing = sorted({"v_template", "shapedirs", "J_regressor", "weights", "f"} - names)
    return f"{p.name} lacks {', '.join(missing)}: not an SMPL model" if missing else None


def check_checkpoint(path: str) -> str | None:
    if not path:
        return None
    p = Path(path)
    if not p.is_file():
        return f"{p}: file not found"
    if p.suffix.lower() not in (".pt", ".pth", ".ckpt"):
        return f"{p.name}: a TAR checkpoint is a .pt file"
    return None


def check_python(path: str) -> str | None:
    if not path:
        return None
    p = Path(path)
    if not p.is_file():
        return f"{p}: no such interpreter"
    if not os.access(p, os.X_OK):
        return f"{p}: not executable"
    return None


# --------------------------------------------------------------------------------------------
# Capture progress and failures
# --------------------------------------------------------------------------------------------

# The engine's stages in order, with the share of the whole run each one takes (about).
# Each engine's stages, in the order they run, and the share of the bar each fills. The tar engine fits the
# keypoints first when its checkpoint refines that fit (its "fitting" and "feet" stages; other checkpoints skip
# them); "feet" is the keypoints engine's last solve of the planted feet.
_STAGES = {
    "keypoints": {"tracking": (0.0, 0.5), "fitting": (0.5, 0.9), "feet": (0.9, 1.0)},
    "tar": {"tracking": (0.0, 0.5), "fitting": (0.5, 0.6), "feet": (0.6, 0.62), "tar": (0.62, 1.0)},
}
_NEXT = {"tracking": "fitting"}


def stage_progress(stage: str | None, done: float, total: float | None, engine: str = "keypoints") -> tuple[float,
                                                                                                          str]:
    """(fraction of the whole capture, label) for the engine's latest progress event.

    A finished stage reads as the next one starting (its own events may come only at the end of
    its first window), not as a bar at 100%.
    """
    if stage is None:
        return 0.0, "Starting engine…"
    lo, hi = _STAGES.get(engine, _STAGES["keypoints"]).get(stage, (0.0, 1.0))
    frac = min(1.0, max(0.0, float(done) / float(total))) if total else 0.0
    if stage in _NEXT and frac >= 1.0:
        nxt = "tar" if engine == "tar" else _NEXT[stage]
        return hi, f"{nxt}: starting…"
    label = f"{stage}: {int(done)}/{int(total)}" if total else f"{stage}: {int(done)}"
    return lo + (hi - lo) * frac, label


NO_ENGINE_HINT = "The engine is not set up: Edit → Preferences → Add-ons → TAR Mocap → Set up engine"
_MISSING = ("ModuleNotFoundError", "No module named", "No such file or directory", "not found", "cannot execute",
            "Permission denied")


def engine_missing(message: str, returncode: int | None = None) -> bool:
    """Whether an engine failure means there is no usable engine (interpreter or packages missing)."""
    return returncode in (126, 127) or any(s in message for s in _MISSING[:2]) or (
        returncode is None and any(s in message for s in _MISSING[2:]))
