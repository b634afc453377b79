"""``capture``: one clip -> one motion file per tracked person, plus ``summary.json``.

Two passes over the video, each streaming frames (the clip is never held in memory):
1. ``TrackingPass``: person detection (MediaPipe, or the user's boxes) and tracking; keeps only
   boxes and landmarks per track. Boxes are then smoothed over time (which needs the future, hence
   a pass of its own).
2. ``TarPass``: crops with the smoothed boxes, the TAR engine (backbone once per frame), and a
   motion file written the moment each track's last frame is done.
The keypoints engine needs only the first pass's landmarks.
"""

from __future__ import annotations

import json
import signal
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from . import __version__
from . import camera as cam
from .atomic import atomic_path

__all__ = ["CaptureError", "CaptureOptions", "Cancelled", "capture", "EXIT_CODES"]

EXIT_CODES = {
    "usage": 2,
    "video": 10,  # missing or unreadable video
    "no_frames": 11,
    "no_person": 12,
    "checkpoint": 13,  # missing, corrupt or mismatched checkpoint
    "body_model": 14,
    "output": 15,  # output directory not writable
    "engine": 16,  # engine not available
    "SIGINT": 130,
    "SIGTERM": 143,
}


class CaptureError(Exception):
    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind
        self.code = EXIT_CODES[kind]


class Cancelled(Exception):
    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.code = 128 + signum


@dataclass
class CaptureOptions:
    clip: str
    out_dir: str
    engine: str = "auto"  # auto | tar | keypoints
    checkpoint: str | None = None
    body: str | None = None
    device: str = "auto"
    focal: float | None = None
    max_people: int = 0
    boxes: str | None = None
    fps: float | None = None  # for image folders
    batch_windows: int = 8


@dataclass
class TrackData:
    track_id: int
    frame_ids: list = field(default_factory=list)
    times: list = field(default_factory=list)
    boxes: list = field(default_factory=list)
    scores: list = field(default_factory=list)
    landmarks: list = field(default_factory=list)


class StopFlag:
    """Set by SIGINT / SIGTERM; checked between frames so a run stops within a frame's time."""

    def __init__(self):
        self.signum: int | None = None

    def install(self):
        self._old = {s: signal.signal(s, self._handle) for s in (signal.SIGINT, signal.SIGTERM)}
        return self

    def restore(self):
        for s, h in getattr(self, "_old", {}).items():
            signal.signal(s, h)

    def _handle(self, signum, frame):
        self.signum = signum

    def check(self):
        if self.signum is not None:
            raise Cancelled(self.signum)


class TrackingPass:
    """Pass 1: detect and track people over the clip (boxes and landmarks only)."""

    def __init__(self, opts: CaptureOptions, progress, stop: StopFlag):
        self.opts, self.progress, self.stop = opts, progress, stop

    def run(self, reader) -> tuple[dict[int, TrackData], int]:
        from .tracking import Tracker, load_boxes_file

        user_boxes = None
        if self.opts.boxes:
            try:
                user_boxes = load_boxes_file(self.opts.boxes)
            except (OSError, ValueError) as exc:
                raise CaptureError("usage", f"boxes file: {exc}") from None
        detector = None
        if user_boxes is None:
            from .detection import PoseDetector

            detector = PoseDetector()
        # A person may leave the frame for up to 1.5 s and keep their id.
        max_missed = max(3, int(round(1.5 * (reader.info.fps or 30.0))))
        tracker = Tracker(max_missed=max_missed, max_tracks=self.opts.max_people)
        tracks: dict[int, TrackData] = {}
        self.frame_times: dict[int, float] = {}  # every frame's time, for bridging short gaps
        n = 0
        total = reader.info.frame_count
        try:
            for frame in reader:
                self.stop.check()
                self.frame_times[frame.index] = frame.time
                dets = user_boxes.get(frame.index, []) if user_boxes is not None else detector(frame.image)
                updates, _ = tracker.update(frame.index, frame.time, dets)
                for u in updates:
                    t = tracks.setdefault(u.track_id, TrackData(u.track_id))
                    t.frame_ids.append(frame.index)
                    t.times.append(frame.time)
                    t.boxes.append(np.asarray(u.box, dtype=np.float64))
                    t.scores.append(float(u.detection.score))
                    t.landmarks.append(u.detection.payload)
                n += 1
                self.progress.progress("tracking", n, total)
        finally:
            if detector is not None:
                detector.close()
        return tracks, n


def _load_body(opts):
    from .body_model import BodyModelError, load_body_model

    try:
        return load_body_model(opts.body)
    except BodyModelError as exc:
        raise CaptureError("body_model", str(exc)) from None


def _device(name: str) -> str:
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise CaptureError("usage", "--device cuda: no CUDA device is available")
    return name


