"""Analytic per-frame inverse kinematics from MediaPipe's metric world landmarks.

Bone directions seen in the landmarks become rotations down the SMPL chain, parents first:
- pelvis: the hip line and the torso's up direction (two-vector alignment);
- spine1-3: the rest of the torso's turn and bend (shoulder line, same up), shared in three;
- neck and head: the ear line and the nose, shared in two;
- shoulders and hips: the upper bone's direction plus the limb's hinge axis (the normal of the plane of
  shoulder-elbow-wrist or hip-knee-ankle), so an elbow or knee bends in the plane and by the angle seen;
  near straight the hinge comes from the smallest swing instead (the plane is then undefined);
- elbows, knees, wrists, ankles: the smallest rotation that turns the rest bone onto the seen one.
Collars, feet and hands keep their rest rotation. Everything is numpy, vectorised over frames.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from tar_core.capture.engines.keypoints.landmarks import MP

__all__ = ["RestBody", "rest_body", "solve_ik", "translation_from_2d"]

# Hinge axes at rest (SMPL T-pose: +x the subject's left, +y up, +z forward): the normal of the
# (upper bone, lower bone) plane when the joint flexes the human way.
HINGE_REST = {"l_elbow": (0.0, -1.0, 0.0), "r_elbow": (0.0, 1.0, 0.0), "knee": (1.0, 0.0, 0.0)}
HINGE_BLEND = 0.3  # below a bend of ~17 deg (sin 0.3) the hinge leans on the smallest swing


@dataclass(frozen=True)
class RestBody:
    """Joints (24, 3) and extra points (21, 3: smplx order) of the shaped T-pose."""

    joints: np.ndarray
    extra: np.ndarray

    def point(self, i: int) -> np.ndarray:
        return self.joints[i] if i < 24 else self.extra[i - 24]


def rest_body(body, betas: np.ndarray) -> RestBody:
    with torch.no_grad():
        z = torch.zeros(1, 3)
        out = body(z, torch.zeros(1, 69), torch.as_tensor(betas, dtype=torch.float32)[None], None, full_mesh=False)
    return RestBody(out.joints[0].double().numpy(), out.extra_joints[0].double().numpy())


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-9)


def _frame(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(..., 3, 3) orthonormal frame, columns: a, b made orthogonal to a, their cross product."""
    a = _unit(a)
    b = _unit(b - (b * a).sum(-1, keepdims=True) * a)
    return np.stack([a, b, np.cross(a, b)], axis=-1)


def align(a_rest, b_rest, a_seen, b_seen) -> np.ndarray:
    """Rotation taking ``a_rest`` exactly onto ``a_seen``'s direction, ``b_rest`` as near as it can to ``b_seen``."""
    return _frame(a_seen, b_seen) @ np.swapaxes(_frame(np.broadcast_to(a_rest, np.shape(a_seen)),
                                                       np.broadcast_to(b_rest, np.shape(b_seen))), -1, -2)


