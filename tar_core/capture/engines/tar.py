"""The tar engine: a second pass over the video with crops of the smoothed boxes, the network on them.

``TarCaptureEngine`` loads the checkpoint (the built-in demo one when none is given), re-reads the
clip, crops every tracked person and feeds ``TarEngine``; each track's motion file is written the
moment its last frame is done.

``TarEngine`` keeps per-frame backbone features in a ring buffer, windows of T frames.

With a checkpoint whose RRM starts from the keypoints fit (``rrm_init="keypoints"``), every track is first
fitted as the keypoints engine fits it (``keypoints.starts``), and the network's estimate is at last aligned to
the track's landmarks by the same engine's refinement, smoothing and foot pinning (``keypoints.align``; off with
``--no-align``: then the motion keeps the start's contacts and ground plane); there the landmarks' correction of the
estimate is smoothed harder than the estimate (``CORRECTION_SHARE``), so their frame-to-frame noise stays out.
Otherwise the network's motion is low-passed at ``SMOOTH_HZ`` of real time (``--smooth-hz``). The raw (unsmoothed)
solution is kept beside it.

The backbone (and the LTE's per-frame part) runs once per frame and person, crops of ``ENCODE_BATCH`` frames
at a time; the features wait in a ring buffer of T entries.
When frame t + T//2 arrives, frame t's window (frames t - T//2 .. t + T//2, clip edges padded by
repeating the first / last frame) is complete and queued; queued windows run through the temporal
part in batches. The RRM's last estimate is the frame's result.
"""

from __future__ import annotations

import sys
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass, replace

import numpy as np
import torch

from tar_core.capture.engines.keypoints import FitConfig, job_camera
from tar_core.capture.engines.keypoints.align import align_track, body_facing, bridged, flip_verdict, fused_rotations
from tar_core.capture.engines.keypoints.filters import lowpass, lowpass_rotations
from tar_core.capture.engines.keypoints.starts import FittedRows, track_starts
from tar_core.capture.tracking import smooth_boxes
from tar_core.capture.video import VideoReader
from tar_core.errors import Cancelled, UsageError
from tar_core.geometry.cropping import crop_batch, square_box
from tar_core.geometry.rotations import axis_angle_to_matrix, matrix_to_axis_angle
from tar_core.network.checkpoints import demo_checkpoint, load_checkpoint
from tar_core.network.refinement import Geometry, Start

__all__ = ["FrameResult", "SMOOTH_HZ", "TarCaptureEngine", "TarEngine", "resolve_device", "smooth_motion"]

SMOOTH_HZ = 4.0  # the motion's low-pass cut-off (capture --smooth-hz), the keypoints engine's default too
# Crops encoded per trunk call: with 2 threads a batch of 8 costs 12.8 ms a crop against 22.6 one at a time.
ENCODE_BATCH = 8
# Refining the keypoints fit, each joint's rotation goes this share of the way from the network's estimate to the
# fit's before both are aligned to the landmarks. Measured (7 dev renders / real footage, elbow bend off MediaPipe's;
# the global orientation kept as the network's): share 0: PA-MPJPE 41.9 mm, elbows 23.3 deg; 0.3: 39.7, 17.3; 0.5:
# 41.5, 13.4 (2D 3.77 px, the best of the three); the global orientation met half way as well: 40.3, 13.1. The
# network reads depth better on renders, the fit agrees with real people's landmarks.
FIT_SHARE = 0.5
# Aligned, the refinement stops after this many of the RRM's 5 iterations: the later ones mostly turn the global
# orientation, which is now met half way by the fit's, and on real people they carry the estimate further from
# MediaPipe's. Measured (7 dev renders PA-MPJPE / MPJPE; real footage limbs % of height / elbow / knee deg off
# MediaPipe's): 5: 40.3 / 60.8, 1.50 / 13.1 / 8.3; 3: 41.1 / 60.1; 2: 41.9 / 60.1, 1.20 / 11.9 / 8.2; 1: 42.9 / 59.6,
# 1.19 / 10.6 / 7.6 (but held-out ACCEL 16.0 at 2 against 18.2 at 1). Three iterations fewer are faster, too.
ALIGNED_RRM_ITERATIONS = 2
# Aligned, the rotations' correction by the landmarks is low-passed at this share of the motion's cut-off (2.5 Hz
# at the default 4), the estimate it corrects at the cut-off itself (``filters.complementary_rotations``): the
# network's estimate is steady, the landmarks' frame-to-frame noise is what reached the motion (a 256-pixel render
# with the arms overhead: 50-130 mm/frame^2 on the wrists where the truth has 5). Measured (6 held-out 256-pixel
# renders ACCEL mm/frame^2 / real footage limbs % of height off MediaPipe's, the mean of the clips' medians): share
# 1 (the solution low-passed as one): 9.3 / 1.29; 0.75: 7.9 / 1.35; 0.625: 7.4 / 1.39; 0.5: 7.0 / 1.61 (with the
# translation's correction at 0.5 too); 0.25: 6.6 / 2.26. Elbow and knee bends on real footage unchanged throughout.
CORRECTION_SHARE = 0.625