class MotionWriter:
    """Writes one track's motion file (atomically) and remembers it for the summary."""

    def __init__(self, opts: CaptureOptions, info, K: np.ndarray, body, engine: str, provenance: dict, progress):
        self.opts, self.info, self.K, self.body = opts, info, K, body
        self.engine, self.provenance, self.progress = engine, provenance, progress
        self.people: list[dict] = []

    def write(self, track: TrackData, poses: np.ndarray, trans: np.ndarray, betas: np.ndarray,
              confidence: np.ndarray) -> Path:
        import torch

        from .motion_file import Motion, write_motion

        with torch.no_grad():
            n = len(poses)
            p = torch.from_numpy(poses.astype(np.float32))
            out = self.body(p[:, :3], p[:, 3:], torch.from_numpy(np.tile(betas, (n, 1)).astype(np.float32)),
                            torch.from_numpy(trans.astype(np.float32)), full_mesh=False)
            joints = out.joints.numpy().astype(np.float64)
        motion = Motion(
            poses=poses, trans=trans, betas=betas, frame_ids=np.asarray(track.frame_ids),
            frame_times=np.asarray(track.times, dtype=np.float64),
            image_size=np.array([self.info.width, self.info.height]), camera_intrinsics=self.K,
            bbox_xyxy=np.asarray(track.boxes), joints_cam=joints, joints_2d=cam.project(joints, self.K),
            confidence=np.clip(confidence, 0.0, 1.0), mocap_framerate=self.info.fps, track_id=track.track_id,
            engine=self.engine, body_model=self.body.kind, gender=self.body.data.gender,
            provenance=json.dumps({**self.provenance, "track_id": track.track_id}, sort_keys=True),
        )  # fmt: skip
        path = write_motion(Path(self.opts.out_dir) / f"person_{track.track_id}.npz", motion)
        self.people.append({
            "track_id": track.track_id, "path": str(path), "rows": n,
            "first_frame": int(track.frame_ids[0]), "last_frame": int(track.frame_ids[-1]),
            "first_time": float(track.times[0]), "last_time": float(track.times[-1]),
        })  # fmt: skip
        self.progress.emit("output", path=str(path), track_id=track.track_id, frames=n)
        return path


class TarPass:
    """Pass 2 (tar engine): crops with smoothed boxes, the network, a file per finished track."""

    def __init__(self, opts, model, device, writer: MotionWriter, progress, stop: StopFlag, cache_features=True):
        from .engines.tar import TarEngine

        self.opts, self.writer, self.progress, self.stop = opts, writer, progress, stop
        self.engine = TarEngine(model, device, batch_windows=opts.batch_windows, cache_features=cache_features)

    def run(self, reader, tracks: dict[int, TrackData], focal: float, principal) -> None:
        from .cropping import crop_batch, square_box
        from .tracking import smooth_boxes

        plan: dict[int, list[tuple[int, int]]] = {}  # frame index -> (track id, row)
        ends: dict[int, list[int]] = {}  # frame index -> tracks whose last frame it is
        crop_boxes = {}
        for tid, t in tracks.items():
            smooth = smooth_boxes(np.asarray(t.boxes), np.asarray(t.times))
            crop_boxes[tid] = [square_box(b) for b in smooth]
            for row, f in enumerate(t.frame_ids):
                plan.setdefault(f, []).append((tid, row))
            ends.setdefault(t.frame_ids[-1], []).append(tid)
        results: dict[int, dict[int, object]] = {tid: {} for tid in tracks}
        total = reader.info.frame_count
        for n, frame in enumerate(reader, start=1):
            self.stop.check()
            items = plan.get(frame.index, [])
            if items:
                boxes = [crop_boxes[tid][row] for tid, row in items]
                crops = crop_batch(frame.image, boxes)
                geoms = [(b.center, float(b.size), float(focal), np.asarray(principal)) for b in boxes]
                done = self.engine.add([(tid, row, crops[k], geoms[k]) for k, (tid, row) in enumerate(items)])
                for r in done:
                    results[r.track_id][r.row] = r
            for tid in ends.get(frame.index, []):
                for r in self.engine.end_track(tid):
                    results[r.track_id][r.row] = r
                self._write(tracks[tid], results.pop(tid))
            self.progress.progress("tar", n, total)

    def _write(self, track: TrackData, rows: dict) -> None:
        ordered = [rows[i] for i in range(len(track.frame_ids))]
        poses = np.stack([r.poses for r in ordered]).astype(np.float64)
        trans = np.stack([r.trans for r in ordered]).astype(np.float64)
        betas = np.median(np.stack([r.betas for r in ordered]), axis=0)  # one shape per person
        self.writer.write(track, poses, trans, betas, np.asarray(track.scores))


def _check_output_dir(out_dir: Path) -> None:
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out_dir, prefix=".write-test-"):
            pass
    except OSError as exc:
        raise CaptureError("output", f"output directory not writable: {out_dir} ({exc.strerror or exc})") from None


def _write_summary(out_dir: Path, summary: dict) -> None:
    with atomic_path(out_dir / "summary.json", suffix=".json") as tmp, open(tmp, "w") as fh:
        json.dump(summary, fh, indent=2, default=str)


