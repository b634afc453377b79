"""The keypoints engine's fit as a starting point for the tar engine's refinement (``rrm_init="keypoints"``).

Two sources of the same thing, one fitted body per frame in the full-image camera:
- ``track_starts``: a tracked person of a capture (the landmarks of pass 1, as the keypoints engine fits them);
- ``crop_sequence_starts``: a clip given only as square crops with their place in the full image (training and
  evaluation clips): MediaPipe runs on the crops, its landmarks are mapped back to full-image pixels, and the
  fit sees them as it would see a capture's.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from tar_core.capture.detection import Landmarks, PoseDetector, landmarks_box
from tar_core.capture.engines.keypoints import FitConfig, fit_track
from tar_core.capture.engines.keypoints.landmarks import track_arrays
from tar_core.capture.tracks import TrackData
from tar_core.geometry.rotations import axis_angle_to_matrix

__all__ = ["FittedRows", "crop_sequence_starts", "track_starts"]


@dataclass
class FittedRows:
    """One fitted body per row; rows with ``valid`` False have no fit (identity rotations, zeros). The fit's foot
    contacts and ground plane come along: a motion refined from the fit keeps its floor."""

    rotmat: np.ndarray  # (N, 24, 3, 3) camera frame
    betas: np.ndarray  # (N, 10)
    transl: np.ndarray  # (N, 3) full-image camera
    valid: np.ndarray  # (N,) bool
    contacts: np.ndarray  # (N, 4) heel/toe contact probabilities (0 where no fit)
    ground: np.ndarray | None = None  # (4,) the ground plane, camera frame (None: no fit)
    info: dict = field(default_factory=dict)  # the fit's own figures (solver iterations, seconds, flipped rows)

    @classmethod
    def empty(cls, n: int) -> FittedRows:
        return cls(np.tile(np.eye(3), (n, 24, 1, 1)), np.zeros((n, 10)), np.zeros((n, 3)), np.zeros(n, dtype=bool),
                   np.zeros((n, 4)))


def _fit_rows(body, track: TrackData, all_times: dict, K: np.ndarray, cfg: FitConfig, stop, progress,
              frame_ids) -> FittedRows:
    """Fit ``track`` and read the fit at ``frame_ids`` (frames the fit does not cover stay invalid)."""
    out = FittedRows.empty(len(frame_ids))
    if not track.frame_ids:
        return out
    a = track_arrays(track, all_times, cfg.max_gap_s)
    fit = fit_track(body, a, K, cfg, stop, progress)
    row_of = {int(f): r for r, f in enumerate(a.ids)}
    for k, f in enumerate(frame_ids):
        r = row_of.get(int(f))
        if r is not None:
            out.rotmat[k] = axis_angle_to_matrix(fit.poses[r].reshape(24, 3))
            out.transl[k], out.betas[k], out.valid[k] = fit.trans[r], fit.betas, True
            out.contacts[k] = fit.contacts[r]
    out.ground, out.info = np.asarray(fit.ground, dtype=np.float64), fit.info
    return out


def track_starts(body, track: TrackData, frame_times: dict, K: np.ndarray, stop, progress=None,
                 cfg: FitConfig | None = None) -> FittedRows:
    """The keypoints engine's fit of a captured track, one row per entry of ``track.frame_ids``."""
    return _fit_rows(body, track, frame_times, K, cfg or FitConfig(), stop, progress, track.frame_ids)


def _full_image_landmarks(lm: Landmarks, center: np.ndarray, size: float, crop_size: int) -> Landmarks:
    """Landmarks found in a square crop, in the pixels of the full image the crop was cut from."""
    xy = lm.image_xy * (size / crop_size) + (np.asarray(center) - size / 2.0)
    return Landmarks(image_xy=xy, visibility=lm.visibility, world=lm.world)


def crop_sequence_starts(body, crops: np.ndarray, centers: np.ndarray, sizes: np.ndarray, K: np.ndarray,
                         times: np.ndarray, stop, cfg: FitConfig | None = None) -> FittedRows:
    """Fit a clip seen only as crops: crops (F, S, S, 3) uint8 RGB, centers (F, 2) and sizes (F,) of the crop
    boxes in the full image of intrinsics K, times (F,) seconds."""
    F, S = len(crops), crops.shape[1]
    width, height = int(round(2 * K[0, 2])), int(round(2 * K[1, 2]))
    track = TrackData(track_id=0)
    with PoseDetector() as detector:  # video mode: MediaPipe tracks the person from crop to crop
        for f in range(F):
            stop.check()
            found = detector(np.ascontiguousarray(crops[f]))
            if not found:
                continue
            lm = _full_image_landmarks(found[0].payload, centers[f], float(sizes[f]), S)
            box = landmarks_box(lm, width, height)  # the person's box, as a capture's track holds it
            if box is None:
                continue
            track.frame_ids.append(f), track.times.append(float(times[f]))
            track.boxes.append(box), track.scores.append(found[0].score), track.landmarks.append(lm)
    all_times = {f: float(times[f]) for f in range(F)}
    return _fit_rows(body, track, all_times, K, cfg or FitConfig(), stop, None, range(F))