@dataclass
class FrameResult:
    track_id: int
    row: int  # position of the frame within its track
    poses: np.ndarray  # (72,)
    betas: np.ndarray  # (10,)
    trans: np.ndarray  # (3,)


@dataclass
class _Entry:
    row: int
    global_vec: torch.Tensor | None  # (Dg,) cached feature (None in naive mode)
    local_map: torch.Tensor | None  # (C, S, S) the LTE's per-frame part (without an LTE: the map, (Dl, 64, 64))
    crop: torch.Tensor | None  # (3, S, S) kept only by the naive mode
    geom: tuple  # centre (2,), size, focal, principal (2,)
    start: tuple | None = None  # the keypoints fit: rotmat (24, 3, 3), betas (10,), transl (3,), valid


@dataclass
class _Track:
    entries: deque
    next_out: int = 0  # next row whose result is still to come
    last_row: int = -1


@dataclass
class _Window:
    track_id: int
    row: int
    entries: list  # T entries (edge-padded)
    geom: tuple
    start: tuple | None


class TarEngine:
    """Feed crops per frame with ``add``; results come back as windows complete.

    cache_features=False recomputes the backbone for all T frames of every window (the naive way,
    kept for the benchmark's comparison); rrm_iterations: stop the RRM after this many iterations (None: all).
    """

    def __init__(self, model, device: str | torch.device = "cpu", batch_windows: int = 8, cache_features: bool = True,
                 rrm_iterations: int | None = None):
        self.model = model.eval().to(device)
        self.rrm_iterations = rrm_iterations
        self.cfg = model.cfg
        self.device = torch.device(device)
        self.T = self.cfg.seq_len
        self.half = self.T // 2
        self.batch_windows = batch_windows
        self.cache = cache_features
        self.tracks: dict[int, _Track] = {}
        self.queue: list[_Window] = []
        self.frames_encoded = 0

    @torch.no_grad()
    def add(self, items: list[tuple[int, int, torch.Tensor, tuple]]) -> list[FrameResult]:
        """Items (track_id, row, crop (3, S, S), geometry[, start]) of one or more video frames, in frame order
        (their crops are encoded in one batch); a start (the keypoints fit of that frame: rotmat (24, 3, 3), betas
        (10,), transl (3,), valid) is where a ``rrm_init="keypoints"`` model's RRM begins. Returns finished
        results."""
        if not items:
            return []
        crops = torch.stack([it[2] for it in items]).to(self.device)
        if self.cache:
            g, m = self.model.encode_frames(crops)  # (B, Dg), (B, Dl, 64, 64): once per frame
            m = self.model.encode_local(m)  # (B, C, S, S) with an LTE: its per-frame part, once per frame too
            self.frames_encoded += len(items)
        for k, (tid, row, crop, geom, *start) in enumerate(items):
            track = self.tracks.setdefault(tid, _Track(entries=deque(maxlen=self.T)))
            if row != track.last_row + 1:
                raise ValueError(f"track {tid}: rows must arrive in order (got {row} after {track.last_row})")
            track.last_row = row
            track.entries.append(_Entry(row, g[k] if self.cache else None, m[k] if self.cache else None,
                                        None if self.cache else crop, geom, start[0] if start else None))
            # Frame row - half now has its whole window (unless it is near the clip's start: padded).
            while track.next_out <= row - self.half:
                self._queue(tid, track, track.next_out)
                track.next_out += 1
        return self._run(force=False)

    @torch.no_grad()
    def end_track(self, track_id: int) -> list[FrameResult]:
        """The track has no more frames: its last windows are padded by repeating the last frame."""
        track = self.tracks.get(track_id)
        if track is None:
            return []
        while track.next_out <= track.last_row:
            self._queue(track_id, track, track.next_out)
            track.next_out += 1
        del self.tracks[track_id]
        return self._run(force=True)

    def _queue(self, tid: int, track: _Track, row: int) -> None:
        by_row = {e.row: e for e in track.entries}  # the ring buffer holds every row a window needs
        rows = [min(max(r, 0), track.last_row) for r in range(row - self.half, row + self.half + 1)]  # edge padding
        self.queue.append(_Window(tid, row, [by_row[r] for r in rows], by_row[row].geom, by_row[row].start))

    def _run(self, force: bool) -> list[FrameResult]:
        out = []
        while self.queue and (force or len(self.queue) >= self.batch_windows):
            batch, self.queue = self.queue[: self.batch_windows], self.queue[self.batch_windows:]
            out += self._forward(batch)
        return out

    def _forward(self, batch: list[_Window]) -> list[FrameResult]:
        B, T = len(batch), self.T
        if self.cache:
            g = torch.stack([torch.stack([e.global_vec for e in w.entries]) for w in batch])  # (B, T, Dg)
            m = torch.stack([torch.stack([e.local_map for e in w.entries]) for w in batch])  # (B, T, C, S, S)
        else:  # naive: the backbone again for every frame of every window
            crops = torch.stack([torch.stack([e.crop for e in w.entries]) for w in batch]).to(self.device)
            g, m = self.model.encode_frames(crops.flatten(0, 1))
            self.frames_encoded += B * T
            g, m = g.view(B, T, -1), m.view(B, T, *m.shape[1:])
        tau, mid = self.cfg.tau, T // 2
        geom = Geometry(
            center=torch.tensor(np.array([w.geom[0] for w in batch]), dtype=torch.float32, device=self.device),
            size=torch.tensor([w.geom[1] for w in batch], dtype=torch.float32, device=self.device),
            focal=torch.tensor([w.geom[2] for w in batch], dtype=torch.float32, device=self.device),
            principal=torch.tensor(np.array([w.geom[3] for w in batch]), dtype=torch.float32, device=self.device),
        )
        est = self.model.forward_features(g, m[:, mid - tau: mid + tau + 1], geom, self._start(batch, geom),
                                          local_encoded=self.cache, iterations=self.rrm_iterations)[-1]
        aa = matrix_to_axis_angle(est.rotmat.double()).reshape(B, 72).float().cpu().numpy()
        betas, trans = est.betas.cpu().numpy(), est.transl.cpu().numpy()
        return [FrameResult(w.track_id, w.row, aa[i], betas[i], trans[i]) for i, w in enumerate(batch)]

    def _start(self, batch: list[_Window], geom: Geometry) -> Start | None:
        """The windows' keypoints fits as one Start (None when no window has one)."""
        if all(w.start is None for w in batch):
            return None
        none = (np.eye(3)[None].repeat(24, 0), np.zeros(10), np.array([0.0, 0.0, 1.0]), False)
        parts = [w.start if w.start is not None else none for w in batch]

        def stack(i):
            return torch.tensor(np.array([p[i] for p in parts]), dtype=torch.float32, device=self.device)

        return Start.from_fit(stack(0), stack(1), stack(2), stack(3) > 0, geom)


