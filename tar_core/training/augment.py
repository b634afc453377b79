"""Training-time augmentation of a ``ClipDataset`` item, applied alike to every frame of its window.

The paper's recipe (``docs/tar-reference.md``): flip 0.5, synthetic occlusion 0.5, colour noise U(0.6, 1.4) per
channel, rotation N(0, 30 deg) clipped to +-60 deg, scale N(1, 0.25) clipped to [0.75, 1.25]; under rotation and
flip the box centre moves so that the full-image (CLIFF) camera stays consistent with the crop.

Only the crop is at hand, not the full frame, so every geometric change is an exact warp of the crop plus the
change of the full-image labels that makes the warped crop *be* the crop of a transformed full frame. Notation:
crop side ``S = 256``, box centre ``c`` and side ``b`` (image pixels), principal point ``pp``, focal ``f``. The
crop map (``camera.full_to_crop``) is ``p = (x - c) * S / b + C`` with crop centre ``C = (S/2, S/2)`` in the
pixel-centres-on-integers convention of ``tar_core.geometry.cropping``.

Rotation by ``a`` and scale ``s`` (one affine warp of the crop about ``C``)::

    crop:   p' = s R2 (p - C) + C,          R2 = [[cos a, -sin a], [sin a, cos a]]
    camera: X' = Rz X,                      Rz = [[R2, 0], [0, 1]]  (a roll about the optical axis)
    image:  x' - pp = f X'_xy / Z' = R2 (x - pp)             (Rz keeps Z, so projection commutes with it)
    box:    c' = pp + R2 (c - pp),  b' = b / s

Check: ``(x' - c') S / b' + C = R2 (x - c) s S / b + C = s R2 (p - C) + C``. So 3D joints and the global
orientation (``rotmat[0]``, the body's rotation in the camera frame) are premultiplied by ``Rz``, 2D joints rotate
about ``pp`` (identical to re-projecting the rotated 3D joints with ``K``), the body parts' rotations relative to
their parents are unchanged. In image coordinates (y down) a positive ``a`` turns the picture clockwise.

Flip (mirror of the full frame about the vertical line ``x = pp_x``, i.e. of the camera's x axis)::

    camera: X' = M X,  M = diag(-1, 1, 1);     image: x' = 2 pp_x - x
    crop:   u' = (S - 1) - u                   (``torch.flip`` of the columns, an exact involution)
    box:    c'_x = 2 pp_x - c_x + b / S,  c'_y = c_y

The ``+ b / S`` (one crop pixel in image units) is there because ``torch.flip`` mirrors the crop about
``u = (S - 1) / 2`` while the box centre sits at ``u = S / 2``; with it ``(x' - c'_x) S / b + S/2 = S - 1 - u``
holds exactly and flipping twice gives the item back. The body is mirrored too: left and right joints swap (2D,
3D, confidences, rotations) and every joint rotation becomes ``M R M`` (axis-angle ``(x, -y, -z)``), which is the
mirror of an SMPL pose for a body model symmetric about its own x = 0 plane; the shape ``betas`` stay.

Colour: each RGB channel of the un-normalised crop (``x * std + mean``, in [0, 1]) is multiplied by its own factor
from U(colour), clipped to [0, 1] and normalised again. Occlusion: one rectangle of a random uniform colour
covering 5-30 % of the crop (aspect ratio in [1/2, 2]) at a random position fully inside the crop; it is static,
the same pixels in every frame of the window, like an object in front of a camera that follows the person.

The order is geometry (flip, then rotation and scale), colour, occlusion; the same draws serve all T frames.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import torch

from tar_core.body_model.model import JOINT_NAMES
from tar_core.geometry.camera import CROP_SIZE
from tar_core.geometry.cropping import IMAGENET_MEAN, IMAGENET_STD

__all__ = [
    "FLIP_PERMUTATION",
    "OCCLUSION_AREA",
    "augment_item",
    "colour_item",
    "flip_item",
    "occlude_item",
    "rotate_scale_item",
]

OCCLUSION_AREA = (0.05, 0.30)  # fraction of the crop an occluder covers
_OCCLUSION_ASPECT = (0.5, 2.0)


def _flip_permutation(names) -> tuple[int, ...]:
    """Index of each joint's mirror partner (``left_*`` <-> ``right_*``, the rest map to themselves)."""
    index = {n: i for i, n in enumerate(names)}
    perm = []
    for n in names:
        if n.startswith("left_"):
            perm.append(index["right_" + n[5:]])
        elif n.startswith("right_"):
            perm.append(index["left_" + n[6:]])
        else:
            perm.append(index[n])
    return tuple(perm)


FLIP_PERMUTATION = _flip_permutation(JOINT_NAMES)
_MIRROR = np.diag([-1.0, 1.0, 1.0])


