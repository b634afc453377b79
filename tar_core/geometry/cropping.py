"""Square person crops for the network, consistent with the camera maths of ``tar_core.geometry.camera``.

Box: a square ``CropBox`` (centre and side ``b`` in image pixels; ReFit writes ``b = 200 * scale``).
``square_box`` makes one from a detection: same centre, side ``scale`` times the detection's longer
side (1.2 as in ReFit's demo).

Pixel convention (the same for the frame and the crop): pixel (row i, column j) has its centre at the
continuous point (x = j, y = i), OpenCV's convention and the ``align_corners=True`` one of the network's
window read. Crop pixel ``p = (u, v)`` samples the frame at

    corner + p * b / out_size,        corner = centre - b / 2,

which is exactly the inverse of ``tar_core.geometry.camera.full_to_crop``: the crop pixel a frame point lands on
is ``full_to_crop(point, centre, b, out_size)``. (The first crop pixel's centre lies on the box's top-left
corner, the last one at ``b * (out_size - 1) / out_size`` past it.) Sampling is bilinear; frame points
outside the image read as 0 (black), so a box may extend past the border.

Normalisation: RGB / 255, minus the ImageNet mean, over the ImageNet std, channels first.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from tar_core.geometry.camera import CROP_SIZE, bbox_info, default_focal, default_principal_point, full_to_crop

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "CropBox",
    "crop",
    "crop_batch",
    "crop_bbox_info",
    "denormalize",
    "normalize",
    "square_box",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class CropBox:
    """A square box in image pixels: ``center`` (2,) and side ``size``."""

    center: np.ndarray
    size: float

    def __post_init__(self):
        center = np.asarray(self.center, dtype=np.float64).reshape(-1)
        if center.shape != (2,) or not np.all(np.isfinite(center)):
            raise ValueError(f"a crop box centre needs 2 finite numbers, got {self.center!r}")
        size = float(self.size)
        if not np.isfinite(size) or size <= 0:
            raise ValueError(f"a crop box side must be a finite number > 0, got {self.size!r}")
        self.center, self.size = center, size

    @property
    def corner(self) -> np.ndarray:
        """Top-left corner (x, y) in image pixels."""
        return self.center - self.size / 2.0

    def xyxy(self) -> np.ndarray:
        """The box as (x0, y0, x1, y1)."""
        return np.concatenate([self.corner, self.center + self.size / 2.0])

    def to_crop(self, points: np.ndarray, out_size: int = CROP_SIZE) -> np.ndarray:
        """Image points (..., 2) -> crop pixel coordinates (``tar_core.geometry.camera.full_to_crop``)."""
        points = np.asarray(points, dtype=np.float64)
        flat = points.reshape(-1, 2)
        return full_to_crop(flat, self.center, np.float64(self.size), out_size).reshape(points.shape)


def square_box(box_xyxy, scale: float = 1.2) -> CropBox:
    """Square box around a detection (x0, y0, x1, y1): same centre, side ``scale`` x the longer side."""
    box = np.asarray(box_xyxy, dtype=np.float64).reshape(-1)
    if box.shape != (4,) or not np.all(np.isfinite(box)):
        raise ValueError(f"a box needs 4 finite numbers (x0, y0, x1, y1), got {box_xyxy!r}")
    width, height = box[2] - box[0], box[3] - box[1]
    if width <= 0 or height <= 0:
        raise ValueError(f"box {box.tolist()} has no area")
    if not scale > 0:
        raise ValueError(f"scale must be > 0, got {scale}")
    return CropBox(0.5 * (box[:2] + box[2:]), scale * max(width, height))


def _crop_matrix(box: CropBox, out_size: int) -> np.ndarray:
    """2x3 affine map crop pixel -> image point (the inverse of ``full_to_crop``)."""
    step = box.size / out_size
    x0, y0 = box.corner
    return np.array([[step, 0.0, x0], [0.0, step, y0]], dtype=np.float64)


def crop(image: np.ndarray, box: CropBox, out_size: int = CROP_SIZE) -> np.ndarray:
    """Crop ``image`` (H, W, C), uint8 RGB (float32 works too) to (out_size, out_size, C), same dtype.

    Crop pixel p samples the image at ``box.corner + p * box.size / out_size`` (bilinear, 0 outside the
    image); see the module docstring for the pixel convention.
    """
    image = np.asarray(image)
    if image.ndim != 3:
        raise ValueError(f"image must be (H, W, C), got shape {image.shape}")
    if out_size <= 0:
        raise ValueError(f"out_size must be > 0, got {out_size}")
    out = cv2.warpAffine(
        np.ascontiguousarray(image),
        _crop_matrix(box, int(out_size)),
        (int(out_size), int(out_size)),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0,
    )
    return out.reshape(int(out_size), int(out_size), image.shape[2])


def normalize(crops) -> torch.Tensor:
    """Crops (B, S, S, 3) uint8 RGB (numpy or torch) -> (B, 3, S, S) float32, ImageNet-normalised."""
    x = torch.from_numpy(np.ascontiguousarray(crops)) if isinstance(crops, np.ndarray) else crops
    if not isinstance(x, torch.Tensor) or x.ndim != 4 or x.shape[-1] != 3:
        raise ValueError(f"crops must be (B, S, S, 3), got shape {tuple(np.shape(crops))}")
    if x.dtype != torch.uint8:
        raise ValueError(f"crops must be uint8 (0..255), got {x.dtype}")
    mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float32, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=torch.float32, device=x.device).view(1, 3, 1, 1)
    x = x.permute(0, 3, 1, 2).to(torch.float32) / 255.0
    return ((x - mean) / std).contiguous()


def denormalize(images: torch.Tensor) -> np.ndarray:
    """``normalize``'s inverse: (B, 3, S, S) ImageNet-normalised -> (B, S, S, 3) uint8 RGB (clipped to 0..255)."""
    mean = torch.tensor(IMAGENET_MEAN, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
    x = (images * std + mean).clamp(0, 1) * 255
    return x.round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def crop_batch(image: np.ndarray, boxes: Sequence[CropBox], out_size: int = CROP_SIZE) -> torch.Tensor:
    """Crop one frame at several boxes and normalise: (B, 3, out_size, out_size) float32."""
    if len(boxes) == 0:
        return torch.zeros((0, 3, out_size, out_size), dtype=torch.float32)
    return normalize(np.stack([crop(image, b, out_size) for b in boxes]))


def crop_bbox_info(
    box: CropBox, image_width: float, image_height: float, focal: float | None = None, principal_point=None
) -> np.ndarray:
    """CLIFF bbox-info vector (3,) of a crop box, by ``tar_core.geometry.camera.bbox_info``.

    Unknown intrinsics default to ``default_focal`` (the image diagonal) and the image centre.
    """
    if focal is None:
        focal = default_focal(image_width, image_height)
    if principal_point is None:
        principal_point = default_principal_point(image_width, image_height)
    return bbox_info(box.center, np.float64(box.size), float(focal), principal_point)