def resolve_device(name: str) -> str:
    """``auto`` is CUDA when available; asking for CUDA without one is a usage error."""
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA device is available")
    return name


class TarCaptureEngine:
    """The tar engine behind the ``Engine`` interface."""

    name = "tar"

    def __init__(self, checkpoint, device: str, builtin_demo: bool, notes: list[str], batch_windows: int = 8,
                 smooth_hz: float | None = None, align: bool = True):
        self.ck, self.device, self.builtin_demo = checkpoint, device, builtin_demo
        self.notes, self.batch_windows = notes, batch_windows
        self.smooth_hz = SMOOTH_HZ if smooth_hz is None else smooth_hz
        self.align = align and checkpoint.config.rrm_init == "keypoints"  # needs the start's landmarks
        self.focal = None  # FocalEstimate: how the camera was found (given or estimated, as the keypoints engine does)
        self.fits: dict[str, dict] = {}  # per track: the keypoints fit it starts from and its alignment (figures)
        # aligned, the RRM stops early (ALIGNED_RRM_ITERATIONS); otherwise all of the checkpoint's iterations run
        self.rrm_iterations = ALIGNED_RRM_ITERATIONS if self.align else checkpoint.config.iterations

    @classmethod
    def load(cls, path: str | None, body, device: str = "auto", batch_windows: int = 8,
             smooth_hz: float | None = None, align: bool = True) -> TarCaptureEngine:
        """Load ``path`` (raises CheckpointError). No public TAR weights exist: without a path the built-in
        demo (trained on synthetic renders) runs, and says so; it is never replaced by random weights."""
        device = resolve_device(device)
        ck = load_checkpoint(path or demo_checkpoint(), body=body, device=device)
        notes = []
        if not path:
            notes.append(f"using the built-in demo checkpoint ({ck.config.name}, trained on synthetic renders "
                         "only; see tar_core/weights/MODEL_CARD.md) - pass --checkpoint for your own")
        if ck.body_model and ck.body_model != body.kind:
            notes.append(f"the checkpoint was trained with the {ck.body_model} body but runs with the "
                         f"{body.kind} body: its shape (betas) estimates do not transfer")
        for note in notes:
            print(f"note: {note}", file=sys.stderr)
        return cls(ck, device, not path, notes, batch_windows, smooth_hz, align)

    def summary(self) -> dict:
        ck = self.ck
        return {"checkpoint": {"path": str(ck.path), "sha256": ck.sha256, "variant": ck.config.name,
                               "provenance": ck.provenance, "builtin_demo": self.builtin_demo},
                "notes": self.notes, **({"fit": {"tracks": self.fits}} if self.fits else {}),
                **({"focal": self.focal.provenance()} if self.focal is not None else {})}

    def provenance(self) -> dict:
        return {"config": self.ck.config.name, "checkpoint_sha256": self.ck.sha256, "smooth_hz": self.smooth_hz,
                "rrm_init": self.ck.config.rrm_init, "aligned_to_landmarks": self.align,
                "fit_share": FIT_SHARE if self.align else None,
                "correction_hz": CORRECTION_SHARE * self.smooth_hz if self.align else None,
                "rrm_iterations": self.rrm_iterations}

    def _starts(self, job) -> dict[int, FittedRows] | None:
        """With ``rrm_init="keypoints"``: every track fitted by the keypoints engine first, in the same camera."""
        if self.ck.config.rrm_init != "keypoints":
            return None
        with _one_thread():
            return {tid: track_starts(job.body, t, job.frame_times, job.K, job.stop, job.progress.progress)
                    for tid, t in sorted(job.tracks.items())}

    def run(self, job) -> None:
        K, self.focal = job_camera(job)  # the focal length the keypoints engine would use, the same way
        job.writer.set_camera(K, self.focal.provenance())
        job = replace(job, K=K)
        starts = self._starts(job)
        engine = TarEngine(self.ck.model, self.device, batch_windows=self.batch_windows,
                           rrm_iterations=self.rrm_iterations)
        plan, ends, crop_boxes = _crop_plan(job.tracks)
        results: dict[int, dict[int, FrameResult]] = {tid: {} for tid in job.tracks}
        focal, principal = float(job.K[0, 0]), np.array([job.K[0, 2], job.K[1, 2]])
        pending: list[tuple] = []  # crops of the last frames, encoded together (the trunk is faster in batches)
        rows_to_align = sum(len(t.frame_ids) for t in job.tracks.values()) if self.align else 0

        def flush() -> None:
            for r in engine.add(pending):
                results[r.track_id][r.row] = r
            pending.clear()

        with VideoReader(job.clip, fps=job.fps, stop=job.stop) as reader:
            progress = _TarProgress(job.progress.progress, reader.info.frame_count, rows_to_align)
            for n, frame in enumerate(reader, start=1):
                job.stop.check()
                items = plan.get(frame.index, [])
                if items:
                    boxes = [crop_boxes[tid][row] for tid, row in items]
                    crops = crop_batch(frame.image, boxes)
                    pending += [(tid, row, crops[k], (boxes[k].center, float(boxes[k].size), focal, principal),
                                 _start_of(starts, tid, row)) for k, (tid, row) in enumerate(items)]
                if len(pending) >= ENCODE_BATCH or ends.get(frame.index):
                    flush()
                for tid in ends.get(frame.index, []):
                    for r in engine.end_track(tid):
                        results[r.track_id][r.row] = r
                    self._finish(job, tid, results.pop(tid), starts, progress)
                progress.frame(n)
            flush()

    def _finish(self, job, tid: int, rows: dict[int, FrameResult], starts, progress: _TarProgress) -> None:
        """Write a finished track's motion; keep the figures of its keypoints fit and alignment for the summary."""
        fit = None if starts is None else starts[tid]
        aligned = _write_track(job, job.tracks[tid], rows, fit, self.smooth_hz, self.align, progress)
        if fit is not None:
            self.fits[str(tid)] = {"start": fit.info, "aligned": aligned}


