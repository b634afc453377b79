"""The keypoints engine: MediaPipe BlazePose landmarks turned into body-model motion, per track.

No checkpoint is needed, so real footage works out of the box. The steps, each in its own module:
0. ``flips``: rows MediaPipe read the wrong way round (facing away for facing the camera) turned back;
1. ``focal``: the focal length from the landmarks' 2D/3D consistency when the user gave none;
2. ``shape``: one body shape per person from the limb lengths of MediaPipe's metric world landmarks;
3. ``ik``: per frame, joint rotations solved analytically from the world landmarks (elbows and knees
   bent as seen) and the translation that puts the body on the 2D landmarks;
4. ``solver``: a converged L-BFGS refinement against the 2D landmarks (and the world landmarks for
   depth), frames independent, in chunks of bounded size (no seams);
5. ``filters``: zero-phase low-pass, cut-off in Hz of the real timestamps (the raw solution is kept);
6. ``contacts``: heel/toe contact probabilities, the ground plane, planted feet pinned by a last solve.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import torch

from tar_core.capture.engines.keypoints import contacts as ct
from tar_core.capture.engines.keypoints.filters import (
    complementary_rotations,
    lowpass,
    lowpass_rotations,
    nearest_rotation,
)
from tar_core.capture.engines.keypoints.flips import unflip
from tar_core.capture.engines.keypoints.focal import FocalEstimate, estimate_focal
from tar_core.capture.engines.keypoints.ik import rest_body, solve_ik, translation_from_2d
from tar_core.capture.engines.keypoints.landmarks import MP_IDS, MP_TO_BODY, track_arrays
from tar_core.capture.engines.keypoints.shape import estimate_betas
from tar_core.capture.engines.keypoints.solver import FOOT_COLS, PT_COLS, SolveConfig, observations, pose_points, refine
from tar_core.capture.tracks import TrackData
from tar_core.geometry import camera as cam
from tar_core.geometry.rotations import axis_angle_to_matrix, matrix_to_axis_angle

__all__ = ["FitConfig", "GivenStart", "KeypointsEngine", "TrackFit", "fill_rows", "fit_track", "job_camera",
           "MP_TO_BODY"]

VERSION = "keypoints-2"


@dataclass(frozen=True)
class FitConfig:
    solve: SolveConfig = field(default_factory=SolveConfig)
    pin_solve: SolveConfig = field(default_factory=lambda: SolveConfig(iters=6, w_pin=100.0))  # few: 5 iterations
    # held the planted walk's feet nearly as well as 20 (slide 1.45 against 1.43 cm/frame, contacts at 0.35 m/s)
    # for about a tenth more fit time instead of a half
    contact: ct.ContactConfig = field(default_factory=ct.ContactConfig)
    cutoff_hz: float = 4.0  # zero-phase low-pass of the solution (capture --smooth-hz)
    # From a given start (``GivenStart``): the landmarks' correction of the start's rotations low-passed at this
    # lower cut-off, the start's own motion at ``cutoff_hz`` (``filters.complementary_rotations``); None: the
    # solution low-passed as one, at ``cutoff_hz``
    correction_hz: float | None = None
    pin_feet: bool = True
    # "ground": each planted run of a foot point held where its viewing rays meet the ground, by a last solve
    # (the 2D term on: the targets lie on the rays, so legs, not the image, move; runs the image sees moving
    # are left alone); "depth": the whole body moved along each frame's viewing ray; "shift": the whole
    # translation (costs 2D). Against "depth" (with the contact speed of ContactConfig): the planted-feet
    # walk render's slide 1.99 -> 0.96 cm/frame (2D 3.43 -> 3.58 px), the arms render's 0.44 -> 0.16.
    pin_mode: str = "ground"
    max_gap_s: float = 0.5
    unflip: bool = True  # undo MediaPipe's front/back flips of a few frames (``flips``)
    threads: int = 1  # torch threads during the fit (small batched ops: one thread is fastest)


@dataclass
class TrackFit:
    """One track's motion: the final (smoothed, feet pinned) and the raw (per-frame) solution."""

    poses: np.ndarray  # (N, 72)
    trans: np.ndarray  # (N, 3)
    poses_raw: np.ndarray
    trans_raw: np.ndarray
    betas: np.ndarray  # (10,)
    contacts: np.ndarray  # (N, 4)
    ground: np.ndarray  # (4,)
    confidence: np.ndarray  # (N,)
    info: dict


