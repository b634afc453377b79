"""Batched rotation conversions for torch tensors and numpy arrays.

Every function takes arrays with any leading batch shape and returns the same kind of array it
was given (a numpy array in gives a numpy array out, in its dtype). The maths runs in torch.

Conventions
- Rotation matrices act on column vectors: ``v' = R @ v``.
- Axis-angle: a 3-vector whose direction is the axis and whose norm is the angle in radians
  (the SMPL ``poses`` layout).
- Quaternions: ``(w, x, y, z)``, unit norm; ``matrix_to_quaternion`` returns ``w >= 0``.
- 6D: the first two **columns** of the rotation matrix, column after column:
  ``[R00, R10, R20, R01, R11, R21]``. ``rot6d_to_matrix`` turns any 6-vector back into a
  rotation by Gram-Schmidt (Zhou et al., 2019), so a network may output it unconstrained.
"""

from __future__ import annotations

import functools

import numpy as np
import torch

__all__ = [
    "axis_angle_to_matrix",
    "axis_angle_to_quaternion",
    "matrix_to_axis_angle",
    "matrix_to_quaternion",
    "matrix_to_rot6d",
    "quaternion_to_axis_angle",
    "quaternion_to_matrix",
    "rot6d_to_matrix",
]


def _numpy_in_numpy_out(fn):
    """Run a torch implementation on numpy input (float64 inside) and hand numpy back."""

    @functools.wraps(fn)
    def wrapper(x):
        if isinstance(x, np.ndarray):
            out = fn(torch.from_numpy(np.asarray(x, dtype=np.float64)))
            return out.numpy().astype(x.dtype if x.dtype.kind == "f" else np.float64)
        return fn(x)

    return wrapper


@_numpy_in_numpy_out
def axis_angle_to_matrix(aa):
    """(..., 3) axis-angle -> (..., 3, 3) rotation matrix (Rodrigues, exact near zero)."""
    return quaternion_to_matrix(axis_angle_to_quaternion(aa))


@_numpy_in_numpy_out
def axis_angle_to_quaternion(aa):
    """(..., 3) axis-angle -> (..., 4) quaternion (w, x, y, z)."""
    angle = torch.linalg.norm(aa, dim=-1, keepdim=True)  # (..., 1)
    half = 0.5 * angle
    # sin(a/2)/a, with its Taylor series near zero so gradients stay finite at the identity.
    small = angle < 1e-6
    safe = torch.where(small, torch.ones_like(angle), angle)
    scale = torch.where(small, 0.5 - angle * angle / 48.0, torch.sin(half) / safe)
    return torch.cat([torch.cos(half), aa * scale], dim=-1)


@_numpy_in_numpy_out
def quaternion_to_matrix(q):
    """(..., 4) quaternion (w, x, y, z), normalised here -> (..., 3, 3) rotation matrix."""
    q = q / torch.linalg.norm(q, dim=-1, keepdim=True)
    w, x, y, z = q.unbind(-1)
    rows = [
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ]  # fmt: skip
    return torch.stack(rows, dim=-1).reshape(q.shape[:-1] + (3, 3))


@_numpy_in_numpy_out
def matrix_to_quaternion(R):
    """(..., 3, 3) rotation matrix -> (..., 4) unit quaternion (w, x, y, z) with w >= 0.

    Shepperd's method without branches: all four candidate quaternions are formed and, per
    rotation, the one computed from the largest diagonal term (best conditioned) is kept.
    """
    m = R.reshape(R.shape[:-2] + (9,))
    m00, m01, m02, m10, m11, m12, m20, m21, m22 = m.unbind(-1)
    # 4*w^2, 4*x^2, 4*y^2, 4*z^2, each clamped so sqrt stays real under round-off.
    four_sq = torch.stack(
        [1 + m00 + m11 + m22, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22], dim=-1
    )
    # Clamped away from zero so sqrt has a finite slope: the branches not taken carry zero
    # gradient, and 0 * inf would turn it into NaN (e.g. at the identity).
    root = torch.sqrt(four_sq.clamp_min(1e-12))  # (..., 4) = 2|w|, 2|x|, 2|y|, 2|z|
    candidates = torch.stack(
        [
            torch.stack([root[..., 0] ** 2, m21 - m12, m02 - m20, m10 - m01], dim=-1),
            torch.stack([m21 - m12, root[..., 1] ** 2, m10 + m01, m02 + m20], dim=-1),
            torch.stack([m02 - m20, m10 + m01, root[..., 2] ** 2, m12 + m21], dim=-1),
            torch.stack([m10 - m01, m20 + m02, m21 + m12, root[..., 3] ** 2], dim=-1),
        ],
        dim=-2,
    )  # (..., 4 candidates, 4 components), candidate i scaled by 2*root_i
    denom = 2.0 * root.clamp_min(1e-12)
    candidates = candidates / denom[..., None]
    best = four_sq.argmax(dim=-1)  # (...)
    q = torch.gather(candidates, -2, best[..., None, None].expand(best.shape + (1, 4))).squeeze(-2)
    q = q / torch.linalg.norm(q, dim=-1, keepdim=True)
    return torch.where(q[..., :1] < 0, -q, q)


@_numpy_in_numpy_out
def quaternion_to_axis_angle(q):
    """(..., 4) quaternion (w, x, y, z) -> (..., 3) axis-angle with angle in [0, pi]."""
    q = q / torch.linalg.norm(q, dim=-1, keepdim=True)
    q = torch.where(q[..., :1] < 0, -q, q)  # same rotation, angle <= pi
    xyz = q[..., 1:]
    sin_half = torch.linalg.norm(xyz, dim=-1, keepdim=True)
    angle = 2.0 * torch.atan2(sin_half, q[..., :1])
    small = sin_half < 1e-6
    safe = torch.where(small, torch.ones_like(sin_half), sin_half)
    # angle / sin(angle/2) -> 2 as the angle goes to zero.
    scale = torch.where(small, 2.0 + angle * angle / 12.0, angle / safe)
    return xyz * scale


@_numpy_in_numpy_out
def matrix_to_axis_angle(R):
    """(..., 3, 3) rotation matrix -> (..., 3) axis-angle, via the quaternion (stable at pi)."""
    return quaternion_to_axis_angle(matrix_to_quaternion(R))


@_numpy_in_numpy_out
def rot6d_to_matrix(x):
    """(..., 6) 6D rotation (first two columns, see module doc) -> (..., 3, 3) matrix."""
    a1, a2 = x[..., :3], x[..., 3:]
    b1 = a1 / torch.linalg.norm(a1, dim=-1, keepdim=True).clamp_min(1e-8)
    a2 = a2 - (b1 * a2).sum(-1, keepdim=True) * b1
    b2 = a2 / torch.linalg.norm(a2, dim=-1, keepdim=True).clamp_min(1e-8)
    b3 = torch.linalg.cross(b1, b2, dim=-1)
    return torch.stack([b1, b2, b3], dim=-1)  # columns


@_numpy_in_numpy_out
def matrix_to_rot6d(R):
    """(..., 3, 3) rotation matrix -> (..., 6): column 0 then column 1."""
    return torch.cat([R[..., :, 0], R[..., :, 1]], dim=-1)