class _TarProgress:
    """The "tar" stage: frames read plus, when estimates are aligned, track rows aligned. Both only grow, so a
    person aligned while others are still read keeps the bar moving forward."""

    def __init__(self, report, frames: int, rows_to_align: int):
        self.report, self.total, self.frames, self.aligned = report, frames + rows_to_align, 0, 0

    def frame(self, n: int) -> None:
        self.frames = n
        self.report("tar", self.frames + self.aligned, self.total)

    def aligning(self, stage: str, done: int, total: int) -> None:
        self.report("tar", self.frames + self.aligned + done, self.total)

    def aligned_track(self, rows: int) -> None:
        self.aligned += rows


def _start_of(starts: dict[int, FittedRows] | None, tid: int, row: int) -> tuple | None:
    if starts is None:
        return None
    s = starts[tid]
    return s.rotmat[row], s.betas[row], s.transl[row], bool(s.valid[row])


def _crop_plan(tracks: dict) -> tuple[dict, dict, dict]:
    """frame index -> [(track id, row)], frame index -> tracks ending there, track id -> square crop boxes."""
    plan: dict[int, list[tuple[int, int]]] = {}
    ends: dict[int, list[int]] = {}
    crop_boxes = {}
    for tid, t in tracks.items():
        smooth = smooth_boxes(np.asarray(t.boxes), np.asarray(t.times))
        crop_boxes[tid] = [square_box(b) for b in smooth]
        for row, f in enumerate(t.frame_ids):
            plan.setdefault(f, []).append((tid, row))
        ends.setdefault(t.frame_ids[-1], []).append(tid)
    return plan, ends, crop_boxes