def _to_poses(R: np.ndarray) -> np.ndarray:
    return matrix_to_axis_angle(R).reshape(len(R), 72)


def _start(body, a, rows: np.ndarray, K: np.ndarray):
    """Shape, analytic rotations and translation of the observed rows."""
    betas = estimate_betas(body, a.world[rows], a.vis[rows])
    R = solve_ik(a.world[rows], rest_body(body, betas))
    with torch.no_grad():
        pts = pose_points(body, torch.tensor(betas, dtype=torch.float32)[None], torch.tensor(R, dtype=torch.float32),
                          torch.zeros(len(R), 3)).double().numpy()
    w = a.vis[rows][:, MP_IDS] * (a.vis[rows][:, MP_IDS] > 0.3)
    t = translation_from_2d(pts[:, PT_COLS], a.xy[rows][:, MP_IDS], w, K)
    return betas, R, t


class _Progress:
    """Frames done, reported in steps of at most ``STEP`` frames (a chunk's share of its iteration budget
    as it goes; the rest of a chunk that converged early, in steps, when it ends)."""

    STEP = 30

    def __init__(self, report):
        self.report, self.done = report, 0

    def to(self, done: int) -> None:
        while self.done < done:
            self.done = min(done, self.done + self.STEP)
            self.report(self.done)