def _np(x) -> np.ndarray:
    return (x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)).astype(np.float64)


def _like(value: np.ndarray, ref) -> torch.Tensor:
    """A float64 numpy result back to a tensor with the dtype and device of ``ref``."""
    if isinstance(ref, torch.Tensor):
        return torch.as_tensor(value, dtype=ref.dtype, device=ref.device)
    return torch.as_tensor(value, dtype=torch.float32)


def _copy(item: dict) -> dict:
    return {k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in item.items()}


def _norm_consts(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    shape = (1,) * (images.ndim - 3) + (3, 1, 1)
    mean = torch.tensor(IMAGENET_MEAN, dtype=images.dtype, device=images.device).view(shape)
    std = torch.tensor(IMAGENET_STD, dtype=images.dtype, device=images.device).view(shape)
    return mean, std


def _rot2(angle_rad: float) -> np.ndarray:
    c, s = math.cos(angle_rad), math.sin(angle_rad)
    return np.array([[c, -s], [s, c]])


def flip_item(item: dict) -> dict:
    """The item of the mirrored full frame (see the module docstring); an exact involution."""
    out = _copy(item)
    perm = list(FLIP_PERMUTATION)
    pp_x = _np(item["principal"])[0]
    if "images" in out:
        out["images"] = torch.flip(item["images"], dims=[-1])
    if "center" in out:
        centre = _np(item["center"])
        size = float(_np(item["size"]))
        crop_size = item["images"].shape[-1] if "images" in item else CROP_SIZE
        centre[0] = 2.0 * pp_x - centre[0] + size / crop_size
        out["center"] = _like(centre, item["center"])
    if "joints_2d" in out:
        j2d = _np(item["joints_2d"])
        j2d[..., 0] = 2.0 * pp_x - j2d[..., 0]
        out["joints_2d"] = _like(j2d[..., perm, :], item["joints_2d"])
    if "joints_2d_conf" in out:
        out["joints_2d_conf"] = item["joints_2d_conf"][..., perm].clone()
    if "joints_3d" in out:
        j3d = _np(item["joints_3d"])
        j3d[..., 0] = -j3d[..., 0]
        out["joints_3d"] = _like(j3d[..., perm, :], item["joints_3d"])
    if "rotmat" in out:
        rot = _MIRROR @ _np(item["rotmat"]) @ _MIRROR
        out["rotmat"] = _like(rot[..., perm, :, :], item["rotmat"])
    return out


def rotate_scale_item(item: dict, angle_deg: float, scale: float = 1.0) -> dict:
    """The item of a camera rolled by ``angle_deg`` about its optical axis, crop content zoomed by ``scale``.

    See the module docstring for the maths; ``angle_deg = 0`` and ``scale = 1`` give an exact copy.
    """
    if not scale > 0:
        raise ValueError(f"scale must be > 0, got {scale}")
    out = _copy(item)
    if angle_deg == 0 and scale == 1:
        return out
    a = math.radians(float(angle_deg))
    r2 = _rot2(a)
    rz = np.eye(3)
    rz[:2, :2] = r2
    pp = _np(item["principal"])

    if "images" in out:
        images = item["images"]
        n = images.shape[-1]
        half = n / 2.0  # the crop centre C, where the box centre lands (camera.full_to_crop)
        # cv2's forward matrix (source pixel -> destination pixel): p' = s R2 (p - C) + C.
        m = np.concatenate([scale * r2, (np.array([half, half]) - scale * r2 @ np.array([half, half]))[:, None]], 1)
        mean, std = _norm_consts(images)
        border = tuple(float(v) for v in (-mean / std).reshape(-1))  # black (0 RGB) of the crop's outside
        flat = images.detach().cpu().numpy().astype(np.float32).reshape(-1, 3, n, n)
        warped = np.empty_like(flat)
        for i, frame in enumerate(flat):
            hwc = np.ascontiguousarray(frame.transpose(1, 2, 0))
            res = cv2.warpAffine(hwc, m, (n, n), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                                 borderValue=border)  # fmt: skip
            warped[i] = res.reshape(n, n, 3).transpose(2, 0, 1)
        out["images"] = torch.from_numpy(warped.reshape(images.shape)).to(images.dtype).to(images.device)
    if "center" in out:
        centre = pp + r2 @ (_np(item["center"]) - pp)  # c' = pp + R2 (c - pp)
        out["center"] = _like(centre, item["center"])
    if "size" in out:
        out["size"] = _like(_np(item["size"]) / scale, item["size"])  # b' = b / s
    if "joints_2d" in out:
        j2d = pp + (_np(item["joints_2d"]) - pp) @ r2.T  # x' = pp + R2 (x - pp) == project(Rz X, K)
        out["joints_2d"] = _like(j2d, item["joints_2d"])
    if "joints_3d" in out:
        out["joints_3d"] = _like(_np(item["joints_3d"]) @ rz.T, item["joints_3d"])  # X' = Rz X
    if "rotmat" in out:
        rot = _np(item["rotmat"])
        rot[..., 0, :, :] = rz @ rot[..., 0, :, :]  # global orientation in the camera frame; the rest is relative
        out["rotmat"] = _like(rot, item["rotmat"])
    return out


def colour_item(item: dict, factors) -> dict:
    """Multiply the un-normalised RGB channels by ``factors`` (3,), clip to [0, 1], normalise again."""
    images = item["images"]
    out = _copy({k: v for k, v in item.items() if k != "images"})
    mean, std = _norm_consts(images)
    f = torch.as_tensor(np.asarray(factors, dtype=np.float64), dtype=images.dtype, device=images.device)
    f = f.view((1,) * (images.ndim - 3) + (3, 1, 1))
    # ((x * std + mean) * f).clamp(0, 1), normalised again; in place on one new tensor (this runs per sample).
    out["images"] = images.mul(std * f).add_(mean * f).clamp_(0.0, 1.0).sub_(mean).div_(std)
    return out


def occlude_item(item: dict, box_xywh, rgb) -> dict:
    """Paint crop pixels ``[y, y + h) x [x, x + w)`` of every frame with the colour ``rgb`` (3,) in [0, 1]."""
    out = _copy(item)
    images = out["images"]
    x, y, w, h = (int(v) for v in box_xywh)
    mean, std = _norm_consts(images)
    value = (torch.as_tensor(np.asarray(rgb, dtype=np.float64), dtype=images.dtype, device=images.device)
             .view(3, 1, 1) - mean.view(3, 1, 1)) / std.view(3, 1, 1)  # fmt: skip
    images[..., :, y : y + h, x : x + w] = value
    return out


def _draw_occluder(rng: np.random.Generator, n: int) -> tuple[tuple[int, int, int, int], np.ndarray]:
    area = rng.uniform(*OCCLUSION_AREA) * n * n
    aspect = math.exp(rng.uniform(math.log(_OCCLUSION_ASPECT[0]), math.log(_OCCLUSION_ASPECT[1])))
    w = int(np.clip(round(math.sqrt(area * aspect)), 1, n))
    h = int(np.clip(round(math.sqrt(area / aspect)), 1, n))
    x = int(rng.integers(0, n - w + 1))
    y = int(rng.integers(0, n - h + 1))
    return (x, y, w, h), rng.uniform(0.0, 1.0, size=3)


def augment_item(
    item: dict,
    rng: np.random.Generator,
    p_flip: float = 0.5,
    p_occlusion: float = 0.5,
    colour: tuple[float, float] | None = (0.6, 1.4),
    rot_std_deg: float = 30.0,
    rot_max_deg: float = 60.0,
    scale_std: float = 0.25,
    scale_range: tuple[float, float] = (0.75, 1.25),
    *,
    flip: bool | None = None,
    angle_deg: float | None = None,
    scale: float | None = None,
) -> dict:
    """A new item with one random augmentation applied to all T frames and every label kept consistent.

    ``colour=None`` (or ``(1, 1)``), ``rot_std_deg=0``, ``scale_std=0`` and the probabilities 0 switch the parts off.
    ``flip``, ``angle_deg`` and ``scale`` force a value instead of drawing one (the draws still happen, so a seed
    gives the same other choices). The input item is left untouched.
    """
    # Draw everything first, in a fixed order.
    do_flip = bool(rng.random() < p_flip)
    a = float(np.clip(rng.normal(0.0, rot_std_deg), -rot_max_deg, rot_max_deg)) if rot_std_deg > 0 else 0.0
    s = float(np.clip(rng.normal(1.0, scale_std), *scale_range)) if scale_std > 0 else 1.0
    factors = rng.uniform(colour[0], colour[1], size=3) if colour is not None else None
    do_occlude = bool(rng.random() < p_occlusion)
    n = item["images"].shape[-1] if "images" in item else CROP_SIZE
    occluder = _draw_occluder(rng, n)
    if flip is not None:
        do_flip = bool(flip)
    if angle_deg is not None:
        a = float(angle_deg)
    if scale is not None:
        s = float(scale)

    out = flip_item(item) if do_flip else _copy(item)
    out = rotate_scale_item(out, a, s)
    if "images" in out:
        if factors is not None and not np.all(factors == 1.0):
            out = colour_item(out, factors)
        if do_occlude:
            out = occlude_item(out, *occluder)
    return out