def capture(opts: CaptureOptions, progress, stop: StopFlag | None = None) -> dict:
    """Run a capture; returns the summary. Raises CaptureError (with an exit code) or Cancelled;
    in both cases ``summary.json`` says what was finished and that the run did not complete."""
    from .video import VideoError, VideoReader

    stop = stop or StopFlag()
    out_dir = Path(opts.out_dir)
    _check_output_dir(out_dir)
    engine = opts.engine
    if engine == "auto":
        engine = "tar" if opts.checkpoint else "keypoints"
    summary: dict = {"completed": False, "engine": engine, "engine_version": __version__, "clip": str(opts.clip),
                     "engine_code": str(Path(__file__).resolve().parent), "timings_s": {}, "people": []}
    writer = None
    try:
        try:
            reader = VideoReader(opts.clip, fps=opts.fps)
        except VideoError as exc:
            raise CaptureError("video", str(exc)) from None
        info = reader.info
        summary["video"] = asdict(info)
        focal = float(opts.focal) if opts.focal else cam.default_focal(info.width, info.height)
        principal = cam.default_principal_point(info.width, info.height)
        K = cam.intrinsics(focal, principal)
        body = _load_body(opts)
        summary["body_model"] = body.describe()
        model, ckpt_info = None, None
        if engine == "tar":
            from .checkpoints import CheckpointError, demo_checkpoint, load_checkpoint

            device = _device(opts.device)
            try:
                # No public TAR weights exist: without --checkpoint the built-in demo (tar-tiny trained on
                # synthetic renders) runs, and says so; it is never replaced by random weights.
                path = opts.checkpoint or demo_checkpoint()
                ck = load_checkpoint(path, body=body, device=device)
            except CheckpointError as exc:
                raise CaptureError("checkpoint", str(exc)) from None
            model = ck.model
            ckpt_info = {"path": str(ck.path), "sha256": ck.sha256, "variant": ck.config.name,
                         "provenance": ck.provenance, "builtin_demo": not opts.checkpoint}
            summary["checkpoint"] = ckpt_info
            notes = []
            if not opts.checkpoint:
                notes.append(f"using the built-in demo checkpoint ({ck.config.name}, trained on synthetic renders "
                             "only; see tar_core/weights/MODEL_CARD.md) - pass --checkpoint for your own")
            if ck.body_model and ck.body_model != body.kind:
                notes.append(f"the checkpoint was trained with the {ck.body_model} body but runs with the "
                             f"{body.kind} body: its shape (betas) estimates do not transfer")
            for note in notes:
                print(f"note: {note}", file=sys.stderr)
            summary["notes"] = notes
        elif engine == "keypoints":
            if opts.boxes:
                raise CaptureError("usage", "the keypoints engine finds people itself: --boxes needs the tar engine")
            try:
                from .engines import keypoints as keypoints_engine
            except ImportError:
                raise CaptureError("engine", "the keypoints engine is not available in this version; "
                                             "use --engine tar --checkpoint FILE") from None
        else:
            raise CaptureError("usage", f"unknown engine {engine!r}")
        progress.emit("start", clip=str(opts.clip), engine=engine, frames=info.frame_count,
                      width=info.width, height=info.height, fps=info.fps, body_model=body.describe())
        provenance = {
            "engine_version": __version__, "engine": engine, "config": ckpt_info["variant"] if ckpt_info else None,
            "checkpoint_sha256": ckpt_info["sha256"] if ckpt_info else None, "body_model": body.kind,
            "body_model_sha256": body.data.sha256, "video_path": str(Path(opts.clip).resolve()),
            "video_size": [info.width, info.height], "video_fps": info.fps, "video_rotation": info.rotation,
            "video_codec": info.codec,
        }  # fmt: skip
        writer = MotionWriter(opts, info, K, body, engine, provenance, progress)

        t0 = time.perf_counter()
        tracking = TrackingPass(opts, progress, stop)
        with reader:
            tracks, n_frames = tracking.run(reader)
        summary["timings_s"]["tracking"] = time.perf_counter() - t0
        summary["frames_read"] = n_frames
        if n_frames == 0:
            raise CaptureError("no_frames", f"{opts.clip}: the clip has no frames")
        tracks = {tid: t for tid, t in tracks.items() if len(t.frame_ids) >= 2}  # drop one-frame blips
        if not tracks:
            raise CaptureError("no_person", f"{opts.clip}: no person found in {n_frames} frames")
        summary["tracks"] = {str(tid): len(t.frame_ids) for tid, t in tracks.items()}

        t1 = time.perf_counter()
        if engine == "tar":
            tar_pass = TarPass(opts, model, device, writer, progress, stop)
            with VideoReader(opts.clip, fps=opts.fps) as reader2:
                tar_pass.run(reader2, tracks, focal, principal)
        else:
            keypoints_engine.run(tracks, writer, body, K, progress, stop, all_times=tracking.frame_times)
        summary["timings_s"]["engine"] = time.perf_counter() - t1
        summary["completed"] = True
        return summary
    except (CaptureError, Cancelled) as exc:
        summary["error"] = str(exc)
        raise
    finally:
        summary["people"] = writer.people if writer else []
        _write_summary(out_dir, summary)
