"""A network's per-frame estimate of a tracked person met half way by the keypoints fit (``fused_rotations``) and
aligned to that person's landmarks (``align_track``): the tar engine's last step when it refines the keypoints fit.

The network sees each frame as a 256-pixel crop and places the limbs in the image less exactly than
MediaPipe's landmarks do (on the renders: 10 px against the keypoints fit's 4), while it may know the
depth better. ``align_track`` runs the keypoints engine's own refinement, smoothing and foot pinning
(``fit_track``) with the network's estimate as the start: the 2D term pulls the limbs onto the landmarks,
the prior keeps every joint near the network's rotation where the image does not decide.

Before that, MediaPipe's front/back readings are decided with the network's facing as well (``flip_verdict``):
on small or occluded bodies MediaPipe can read a person facing away for a second or more, continuously, which the
landmarks alone (``flips``) cannot tell from a real turn. Rows where the network faces against the reading taken
(its own flips, a few frames) are bridged from its other rows (``bridged``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tar_core.capture.engines.keypoints import FitConfig, GivenStart, TrackFit, fill_rows, fit_track
from tar_core.capture.engines.keypoints.filters import nearest_rotation
from tar_core.capture.engines.keypoints.flips import facing, flip_landmarks, flipped_rows
from tar_core.capture.engines.keypoints.landmarks import track_arrays
from tar_core.capture.tracks import TrackData
from tar_core.geometry.rotations import axis_angle_to_matrix, matrix_to_axis_angle

__all__ = ["FlipVerdict", "align_track", "body_facing", "bridged", "flip_verdict", "fused_rotations"]


def fused_rotations(R_net: np.ndarray, R_fit: np.ndarray, valid: np.ndarray, share: float) -> np.ndarray:
    """Per frame and joint (the global orientation too), the rotation ``share`` of the way (along the shortest arc)
    from the network's ``R_net`` (N, 24, 3, 3) to the keypoints fit's ``R_fit``: two estimates with errors of their
    own, met half way at 0.5. Frames the fit does not cover (``valid`` (N,) False) keep the network's.

    The global orientation is met half way too: kept as the network's, a body it leaned the wrong way (a thrower's
    side bend on real footage) stayed so, as the robust 2D term cannot pull back a trunk that far off; met half way,
    the renders' PA-MPJPE went 41.5 -> 40.3 mm and the real portrait clip's limbs 2.63 -> 0.94 % of height from
    MediaPipe's."""
    step = matrix_to_axis_angle(np.swapaxes(R_net, -1, -2) @ R_fit)  # (N, 24, 3) from the network's to the fit's
    step[~np.asarray(valid, dtype=bool)] = 0.0
    return R_net @ axis_angle_to_matrix(share * step)


def body_facing(R: np.ndarray) -> np.ndarray:
    """(N, 3) the way bodies with rotations ``R`` (N, 24, 3, 3) face: their pelvis's forward axis (+z)."""
    return R[:, 0, :, 2]


@dataclass
class FlipVerdict:
    """Which way MediaPipe's landmarks are read per track row, decided with another estimate's facing
    (``flips``), and what that says of the two estimates."""

    overturned: np.ndarray  # (N,) bool: the keypoints fit took the other reading here; its pose is of that one
    against: np.ndarray  # (N,) bool: the other estimate faces more than 90 degrees away from the reading taken


def flip_verdict(track: TrackData, frame_times: dict, facing_ref: np.ndarray,
                 cfg: FitConfig | None = None) -> FlipVerdict:
    """Read the track's landmarks with ``facing_ref`` (N, 3), one per track row (``flips.choose_readings``)."""
    cfg = cfg or FitConfig()
    n = len(track.frame_ids)
    if not cfg.unflip:
        return FlipVerdict(np.zeros(n, dtype=bool), np.zeros(n, dtype=bool))
    a = track_arrays(track, frame_times, cfg.max_gap_s)
    rows = np.flatnonzero(a.observed)  # one per track row, in order
    chosen = flipped_rows(a, facing_ref)[rows]
    world = np.where(chosen[:, None, None], flip_landmarks(a.xy[rows], a.vis[rows], a.world[rows])[2], a.world[rows])
    against = (facing(world) * facing_ref).sum(-1) < 0.0
    return FlipVerdict(overturned=flipped_rows(a)[rows] != chosen, against=against)


def bridged(R: np.ndarray, t: np.ndarray, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rotations (N, 24, 3, 3) and translations (N, 3) with the rows not in ``keep`` (N,) interpolated between the
    kept rows around them (held at the ends; ``fill_rows``); unchanged when no row is kept."""
    keep = np.asarray(keep, dtype=bool)
    if keep.all() or not keep.any():
        return R, t
    k = np.flatnonzero(keep)
    return nearest_rotation(fill_rows(R[k], k, len(R))), fill_rows(t[k], k, len(t))


def align_track(body, track: TrackData, frame_times: dict, K: np.ndarray, rotmat: np.ndarray, transl: np.ndarray,
                betas: np.ndarray, stop, progress=None, cfg: FitConfig | None = None,
                facing: np.ndarray | None = None) -> TrackFit:
    """``rotmat`` (N, 24, 3, 3), ``transl`` (N, 3): one estimate per row of ``track`` (camera frame of ``K``);
    ``betas`` (10,) the person's shape; ``facing`` (N, 3): the way an estimate the landmarks may contradict faces
    (the network's; ``flip_verdict``), which then decides MediaPipe's flipped readings with them. Returns the
    aligned motion, one row per row of ``track``. Progress: ``progress("aligning", done, total)``."""
    n = len(track.frame_ids)
    if rotmat.shape != (n, 24, 3, 3) or transl.shape != (n, 3):
        raise ValueError(f"one estimate per track row ({n}) needed, got {rotmat.shape} and {transl.shape}")
    cfg = cfg or FitConfig()
    a = track_arrays(track, frame_times, cfg.max_gap_s)  # every track row is an observed row, in order

    def report(stage: str, done: int, total: int) -> None:  # one "aligning" stage; the feet's short last solve untold
        if progress is not None and stage == "fitting":
            progress("aligning", done, total)

    fit = fit_track(body, a, K, cfg, stop, report, GivenStart(betas, rotmat, transl, facing))
    keep = np.flatnonzero(a.observed)  # the bridged rows between them are the fit's own
    return TrackFit(poses=fit.poses[keep], trans=fit.trans[keep], poses_raw=fit.poses_raw[keep],
                    trans_raw=fit.trans_raw[keep], betas=fit.betas, contacts=fit.contacts[keep], ground=fit.ground,
                    confidence=fit.confidence[keep], info=fit.info)