def swing(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(..., 3, 3) smallest rotation turning direction ``a`` onto direction ``b`` (Rodrigues)."""
    a, b = np.broadcast_arrays(_unit(a), _unit(b))
    axis = np.cross(a, b)
    s, c = np.linalg.norm(axis, axis=-1), (a * b).sum(-1)
    # Opposite directions: any axis perpendicular to a.
    alt = np.cross(a, np.where(np.abs(a[..., :1]) < 0.9, [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]))
    axis = np.where((s < 1e-9)[..., None] & (c < 0)[..., None], alt, axis)
    k = _unit(axis)
    angle = np.arctan2(s, c)
    kx = np.zeros(k.shape + (3,))
    kx[..., 0, 1], kx[..., 0, 2], kx[..., 1, 2] = -k[..., 2], k[..., 1], -k[..., 0]
    kx = kx - np.swapaxes(kx, -1, -2)
    sin, cos = np.sin(angle)[..., None, None], np.cos(angle)[..., None, None]
    return np.eye(3) + sin * kx + (1 - cos) * kx @ kx


def _split(R: np.ndarray, parts: int) -> np.ndarray:
    """R ** (1 / parts): the same axis, a share of the angle."""
    from tar_core.geometry.rotations import axis_angle_to_matrix, matrix_to_axis_angle

    return axis_angle_to_matrix(matrix_to_axis_angle(R) / parts)


def _mv(R: np.ndarray, v: np.ndarray) -> np.ndarray:
    return (R @ v[..., None])[..., 0]


def _limb(G_parent, rest: RestBody, j_upper, j_lower, j_end, hinge_rest, seen_upper, seen_lower):
    """Global rotation of a shoulder/hip and local rotation of its elbow/knee, bent as seen."""
    u_rest = rest.joints[j_lower] - rest.joints[j_upper]
    f_rest = rest.joints[j_end] - rest.joints[j_lower]
    Gt = np.swapaxes(G_parent, -1, -2)
    # Hinge predicted by the smallest swing from the parent, then leaned towards the plane seen.
    R_swing = G_parent @ swing(u_rest, _mv(Gt, seen_upper))
    h_pred = _mv(R_swing, np.asarray(hinge_rest))
    h_seen = np.cross(_unit(seen_upper), _unit(seen_lower))
    h = h_seen + HINGE_BLEND * h_pred
    G_upper = align(u_rest, np.asarray(hinge_rest), seen_upper, h)
    local_upper = Gt @ G_upper
    local_lower = swing(f_rest, _mv(np.swapaxes(G_upper, -1, -2), seen_lower))
    return G_upper, local_upper, local_lower


def _torso(rest: RestBody, w: np.ndarray):
    """Global pelvis rotation and global chest (spine3) rotation."""
    up_seen = 0.5 * (w[:, MP.L_SHOULDER] + w[:, MP.R_SHOULDER]) - 0.5 * (w[:, MP.L_HIP] + w[:, MP.R_HIP])
    J = rest.joints
    up_rest = 0.5 * (J[16] + J[17]) - 0.5 * (J[1] + J[2])
    G0 = align(J[1] - J[2], up_rest, w[:, MP.L_HIP] - w[:, MP.R_HIP], up_seen)
    G9 = align(J[16] - J[17], up_rest, w[:, MP.L_SHOULDER] - w[:, MP.R_SHOULDER], up_seen)
    return G0, G9


def _head(rest: RestBody, w: np.ndarray, G9: np.ndarray) -> np.ndarray:
    """Local rotation of the neck and of the head (each half the head's turn from the chest)."""
    ears_rest = rest.point(28) - rest.point(27)
    nose_rest = rest.point(24) - 0.5 * (rest.point(27) + rest.point(28))
    ears = w[:, MP.L_EAR] - w[:, MP.R_EAR]
    nose = w[:, MP.NOSE] - 0.5 * (w[:, MP.L_EAR] + w[:, MP.R_EAR])
    G_head = align(ears_rest, nose_rest, ears, nose)
    return _split(np.swapaxes(G9, -1, -2) @ G_head, 2)


def solve_ik(world: np.ndarray, rest: RestBody) -> np.ndarray:
    """(N, 33, 3) MediaPipe world landmarks (camera-like axes) -> (N, 24, 3, 3) local SMPL rotations
    (index 0: the global orientation in the landmarks' axes)."""
    w = np.asarray(world, dtype=np.float64)
    N = len(w)
    R = np.tile(np.eye(3), (N, 24, 1, 1))
    G0, G9 = _torso(rest, w)
    R[:, 0] = G0
    R[:, 3] = R[:, 6] = R[:, 9] = _split(np.swapaxes(G0, -1, -2) @ G9, 3)
    R[:, 12] = R[:, 15] = _head(rest, w, G9)
    for side, (sh, el, wr, hip, kn, an), h_el in (
        ("l", (MP.L_SHOULDER, MP.L_ELBOW, MP.L_WRIST, MP.L_HIP, MP.L_KNEE, MP.L_ANKLE), HINGE_REST["l_elbow"]),
        ("r", (MP.R_SHOULDER, MP.R_ELBOW, MP.R_WRIST, MP.R_HIP, MP.R_KNEE, MP.R_ANKLE), HINGE_REST["r_elbow"]),
    ):
        o = 0 if side == "l" else 1
        G_sh, R[:, 16 + o], R[:, 18 + o] = _limb(G9, rest, 16 + o, 18 + o, 20 + o, h_el,
                                                 w[:, el] - w[:, sh], w[:, wr] - w[:, el])
        G_hip, R[:, 1 + o], R[:, 4 + o] = _limb(G0, rest, 1 + o, 4 + o, 7 + o, HINGE_REST["knee"],
                                                w[:, kn] - w[:, hip], w[:, an] - w[:, kn])
        R[:, 20 + o] = _end_bone(G_sh @ R[:, 18 + o], rest.joints[22 + o] - rest.joints[20 + o],
                                 0.5 * (w[:, MP.L_PINKY + o] + w[:, MP.L_INDEX + o]) - w[:, wr])
        R[:, 7 + o] = _end_bone(G_hip @ R[:, 4 + o], rest.point(29 + 3 * o) - rest.point(31 + 3 * o),
                                w[:, MP.L_TOE + o] - w[:, MP.L_HEEL + o])
    return R


def _end_bone(G_parent: np.ndarray, bone_rest: np.ndarray, seen: np.ndarray) -> np.ndarray:
    """Local rotation of a wrist or ankle: the smallest swing onto the hand's or foot's direction."""
    return swing(bone_rest, _mv(np.swapaxes(G_parent, -1, -2), seen))


def translation_from_2d(points: np.ndarray, xy: np.ndarray, weight: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Per frame, the translation t that best puts ``points + t`` (N, P, 3, camera frame) on the pixels
    ``xy`` (N, P, 2): linear least squares in t (cross-multiplied projection), weights (N, P)."""
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    du, dv = xy[..., 0] - cx, xy[..., 1] - cy
    X, Y, Z = points[..., 0], points[..., 1], points[..., 2]
    zero = np.zeros_like(du)
    # fx (X + tx) = du (Z + tz);  fy (Y + ty) = dv (Z + tz)
    A = np.concatenate([np.stack([fx + zero, zero, -du], -1), np.stack([zero, fy + zero, -dv], -1)], 1)
    b = np.concatenate([du * Z - fx * X, dv * Z - fy * Y], 1)
    w = np.concatenate([weight, weight], 1)[..., None]
    AtA = np.swapaxes(A * w, 1, 2) @ A + 1e-9 * np.eye(3)
    Atb = (np.swapaxes(A * w, 1, 2) @ b[..., None])[..., 0]
    return np.linalg.solve(AtA, Atb)