def smooth_motion(poses: np.ndarray, trans: np.ndarray, times: np.ndarray, cutoff_hz: float):
    """Zero-phase low-pass of per-frame estimates (poses (N, 72) axis-angle, trans (N, 3)) at the clip's real
    timestamps, as the keypoints engine smooths its fit: the network sees each frame through a window, but
    nothing ties neighbouring outputs together, and their frame-to-frame noise is what ACCEL measures."""
    R = axis_angle_to_matrix(poses.reshape(len(poses), 24, 3))
    R = lowpass_rotations(R, times, cutoff_hz)
    return matrix_to_axis_angle(R).reshape(len(poses), 72), lowpass(trans, times, cutoff_hz)


def _write_track(job, track, rows: dict[int, FrameResult], fit: FittedRows | None, smooth_hz: float,
                 align: bool, progress: _TarProgress) -> dict | None:
    """One track's motion file: smoothed (the raw estimates kept beside); refined from the keypoints fit, it is
    aligned to the landmarks (``align``; returns the alignment's figures) or keeps the fit's contacts and ground
    plane. Cancelled while aligning, the network's own estimate is written (finished work is kept), then the
    cancel goes on."""
    ordered = [rows[i] for i in range(len(track.frame_ids))]
    raw_poses = np.stack([r.poses for r in ordered]).astype(np.float64)
    raw_trans = np.stack([r.trans for r in ordered]).astype(np.float64)
    betas = np.median(np.stack([r.betas for r in ordered]), axis=0)  # one shape per person
    scores = np.asarray(track.scores)
    if fit is not None and align:
        R, t, facing, verdict = _fused_start(job, track, raw_poses, raw_trans, fit)
        try:
            m = _aligned(job, track, R, t, betas, smooth_hz, progress.aligning, facing)
        except Cancelled:
            _write_unaligned(job, track, raw_poses, raw_trans, betas, scores, fit, smooth_hz,
                             {"aligned_to_landmarks": False, "fit_share": None, "correction_hz": None})
            raise
        progress.aligned_track(len(ordered))
        extras = {"poses_raw": m.poses_raw, "trans_raw": m.trans_raw, "contacts": m.contacts, "ground_plane": m.ground}
        job.writer.write(track, m.poses, m.trans, m.betas, scores, extras)
        return {**m.info, "fit_rows_other_reading": int(verdict.overturned.sum()),
                "network_rows_turned_round": int(verdict.against.sum())}
    _write_unaligned(job, track, raw_poses, raw_trans, betas, scores, fit, smooth_hz)
    return None


