"""Axis-angle to quaternions for Blender, with hemisphere continuity over time (numpy only)."""

from __future__ import annotations

import numpy as np

__all__ = ["axis_angle_to_quaternion", "continuous_quaternions", "matrix_to_quaternion", "quaternion_to_matrix"]


def axis_angle_to_quaternion(aa: np.ndarray) -> np.ndarray:
    """(..., 3) axis-angle -> (..., 4) unit quaternions (w, x, y, z), Blender's order."""
    aa = np.asarray(aa, dtype=np.float64)
    angle = np.linalg.norm(aa, axis=-1, keepdims=True)
    small = angle < 1e-8
    scale = np.where(small, 0.5 - angle**2 / 48.0, np.sin(0.5 * angle) / np.where(small, 1.0, angle))
    return np.concatenate([np.cos(0.5 * angle), aa * scale], axis=-1)


def continuous_quaternions(q: np.ndarray, axis: int = 0) -> np.ndarray:
    """Flip signs along ``axis`` (time) so consecutive quaternions have a non-negative dot product.

    q and -q are the same rotation, but Blender interpolates fcurve components linearly: a sign
    jump between keys would swing the bone through a wrong path.
    """
    q = np.moveaxis(np.array(q, dtype=np.float64), axis, 0)
    dots = np.sum(q[1:] * q[:-1], axis=-1)  # (N-1, ...)
    flips = np.concatenate([np.zeros((1,) + dots.shape[1:], dtype=bool), dots < 0], axis=0)
    sign = np.where(np.cumsum(flips, axis=0) % 2 == 1, -1.0, 1.0)
    return np.moveaxis(q * sign[..., None], 0, axis)


def quaternion_to_matrix(q: np.ndarray) -> np.ndarray:
    """(..., 4) (w, x, y, z) -> (..., 3, 3)."""
    q = np.asarray(q, dtype=np.float64)
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    w, x, y, z = np.moveaxis(q, -1, 0)
    m = np.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ], axis=-1)  # fmt: skip
    return m.reshape(q.shape[:-1] + (3, 3))


def matrix_to_quaternion(R: np.ndarray) -> np.ndarray:
    """(..., 3, 3) rotation -> (..., 4) (w, x, y, z), w >= 0; from the best-conditioned diagonal term."""
    R = np.asarray(R, dtype=np.float64)
    m = R.reshape(R.shape[:-2] + (9,))
    m00, m01, m02, m10, m11, m12, m20, m21, m22 = np.moveaxis(m, -1, 0)
    t = np.stack([1 + m00 + m11 + m22, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22], -1)
    r = np.sqrt(np.clip(t, 1e-12, None))  # 2|w|, 2|x|, 2|y|, 2|z|
    cands = np.stack([
        np.stack([r[..., 0] ** 2, m21 - m12, m02 - m20, m10 - m01], -1),
        np.stack([m21 - m12, r[..., 1] ** 2, m10 + m01, m02 + m20], -1),
        np.stack([m02 - m20, m10 + m01, r[..., 2] ** 2, m12 + m21], -1),
        np.stack([m10 - m01, m20 + m02, m21 + m12, r[..., 3] ** 2], -1),
    ], -2) / (2 * r[..., None])  # fmt: skip
    q = np.take_along_axis(cands, t.argmax(-1)[..., None, None], axis=-2)[..., 0, :]
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    return np.where(q[..., :1] < 0, -q, q)
