"""MediaPipe BlazePose landmarks: which body point each one is, and one track's rows as arrays."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from tar_core.body_model import Attached

__all__ = ["BODY_IDS", "LANDMARK_OFFSETS", "MP", "MP_IDS", "MP_TO_BODY", "TrackArrays", "track_arrays"]


class MP:
    """BlazePose landmark indices."""

    NOSE, L_EAR, R_EAR = 0, 7, 8
    L_SHOULDER, R_SHOULDER, L_ELBOW, R_ELBOW, L_WRIST, R_WRIST = 11, 12, 13, 14, 15, 16
    L_PINKY, R_PINKY, L_INDEX, R_INDEX = 17, 18, 19, 20
    L_HIP, R_HIP, L_KNEE, R_KNEE, L_ANKLE, R_ANKLE = 23, 24, 25, 26, 27, 28
    L_HEEL, R_HEEL, L_TOE, R_TOE = 29, 30, 31, 32


# MediaPipe landmark -> body point index (0-23 SMPL joints, 24+ smplx extra joints:
# 24 nose, 25 reye, 26 leye, 27 rear, 28 lear, 29 LBigToe, 31 LHeel, 32 RBigToe, 34 RHeel).
MP_TO_BODY = {
    0: 24, 2: 26, 5: 25, 7: 28, 8: 27,  # nose, eyes, ears
    11: 16, 12: 17, 13: 18, 14: 19, 15: 20, 16: 21,  # shoulders, elbows, wrists
    23: 1, 24: 2, 25: 4, 26: 5, 27: 7, 28: 8,  # hips, knees, ankles
    29: 31, 30: 34, 31: 29, 32: 32,  # heels, foot tips (big toes)
}  # fmt: skip
MP_IDS = np.array(list(MP_TO_BODY))
BODY_IDS = np.array(list(MP_TO_BODY.values()))
# Where MediaPipe puts a landmark apart from the body's joint, as points attached to bones (metres, rest
# axes: x left, y up, z forward). Only the hips differ enough to matter: measured by least squares on
# MediaPipe's landmarks of 1,024 rendered frames (the training renders, seed 0) against the true joints
# (`scripts/calibrate_landmarks.py`),
# the left and right mirrored and averaged, the hip landmarks sit 22 mm nearer the middle, 16 mm higher and
# 35 mm further forward than the mannequin's hip joints. Fitting the joints to them anyway bent the pelvis
# and legs: with the offsets, the six evaluation renders (other seeds) went 2D 4.34 -> 4.08 px,
# PA-MPJPE 54.4 -> 52.3 mm, MPJPE 83.0 -> 78.4 mm, every clip better. The other landmarks' measured
# offsets (5-25 mm) did not carry over to the evaluation renders and are left out.
LANDMARK_OFFSETS = {23: Attached(1, 0, (-0.022, 0.016, 0.035)), 24: Attached(2, 0, (0.022, 0.016, 0.035))}
# Foot points of the contacts, in the motion file's column order: left heel, left toe, right heel, right toe.
FOOT_BODY = (31, 29, 34, 32)


@dataclass
class TrackArrays:
    """One track's rows, short gaps bridged: rows with ``observed`` False carry no data."""

    ids: np.ndarray  # (N,) frame ids
    times: np.ndarray  # (N,) seconds
    observed: np.ndarray  # (N,) bool
    xy: np.ndarray  # (N, 33, 2) pixels
    vis: np.ndarray  # (N, 33) 0..1 (0 on bridged rows)
    world: np.ndarray  # (N, 33, 3) metres, hip-centred, camera-like axes
    boxes: np.ndarray  # (N, 4)

    @property
    def box_size(self) -> np.ndarray:
        return np.maximum(self.boxes[:, 2] - self.boxes[:, 0], self.boxes[:, 3] - self.boxes[:, 1])

    def __len__(self) -> int:
        return len(self.ids)


def _bridge(track, all_times: dict, max_gap_s: float):
    """Rows for the track's frames plus short gaps; returns frame ids, times, observed mask, source row."""
    ids, times, observed, src = [], [], [], []
    for k, f in enumerate(track.frame_ids):
        if k > 0:
            prev = track.frame_ids[k - 1]
            if f - prev > 1 and all_times.get(f, math.inf) - all_times.get(prev, 0) <= max_gap_s:
                for g in range(prev + 1, f):
                    if g in all_times:
                        ids.append(g), times.append(all_times[g]), observed.append(False), src.append(k)
        ids.append(f), times.append(track.times[k]), observed.append(True), src.append(k)
    return np.array(ids), np.array(times, dtype=np.float64), np.array(observed), np.array(src)


def track_arrays(track, all_times: dict, max_gap_s: float) -> TrackArrays:
    """The track's landmarks as arrays, gaps of up to ``max_gap_s`` bridged with empty rows."""
    ids, times, observed, src = _bridge(track, all_times, max_gap_s)
    lms = [track.landmarks[k] for k in src]
    vis = np.stack([lm.visibility for lm in lms]) * observed[:, None]
    return TrackArrays(ids=ids, times=times, observed=observed, xy=np.stack([lm.image_xy for lm in lms]),
                       vis=vis, world=np.stack([lm.world for lm in lms]),
                       boxes=np.stack([track.boxes[k] for k in src]))