def _fused_start(job, track, raw_poses: np.ndarray, raw_trans: np.ndarray, fit: FittedRows):
    """The alignment's start: the network's estimate (poses (N, 72), trans (N, 3)) met ``FIT_SHARE`` of the way by the
    keypoints fit, after MediaPipe's front/back readings are decided with the network's facing (``flip_verdict``):
    rows where the network faces against the reading taken (a flip of its own) are bridged from its other rows, and
    rows where the fit took the other reading keep the network's pose (the fit's is of the other reading). Returns
    rotations (N, 24, 3, 3), translations (N, 3), the network's facing (N, 3) and the verdict."""
    R_net = axis_angle_to_matrix(raw_poses.reshape(-1, 24, 3))
    facing = body_facing(R_net)
    verdict = flip_verdict(track, job.frame_times, facing)
    R_net, t = bridged(R_net, raw_trans, ~verdict.against)
    return fused_rotations(R_net, fit.rotmat, fit.valid & ~verdict.overturned, FIT_SHARE), t, facing, verdict


def _write_unaligned(job, track, raw_poses, raw_trans, betas, scores, fit: FittedRows | None, smooth_hz: float,
                     provenance: dict | None = None) -> None:
    """The network's own estimates, low-passed; refined from the keypoints fit, with the fit's floor and contacts."""
    poses, trans = smooth_motion(raw_poses, raw_trans, np.asarray(track.times, dtype=np.float64), smooth_hz)
    extras = {"poses_raw": raw_poses, "trans_raw": raw_trans}
    if fit is not None and fit.ground is not None:
        extras.update(contacts=fit.contacts, ground_plane=fit.ground)
    job.writer.write(track, poses, trans, betas, scores, extras, provenance)


def _aligned(job, track, R: np.ndarray, trans: np.ndarray, betas: np.ndarray, smooth_hz: float, progress,
             facing: np.ndarray | None = None):
    """Estimates (R (N, 24, 3, 3), trans (N, 3)) aligned to the track's landmarks, MediaPipe's flips decided with
    the network's ``facing`` (N, 3)."""
    with _one_thread():
        return align_track(job.body, track, job.frame_times, job.K, R, trans, betas, job.stop, progress,
                           FitConfig(cutoff_hz=smooth_hz, correction_hz=CORRECTION_SHARE * smooth_hz), facing)


@contextmanager
def _one_thread():
    """torch on one thread for a while: the keypoints fit's small batched ops run fastest so."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)

