"""``capture``: one clip -> one motion file per tracked person, plus ``summary.json``.

The steps, each streaming frames (the clip is never held in memory):
1. open the clip and the body model, build the engine (a bad checkpoint fails before any decoding);
2. ``TrackingPass`` (capture.tracks): person detection (every person, capture.multipose; or the user's
   boxes) and tracking; then the people asked for (``--person``, ``--max-people``; capture.people).
   ``--list-people`` stops here and writes ``people.png`` + ``people.json``;
3. the engine's ``run`` (capture.engines): one motion file per track through ``MotionWriter``.
``summary.json`` is written at the end whatever happened: it says what finished and whether the run
completed.
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

import tar_core
from tar_core import __version__
from tar_core.body_model import load_body_model
from tar_core.capture.engines import build_engine, resolve_engine_name
from tar_core.capture.engines.base import EngineJob
from tar_core.capture.people import parse_person, select_people, write_preview
from tar_core.capture.tracks import TrackingPass
from tar_core.capture.video import VideoReader
from tar_core.capture.writer import MotionWriter
from tar_core.errors import NoFramesError, NoPersonError, OutputError, TarError
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
    max_people: int = 0
    boxes: str | None = None
    fps: float | None = None  # for image folders
    batch_windows: int = 8
    person: str | None = None  # "X,Y" (a point on the person's first frame) or "ID"; None: everyone
    list_people: bool = False  # dry run: track, write people.png + people.json, no motion files


def _check_output_dir(out_dir: Path) -> None:
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out_dir, prefix=".write-test-"):
            pass
    except OSError as exc:
        raise OutputError(f"output directory not writable: {out_dir} ({exc.strerror or exc})") from None


def _write_summary(out_dir: Path, summary: dict) -> None:
    with atomic_path(out_dir / "summary.json", suffix=".json") as tmp, open(tmp, "w") as fh:
        json.dump(summary, fh, indent=2, default=str)


def _provenance(opts: CaptureOptions, engine, body, info) -> dict:
    return {
        "engine_version": __version__, "engine": engine.name, **engine.provenance(), "body_model": body.kind,
        "body_model_sha256": body.data.sha256, "video_path": str(Path(opts.clip).resolve()),
        "video_size": [info.width, info.height], "video_fps": info.fps, "video_rotation": info.rotation,
        "video_codec": info.codec,
    }  # fmt: skip


def _intrinsics(opts: CaptureOptions, info) -> np.ndarray:
    focal = float(opts.focal) if opts.focal else cam.default_focal(info.width, info.height)
    return cam.intrinsics(focal, cam.default_principal_point(info.width, info.height))


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
    with reader:
        tracks, n_frames = tracking.run(reader)
    summary["timings_s"]["tracking"] = time.perf_counter() - t0
    summary["frames_read"] = n_frames
    summary["detector"] = tracking.detector_stats
    if keep is not None:
        keep["first_image"] = tracking.first_image
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
    out_dir = Path(opts.output)
    _check_output_dir(out_dir)
    engine_name = resolve_engine_name(opts.engine, opts.checkpoint)
    summary: dict = {"completed": False, "engine": engine_name, "engine_version": __version__,
                     "clip": str(opts.clip), "engine_code": str(Path(tar_core.__file__).resolve().parent),
                     "timings_s": {}, "people": []}
    writer = None
    try:
        reader = VideoReader(opts.clip, fps=opts.fps)
        info = reader.info
        summary["video"] = asdict(info)
        parse_person(opts.person)  # a malformed --person fails before any work
        if opts.list_people:
            return _list_people(opts, reader, progress, stop, summary, out_dir)
        K = _intrinsics(opts, info)
        body = load_body_model(opts.body)
        summary["body_model"] = body.describe()
        engine = build_engine(engine_name, body=body, checkpoint=opts.checkpoint, device=opts.device,
                              boxes=opts.boxes, batch_windows=opts.batch_windows)
        summary.update(engine.summary())
        progress.emit("start", clip=str(opts.clip), engine=engine_name, frames=info.frame_count,
                      width=info.width, height=info.height, fps=info.fps, body_model=body.describe())
        writer = MotionWriter(out_dir, info, K, body, engine_name, _provenance(opts, engine, body, info), progress)
        tracks, frame_times = _track(opts, reader, progress, stop, summary,
                                     landmarks_in_boxes=engine.name == "keypoints")
        tracks = _select_people(opts, tracks, summary)
        t1 = time.perf_counter()
        engine.run(EngineJob(clip=opts.clip, fps=opts.fps, tracks=tracks, frame_times=frame_times, K=K, body=body,
                             writer=writer, progress=progress, stop=stop))
        summary["timings_s"]["engine"] = time.perf_counter() - t1
        summary["completed"] = True
        return summary
    except TarError as exc:
        summary["error"] = str(exc)
        summary["error_code"] = exc.exit_code
        raise
    finally:
        summary["people"] = writer.people if writer else []
        _write_summary(out_dir, summary)