def _solve(body, a, rows, betas, K, R, t, cfg: SolveConfig, stop, report, pins=None):
    """Refine chunk by chunk; progress at least every 30 frames. Returns rotations, translations, solver info."""
    out_R, out_t, infos = np.empty_like(R), np.empty_like(t), []
    prog = _Progress(report)
    for s in range(0, len(rows), cfg.chunk):
        stop.check()
        sl = slice(s, min(len(rows), s + cfg.chunk))
        r = rows[sl]
        obs = observations(a.xy[r], a.vis[r], a.world[r], a.box_size[r], R[sl, 0], cfg,
                           None if pins is None else (pins[0][sl], pins[1][sl]))
        n = sl.stop - sl.start
        out_R[sl], out_t[sl], info = refine(body, betas, K, R[sl], t[sl], obs, cfg, stop,
                                            lambda it, s=s, n=n: prog.to(s + n * min(it, cfg.iters) // cfg.iters))
        infos.append(info)
        prog.to(sl.stop)
    return out_R, out_t, infos


def _smoothed_world(a, cutoff_hz: float):
    """The track with its world landmarks low-passed like the motion. MediaPipe estimates them frame by
    frame, so their noise (in depth above all) would reach the analytic start and the prior; on the renders
    this took ACCEL from 4.9 to 4.5 mm/frame² (the fast turn's from 8.2 to 7.8) with 2D and PA-MPJPE unchanged.
    The image landmarks stay as seen."""
    rows = np.flatnonzero(a.observed)
    world = a.world.copy()
    world[rows] = lowpass(a.world[rows], a.times[rows], cutoff_hz)
    return replace(a, world=world)


def fill_rows(values: np.ndarray, rows: np.ndarray, n: int) -> np.ndarray:
    """Values of the observed ``rows`` spread to all ``n`` rows, bridged rows linearly interpolated."""
    flat = values.reshape(len(rows), -1)
    out = np.stack([np.interp(np.arange(n), rows, c) for c in flat.T], 1)
    return out.reshape((n,) + values.shape[1:])


def _reporter(progress, stage: str, total: int):
    return (lambda done: progress(stage, done, total)) if progress else (lambda done: None)


def _pin(body, a, betas, K, R, t, cfg: FitConfig, stop, progress):
    """Contacts of the smoothed motion, then planted foot points held in place (``FitConfig.pin_mode``)."""
    with torch.no_grad():
        pts = pose_points(body, torch.tensor(betas, dtype=torch.float32)[None], torch.tensor(R, dtype=torch.float32),
                          torch.tensor(t, dtype=torch.float32)).double().numpy()
    feet = pts[:, FOOT_COLS]
    contacts = ct.estimate_contacts(pts[:, :24], feet, a.times, cfg.contact)
    if not cfg.pin_feet or not (contacts.prob > cfg.contact.on).any():
        return contacts, R, t
    if cfg.pin_mode == "ground":
        target, weight = ct.ground_targets(feet, contacts, a.times, a.observed.astype(float), cfg.contact)
        rows = np.flatnonzero(weight.max(1) > 0)
        if not len(rows):  # every run was a foot the image sees moving
            return contacts, R, t
        R_p, t_p, _ = _solve(body, a, rows, betas, K, R[rows], t[rows], cfg.pin_solve, stop,
                             _reporter(progress, "feet", len(rows)), (target[rows], weight[rows]))
        return contacts, *_blended(R, t, rows, R_p, t_p, a.times, cfg.cutoff_hz)
    target, weight = ct.pin_targets(feet, contacts, a.times, cfg.contact)
    shift = ct.pin_shift(feet, target, weight, a.times, cfg.cutoff_hz)
    if cfg.pin_mode == "depth":
        return contacts, R, t * ((t[:, 2] + shift[:, 2]) / t[:, 2])[:, None]  # along each frame's ray through the root
    return contacts, R, t + shift


def _blended(R, t, rows, R_p, t_p, times, cutoff_hz: float):
    """The pinned rows' changes (rotations as axis-angle, translations) low-passed over all frames and
    applied: a pinned run eases in and out instead of jumping at its ends."""
    d_rot = np.zeros(R.shape[:2] + (3,))
    d_rot[rows] = matrix_to_axis_angle(R_p @ np.swapaxes(R[rows], -1, -2))
    d_t = np.zeros_like(t)
    d_t[rows] = t_p - t[rows]
    d_rot, d_t = lowpass(d_rot, times, cutoff_hz), lowpass(d_t, times, cutoff_hz)
    return nearest_rotation(axis_angle_to_matrix(d_rot) @ R), t + d_t


def _smoothed(R: np.ndarray, times: np.ndarray, cfg: FitConfig, R_start: np.ndarray | None) -> np.ndarray:
    """The solution's rotations (N, 24, 3, 3) low-passed; with a given start's (N, 24, 3, 3) and a
    ``cfg.correction_hz``, their correction of the start at that lower cut-off (``complementary_rotations``)."""
    if R_start is None or cfg.correction_hz is None:
        return lowpass_rotations(R, times, cfg.cutoff_hz)
    return complementary_rotations(nearest_rotation(R_start), R, times, cfg.cutoff_hz, cfg.correction_hz)


@dataclass
class GivenStart:
    """A start for the fit other than the analytic one (e.g. the tar engine's estimate): shape and, for the
    observed rows of the track arrays, rotations (n, 24, 3, 3) and translations (n, 3). The refinement's
    prior then keeps the pose near this start where the image does not decide (depth above all)."""

    betas: np.ndarray  # (10,)
    rotmat: np.ndarray
    transl: np.ndarray
    facing: np.ndarray | None = None  # (n, 3) the way the start's body faces: arbitrates MediaPipe's flips (``flips``)


def fit_track(body, a, K: np.ndarray, cfg: FitConfig, stop, progress=None, start: GivenStart | None = None) -> TrackFit:
    """Fit one track's landmarks (``TrackArrays``), from the analytic start or a ``GivenStart``."""
    n = len(a)
    rows = np.flatnonzero(a.observed)
    t0 = time.perf_counter()
    a, flipped = unflip(a, None if start is None else start.facing) if cfg.unflip else (a, 0)
    a = _smoothed_world(a, cfg.cutoff_hz)
    if start is None:
        betas, R, t = _start(body, a, rows, K)
    else:
        betas, R, t = np.asarray(start.betas, dtype=np.float64), np.asarray(start.rotmat), np.asarray(start.transl)
        if R.shape != (len(rows), 24, 3, 3) or t.shape != (len(rows), 3):
            raise ValueError(f"a given start needs one pose per observed row ({len(rows)}), got {R.shape}, {t.shape}")
    R, t, infos = _solve(body, a, rows, betas, K, R, t, cfg.solve, stop, _reporter(progress, "fitting", len(rows)))
    R_raw, t_raw = nearest_rotation(fill_rows(R, rows, n)), fill_rows(t, rows, n)
    R_start = None if start is None else fill_rows(np.asarray(start.rotmat), rows, n)
    R_s, t_s = _smoothed(R_raw, a.times, cfg, R_start), lowpass(t_raw, a.times, cfg.cutoff_hz)
    contacts, R_f, t_f = _pin(body, a, betas, K, R_s, t_s, cfg, stop, progress)
    conf = np.where(a.observed, a.vis[:, [11, 12, 23, 24]].mean(1), 0.2).clip(0, 1)
    info = {"solver_iterations": [i["iterations"] for i in infos],
            "solver_evaluations": [i["evaluations"] for i in infos],
            "solver_row_evaluations": [i["row_evaluations"] for i in infos], "ground_method": contacts.method,
            "flipped_rows": flipped, "seconds": time.perf_counter() - t0}
    return TrackFit(poses=_to_poses(R_f), trans=t_f, poses_raw=_to_poses(R_raw), trans_raw=t_raw, betas=betas,
                    contacts=contacts.prob, ground=contacts.ground, confidence=conf, info=info)


def job_camera(job, max_gap_s: float = 0.5) -> tuple[np.ndarray, FocalEstimate]:
    """A capture's K as given, or with the focal length estimated from the longest track's landmarks (``focal``)
    when the user gave none; and how it was found."""
    source = getattr(job, "focal_source", "given")
    W, H = int(round(2 * job.K[0, 2])), int(round(2 * job.K[1, 2]))
    if source != "default":
        return job.K, FocalEstimate(float(job.K[0, 0]), source, {})
    # the tar engine may run on people without landmarks (boxes from --boxes): those cannot tell the focal
    seen = [tr for tr in job.tracks.values() if tr.frame_ids and all(lm is not None for lm in tr.landmarks)]
    if not seen:
        return job.K, FocalEstimate(float(job.K[0, 0]), "default", {"reason": "no landmarks"})
    longest = max(seen, key=lambda tr: len(tr.frame_ids))
    a = track_arrays(longest, job.frame_times, max_gap_s)
    focal = estimate_focal(a.xy, a.vis, a.world, W, H, job.stop)
    return cam.intrinsics(focal.focal, (job.K[0, 2], job.K[1, 2])), focal


class KeypointsEngine:
    """The keypoints engine behind the ``Engine`` interface: no checkpoint, landmarks from pass 1."""

    name = "keypoints"

    def __init__(self, cfg: FitConfig | None = None):
        self.cfg = cfg or FitConfig()
        self.focal: FocalEstimate | None = None
        self.fits: dict = {}

    def summary(self) -> dict:
        out: dict = {"fit": {"method": VERSION, "cutoff_hz": self.cfg.cutoff_hz}}
        if self.focal is not None:
            out["focal"] = self.focal.provenance()
        if self.fits:
            out["fit"]["tracks"] = self.fits
        return out

    def provenance(self) -> dict:
        return {"config": VERSION, "checkpoint_sha256": None,
                "fit_config": {k: v for k, v in asdict(self.cfg).items() if k != "pin_solve"}}

    def run(self, job) -> None:
        threads = torch.get_num_threads()
        torch.set_num_threads(self.cfg.threads)
        try:
            K, self.focal = job_camera(job, self.cfg.max_gap_s)
            job.writer.set_camera(K, self.focal.provenance())
            for tid in sorted(job.tracks):
                job.stop.check()
                a = track_arrays(job.tracks[tid], job.frame_times, self.cfg.max_gap_s)
                fit = fit_track(job.body, a, K, self.cfg, job.stop, job.progress.progress)
                self.fits[str(tid)] = fit.info
                rows = TrackData(tid, list(a.ids), list(a.times), list(a.boxes), list(fit.confidence), [None] * len(a))
                extras = {"contacts": fit.contacts, "ground_plane": fit.ground, "poses_raw": fit.poses_raw,
                          "trans_raw": fit.trans_raw}
                job.writer.write(rows, fit.poses, fit.trans, fit.betas, fit.confidence, extras)
        finally:
            torch.set_num_threads(threads)
