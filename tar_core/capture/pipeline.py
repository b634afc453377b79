"""``capture``: one clip -> one motion file per tracked person, plus ``summary.json``.

The steps, each streaming frames (the clip is never held in memory):
1. open the clip and the body model, build the engine (a bad checkpoint fails before any decoding);
2. ``TrackingPass`` (capture.tracks): person detection (every person, capture.multipose; or the user's
   boxes) and tracking; then the people asked for (``--person``, ``--max-people``; capture.people).
   ``--list-people`` stops here and writes ``people.png`` + ``people.json``;
3. the engine's ``run`` (capture.engines): one motion file per track through ``MotionWriter``.
The output folder is locked for the run and the previous run's files are moved aside first
(capture.output_folder); ``summary.json`` is written at the start (``"completed": false``, the run marker)
and again at the end whatever happened: it says what finished, how many frames were read and skipped,
whether the run completed and, if not, why (``error``, ``error_code``, ``error_kind``).
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

import tar_core
from tar_core import __version__
from tar_core.body_model import load_body_model
from tar_core.capture.engines import build_engine, resolve_engine_name
from tar_core.capture.engines.base import EngineJob
from tar_core.capture.output_folder import OutputFolder
from tar_core.capture.people import parse_person, select_people, write_preview
from tar_core.capture.tracks import TrackingPass
from tar_core.capture.video import VideoReader
from tar_core.capture.writer import MotionWriter
from tar_core.errors import NoFramesError, NoPersonError, OutputError, TarError, UsageError
from tar_core.geometry import camera as cam
from tar_core.util.atomic import atomic_path
from tar_core.util.stop import StopFlag

__all__ = ["CaptureOptions", "capture"]

MIN_TRACK_S = 0.25  # shorter tracks are blips (a false detection, a flicker at a crossing) and are dropped


@dataclass
class CaptureOptions:
    clip: str
    output: str
    engine: str = "auto"  # auto | tar | keypoints
    checkpoint: str | None = None
    body: str | None = None
    device: str = "auto"
    focal: float | None = None
    fov: float | None = None  # degrees across the image's longer side
    focal_35mm: float | None = None  # 35 mm-equivalent focal length, mm
    smooth_hz: float | None = None  # low-pass cut-off of the motion, both engines (None: the engine's default)
    align: bool = True  # tar engine refining the keypoints fit: its estimate aligned to the landmarks
    max_people: int = 0
    boxes: str | None = None
    fps: float | None = None  # for image folders
    batch_windows: int = 8
    person: str | None = None  # "X,Y" (a point on the person's first frame) or "ID"; None: everyone
    list_people: bool = False  # dry run: track, write people.png + people.json, no motion files


MAX_FOCAL = 1e6  # pixels: a focal length beyond this is a typo, not a lens
MAX_PEOPLE = 1000


def _check_options(opts: CaptureOptions) -> None:
    """Refuse option values no clip could need, before anything is opened."""
    if opts.focal is not None and not (math.isfinite(opts.focal) and 1.0 <= opts.focal <= MAX_FOCAL):
        raise UsageError(f"--focal must be a focal length in pixels from 1 to {MAX_FOCAL:g}, got {opts.focal!r}")
    if opts.smooth_hz is not None and not (math.isfinite(opts.smooth_hz) and 0.5 <= opts.smooth_hz <= 30.0):
        raise UsageError(f"--smooth-hz must be a cut-off from 0.5 to 30 Hz, got {opts.smooth_hz!r}")
    if not 0 <= opts.max_people <= MAX_PEOPLE:
        raise UsageError(f"--max-people must be from 0 (everyone) to {MAX_PEOPLE}, got {opts.max_people}")
    if not 1 <= opts.batch_windows <= 4096:
        raise UsageError(f"batch_windows must be from 1 to 4096, got {opts.batch_windows}")


def _write_summary(out_dir: Path, summary: dict) -> None:
    try:
        with atomic_path(out_dir / "summary.json", suffix=".json") as tmp, open(tmp, "w") as fh:
            json.dump(summary, fh, indent=2, default=str)
    except OSError as exc:
        raise OutputError(f"cannot write {out_dir / 'summary.json'}: {exc.strerror or exc}") from None


def _provenance(opts: CaptureOptions, engine, body, info) -> dict:
    return {
        "engine_version": __version__, "engine": engine.name, **engine.provenance(), "body_model": body.kind,
        "body_model_sha256": body.data.sha256, "video_path": str(Path(opts.clip).resolve()),
        "video_size": [info.width, info.height], "video_fps": info.fps, "video_rotation": info.rotation,
        "video_codec": info.codec,
    }  # fmt: skip


def _intrinsics(opts: CaptureOptions, info) -> tuple[np.ndarray, str]:
    """K and where its focal length came from: ``given`` (--focal), ``fov``, ``35mm`` or ``default``."""
    given = [k for k in ("focal", "fov", "focal_35mm") if getattr(opts, k)]
    if len(given) > 1:
        raise UsageError(f"give one of --focal, --fov and --focal-35mm, not {len(given)}")
    if opts.focal:
        focal, source = float(opts.focal), "given"
    elif opts.fov:
        if not 1.0 <= opts.fov <= 179.0:
            raise UsageError(f"--fov must be between 1 and 179 degrees, got {opts.fov}")
        focal, source = cam.focal_from_fov(opts.fov, info.width, info.height), "fov"
    elif opts.focal_35mm:
        focal, source = cam.focal_from_35mm(opts.focal_35mm, info.width, info.height), "35mm"
    else:
        focal, source = cam.default_focal(info.width, info.height), "default"
    return cam.intrinsics(focal, cam.default_principal_point(info.width, info.height)), source


def _shortest_track(fps: float | None, n_frames: int) -> int:
    """Frames a track needs to be kept: ``MIN_TRACK_S`` worth (at least 2), but never more than half the clip."""
    want = max(2, int(round(MIN_TRACK_S * (fps or 30.0))))
    return max(2, min(want, n_frames // 2))


def _track(opts: CaptureOptions, reader, progress, stop, summary: dict, landmarks_in_boxes: bool = False,
           keep: dict | None = None) -> tuple[dict, dict]:
    """Pass 1; drops blips (tracks shorter than ``MIN_TRACK_S``). Raises NoFramesError / NoPersonError.
    ``keep`` (if given) receives the first frame's image (``first_image``) for the people preview."""
    t0 = time.perf_counter()
    tracking = TrackingPass(progress, stop, boxes_file=opts.boxes, landmarks_in_boxes=landmarks_in_boxes)
    try:
        with reader:
            tracks, n_frames = tracking.run(reader)
    finally:
        summary["frames_read"], summary["frames_skipped"] = reader.frames_read, reader.frames_skipped
        if reader.skipped_examples:
            summary["skipped_examples"] = reader.skipped_examples
    summary["timings_s"]["tracking"] = time.perf_counter() - t0
    summary["timings_s"]["detection"] = tracking.detect_s
    summary["detector"] = tracking.detector_stats
    if keep is not None:
        keep["first_image"] = tracking.first_image
    stop.check()  # a signal during the last frame
    if n_frames == 0:
        raise NoFramesError(f"{opts.clip}: the clip has no frames")
    shortest = _shortest_track(reader.info.fps, n_frames)
    dropped = {str(tid): len(t.frame_ids) for tid, t in tracks.items() if len(t.frame_ids) < shortest}
    tracks = {tid: t for tid, t in tracks.items() if len(t.frame_ids) >= shortest}
    if dropped:
        summary["dropped_short_tracks"] = dropped
    if not tracks:
        raise NoPersonError(f"{opts.clip}: no person found in {n_frames} frames")
    summary["tracks"] = {str(tid): len(t.frame_ids) for tid, t in tracks.items()}
    return tracks, tracking.frame_times


