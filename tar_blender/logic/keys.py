"""Keyframe arrays for a motion: whole fcurves at once, ready for ``foreach_set("co", ...)``."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .rotations import axis_angle_to_quaternion, continuous_quaternions
from .skeleton import JOINT_NAMES

__all__ = ["CONTACT_NAMES", "Curve", "contact_curves", "key_frames", "motion_curves"]


@dataclass
class Curve:
    data_path: str
    index: int
    group: str
    co: np.ndarray  # (2N,) float32: frame, value, frame, value, ...


def key_frames(frame_times: np.ndarray, fps: float, frame_start: float = 1.0) -> np.ndarray:
    """Scene frame of each row: ``frame_start + time * fps`` (fractional for variable frame rate)."""
    return frame_start + np.asarray(frame_times, dtype=np.float64) * fps


def _co(frames: np.ndarray, values: np.ndarray) -> np.ndarray:
    co = np.empty(2 * len(frames), dtype=np.float32)
    co[0::2] = frames
    co[1::2] = values
    return co


# The armature object is turned +90 degrees about X (SMPL's y-up rest pose stands upright in
# Blender's z-up world); the camera frame reaches the world by -90 degrees about X. Between the
# two lies FLIP, 180 degrees about X, which the root (pelvis) carries.
FLIP = np.diag([1.0, -1.0, -1.0])


def root_motion(poses: np.ndarray, trans: np.ndarray, pelvis_rest: np.ndarray):
    """Pelvis rotation (N, 3, 3) and location (N, 3) in the armature's space for camera-frame data.

    With the armature's world matrix A = Rx(+90) and the camera's C = Rx(-90): a camera-frame SMPL
    body R_g (J - J0) + J0 + t equals A (R' (J - J0) + J0 + t') for R' = FLIP R_g and
    t' = FLIP (J0 + t) - J0, J0 being the shaped rest pelvis (the pelvis bone's head).
    """
    from .rotations import quaternion_to_matrix

    R_g = quaternion_to_matrix(axis_angle_to_quaternion(np.asarray(poses)[:, :3]))  # (N, 3, 3)
    return FLIP @ R_g, (np.asarray(trans) + pelvis_rest) @ FLIP.T - pelvis_rest


def motion_curves(poses: np.ndarray, trans: np.ndarray, frames: np.ndarray, pelvis_rest: np.ndarray) -> list[Curve]:
    """Rotation curves for the 24 bones (quaternions, continuous in time) and the pelvis location.

    Bones are built with identity rest rotations, so a SMPL local rotation is the pose bone's
    quaternion as it is; the pelvis (root) gets the camera placement of ``root_motion``.
    """
    from .rotations import matrix_to_quaternion

    n = len(frames)
    aa = np.asarray(poses, dtype=np.float64).reshape(n, 24, 3)
    quats = axis_angle_to_quaternion(aa)  # (N, 24, 4)
    root_rot, root_loc = root_motion(poses, trans, pelvis_rest)
    quats[:, 0] = matrix_to_quaternion(root_rot)
    quats = continuous_quaternions(quats)
    curves = []
    for j, name in enumerate(JOINT_NAMES):
        path = f'pose.bones["{name}"].rotation_quaternion'
        curves += [Curve(path, c, name, _co(frames, quats[:, j, c])) for c in range(4)]
    loc = 'pose.bones["pelvis"].location'
    curves += [Curve(loc, c, "pelvis", _co(frames, root_loc[:, c])) for c in range(3)]
    return curves


CONTACT_NAMES = ("left_heel", "left_toe", "right_heel", "right_toe")


def contact_curves(contacts: np.ndarray, frames: np.ndarray) -> list[Curve]:
    """Animated custom properties ``tar_contact_<point>`` (0..1) for the motion file's contacts (N, 4)."""
    out = []
    for k, name in enumerate(CONTACT_NAMES):
        co = np.empty(2 * len(frames), dtype=np.float32)
        co[0::2], co[1::2] = frames, contacts[:, k]
        out.append(Curve(f'["tar_contact_{name}"]', 0, "TAR contacts", co))
    return out
