"""Full-image (CLIFF) camera maths, for numpy arrays and torch tensors alike.

The engine crops a square box around the person, but it models the camera of the *whole*
image: a pinhole with focal length ``f`` (pixels) and principal point ``(cx, cy)``. The crop
camera a network predicts, ``(s, tx, ty)``, is a weak-perspective camera of the box; it maps to a
full-image translation of the body (Li et al., CLIFF, ECCV 2022):

    Tz = 2 f / (b s),  Tx = tx + 2 (cx_box - cx) / (b s),  Ty = ty + 2 (cy_box - cy) / (b s)

where ``b`` is the box side in pixels. All points are in the OpenCV camera frame (+x right,
+y down, +z forward), metres. Every function broadcasts over leading batch dimensions.
"""

from __future__ import annotations

import math

import numpy as np
import torch

__all__ = [
    "BBOX_INFO_SCALE",
    "CROP_SIZE",
    "bbox_info",
    "crop_to_full",
    "full_to_crop_camera",
    "default_focal",
    "focal_from_35mm",
    "focal_from_fov",
    "default_principal_point",
    "full_to_crop",
    "full_to_normalized",
    "intrinsics",
    "project",
]

CROP_SIZE = 256
BBOX_INFO_SCALE = 2.8  # CLIFF's constant for the centre offsets in the bbox-info vector


def _stack(parts, like):
    if isinstance(like, torch.Tensor):
        return torch.stack(parts, dim=-1)
    return np.stack(parts, axis=-1)


def _pair(v, like):
    """A principal point or centre given as a sequence becomes an array like ``like``."""
    if isinstance(like, torch.Tensor) and not isinstance(v, torch.Tensor):
        return torch.as_tensor(np.asarray(v, dtype=np.float64), dtype=like.dtype, device=like.device)
    if isinstance(like, np.ndarray) and not isinstance(v, np.ndarray):
        return np.asarray(v, dtype=like.dtype if like.dtype.kind == "f" else np.float64)
    return v


def default_focal(width: float, height: float) -> float:
    """Focal length in pixels when the intrinsics are unknown: the image diagonal."""
    return math.sqrt(float(width) ** 2 + float(height) ** 2)


DIAGONAL_35MM = float(np.hypot(36.0, 24.0))  # mm, the 35 mm frame's diagonal


def focal_from_fov(fov_deg: float, width: int, height: int) -> float:
    """Focal in pixels from the field of view across the image's longer side (Blender's auto sensor fit)."""
    return 0.5 * max(width, height) / float(np.tan(np.radians(fov_deg) / 2))


def focal_from_35mm(mm: float, width: int, height: int) -> float:
    """Focal in pixels from a 35 mm-equivalent focal length (defined on the diagonal, as phones quote it)."""
    return mm / DIAGONAL_35MM * float(np.hypot(width, height))


def default_principal_point(width: float, height: float) -> tuple[float, float]:
    """Principal point when unknown: the image centre ``(W/2, H/2)`` (CLIFF's convention)."""
    return float(width) / 2.0, float(height) / 2.0


def intrinsics(focal, principal_point, focal_y=None) -> np.ndarray:
    """(3, 3) float64 pinhole matrix K from a focal length and ``(cx, cy)``."""
    fy = focal if focal_y is None else focal_y
    cx, cy = principal_point
    return np.array([[focal, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]], dtype=np.float64)


def bbox_info(center_xy, box_size, focal, principal_point):
    """CLIFF bbox-info vector ``[(cx-icx)/f*2.8, (cy-icy)/f*2.8, (b-0.24f)/(0.06f)]``.

    center_xy: (..., 2) box centre in image pixels; box_size: (...) side ``b`` in pixels;
    focal: scalar or (...); principal_point: (2,) or (..., 2). Returns (..., 3).
    """
    principal_point = _pair(principal_point, center_xy)
    dx = (center_xy[..., 0] - principal_point[..., 0]) / focal * BBOX_INFO_SCALE
    dy = (center_xy[..., 1] - principal_point[..., 1]) / focal * BBOX_INFO_SCALE
    ds = (box_size - 0.24 * focal) / (0.06 * focal)
    return _stack([dx, dy, ds + dx * 0], center_xy)  # ds broadcast to the batch shape


def crop_to_full(cam_crop, center_xy, box_size, focal, principal_point):
    """Crop camera ``(s, tx, ty)`` (..., 3) -> full-image translation ``(Tx, Ty, Tz)`` (..., 3)."""
    principal_point = _pair(principal_point, center_xy)
    s, tx, ty = cam_crop[..., 0], cam_crop[..., 1], cam_crop[..., 2]
    bs = box_size * s
    # Keep the division finite for a degenerate scale; training never gets near it.
    if isinstance(bs, torch.Tensor):
        bs = torch.where(bs.abs() < 1e-9, torch.full_like(bs, 1e-9), bs)
    else:
        bs = np.where(np.abs(bs) < 1e-9, 1e-9, bs)
    tz = 2.0 * focal / bs
    x = tx + 2.0 * (center_xy[..., 0] - principal_point[..., 0]) / bs
    y = ty + 2.0 * (center_xy[..., 1] - principal_point[..., 1]) / bs
    return _stack([x, y, tz], cam_crop)


def full_to_crop_camera(transl, center_xy, box_size, focal, principal_point):
    """Full-image translation ``(Tx, Ty, Tz)`` (..., 3) -> the crop camera ``(s, tx, ty)`` that ``crop_to_full``
    turns back into it (Tz > 0)."""
    principal_point = _pair(principal_point, center_xy)
    x, y, tz = transl[..., 0], transl[..., 1], transl[..., 2]
    bs = 2.0 * focal / tz
    s = bs / box_size
    tx = x - 2.0 * (center_xy[..., 0] - principal_point[..., 0]) / bs
    ty = y - 2.0 * (center_xy[..., 1] - principal_point[..., 1]) / bs
    return _stack([s, tx, ty], transl)


def project(points_cam, K):
    """Pinhole projection: points (..., N, 3) or (N, 3) in the camera frame -> (..., N, 2) pixels.

    K is (3, 3), or (..., 3, 3) with the same leading dimensions as the points (one camera per
    batch entry).
    """
    if isinstance(points_cam, torch.Tensor) and not isinstance(K, torch.Tensor):
        K = torch.as_tensor(np.asarray(K), dtype=points_cam.dtype, device=points_cam.device)
    Kt = K.transpose(-1, -2) if isinstance(K, torch.Tensor) else np.swapaxes(K, -1, -2)
    p = points_cam @ Kt  # (..., N, 3) homogeneous pixels
    return p[..., :2] / p[..., 2:3]


def full_to_crop(points_full, center_xy, box_size, crop_size: int = CROP_SIZE):
    """Image pixels (..., N, 2) -> pixels of a square crop (centre (..., 2), side (...))."""
    box_size = _pair(box_size, center_xy)
    corner = center_xy - box_size[..., None] / 2.0  # (..., 2)
    return (points_full - corner[..., None, :]) * (crop_size / box_size)[..., None, None]


def full_to_normalized(points_full, center_xy, box_size, crop_size: int = CROP_SIZE):
    """Image pixels -> normalised crop coordinates, [-1, 1] inside the box (the 2D-loss space)."""
    return 2.0 * full_to_crop(points_full, center_xy, box_size, crop_size) / crop_size - 1.0