def _select_people(opts: CaptureOptions, tracks: dict, summary: dict) -> dict:
    """The people the user asked for (``--person``, ``--max-people``); NoPersonError when a pick finds nobody."""
    chosen = select_people(tracks, parse_person(opts.person), opts.max_people)
    summary["tracks"] = {str(tid): len(t.frame_ids) for tid, t in chosen.items()}
    return chosen


def _list_people(opts: CaptureOptions, reader, progress, stop, summary: dict, out_dir: Path) -> dict:
    """``--list-people``: track only, then ``people.png`` + ``people.json`` in the output folder."""
    keep: dict = {}
    tracks, _ = _track(opts, reader, progress, stop, summary, keep=keep)
    info = write_preview(out_dir, tracks, keep.get("first_image"))
    summary["people_preview"] = info
    summary["completed"] = True
    return summary


def capture(opts: CaptureOptions, progress, stop: StopFlag | None = None) -> dict:
    """Run a capture; returns the summary. Raises a TarError (with its exit code), ``Cancelled`` included;
    in every case ``summary.json`` says what was finished and that the run did not complete."""
    stop = stop or StopFlag()
    _check_options(opts)
    out_dir = Path(opts.output)
    engine_name = resolve_engine_name(opts.engine, opts.checkpoint)
    folder = OutputFolder(out_dir, clip=str(opts.clip)).open()
    summary: dict = {"completed": False, "run_id": folder.run_id, "started": folder.started, "pid": os.getpid(),
                     "engine": engine_name, "engine_version": __version__, "clip": str(opts.clip),
                     "engine_code": str(Path(tar_core.__file__).resolve().parent), "timings_s": {}, "people": []}
    if folder.moved_aside:
        summary["previous_run_moved_to"] = str(out_dir / "previous")
    writer = None
    pending: BaseException | None = None
    try:
        _write_summary(out_dir, summary)  # the run marker: this folder now belongs to this run
        reader = VideoReader(opts.clip, fps=opts.fps, stop=stop)
        info = reader.info
        summary["video"] = asdict(info)
        parse_person(opts.person)  # a malformed --person fails before any work
        if opts.list_people:
            return _list_people(opts, reader, progress, stop, summary, out_dir)
        K, focal_source = _intrinsics(opts, info)
        body = load_body_model(opts.body)
        summary["body_model"] = body.describe()
        engine = build_engine(engine_name, body=body, checkpoint=opts.checkpoint, device=opts.device,
                              boxes=opts.boxes, batch_windows=opts.batch_windows, smooth_hz=opts.smooth_hz,
                              align=opts.align)
        summary.update(engine.summary())
        progress.emit("start", clip=str(opts.clip), engine=engine_name, frames=info.frame_count,
                      width=info.width, height=info.height, fps=info.fps, body_model=body.describe())
        writer = MotionWriter(out_dir, info, K, body, engine_name, _provenance(opts, engine, body, info), progress)
        tracks, frame_times = _track(opts, reader, progress, stop, summary,
                                     landmarks_in_boxes=engine.name == "keypoints")
        tracks = _select_people(opts, tracks, summary)
        t1 = time.perf_counter()
        engine.run(EngineJob(clip=opts.clip, fps=opts.fps, tracks=tracks, frame_times=frame_times, K=K, body=body,
                             writer=writer, progress=progress, stop=stop, focal_source=focal_source))
        summary["timings_s"]["engine"] = time.perf_counter() - t1
        summary.update(engine.summary())
        stop.check()  # a signal during the last frame or the last write
        summary["completed"] = True
        return summary
    except TarError as exc:
        pending = exc
        summary.update(error=str(exc), error_code=exc.exit_code, error_kind=exc.kind)
        raise
    except BaseException as exc:  # not ours (a bug, MemoryError): still say in the summary that it failed
        pending = exc
        summary.update(error=f"{type(exc).__name__}: {exc}", error_code=1, error_kind="internal")
        raise
    finally:
        summary["people"] = writer.people if writer else []
        try:
            _write_summary(out_dir, summary)
        except OutputError:
            if pending is None:
                raise
            # The disk is full (or gone): the summary written at the start stays, saying "completed": false.
        finally:
            folder.close()
