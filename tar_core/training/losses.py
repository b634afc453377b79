"""TAR's training loss, eq. (10)-(14): 2D joints, 3D joints, SMPL rotations and shape, on the
initial estimate and after every refinement iteration, weighted gamma^(L-l)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from tar_core.geometry import camera as cam
from tar_core.network.config import TARConfig
from tar_core.network.refinement import Estimate, Geometry

__all__ = ["Targets", "tar_loss", "stage_loss"]

LEFT_HIP, RIGHT_HIP = 1, 2


@dataclass
class Targets:
    """Ground truth for a batch B; any kind may be missing for some samples (masks)."""

    joints_2d: torch.Tensor  # (B, 24, 2) full-image pixels
    joints_2d_conf: torch.Tensor  # (B, 24) 0..1; 0 where a joint is not labelled
    joints_3d: torch.Tensor  # (B, 24, 3) camera frame (any translation: mid-hip aligned here)
    has_3d: torch.Tensor  # (B,) 0/1
    rotmat: torch.Tensor  # (B, 24, 3, 3) SMPL rotations incl. global orientation
    betas: torch.Tensor  # (B, 10)
    has_smpl: torch.Tensor  # (B,) 0/1


def _masked_mean(err: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``err`` over the masked entries (0 if none); mask broadcasts against err."""
    mask = mask.expand_as(err)
    return (err * mask).sum() / mask.sum().clamp_min(1.0)


def mid_hip_aligned(joints: torch.Tensor) -> torch.Tensor:
    return joints - 0.5 * (joints[:, LEFT_HIP: LEFT_HIP + 1] + joints[:, RIGHT_HIP: RIGHT_HIP + 1])


def stage_loss(est: Estimate, gt: Targets, geom: Geometry, cfg: TARConfig) -> dict[str, torch.Tensor]:
    """Eq. (10)-(13) for one estimate: L2 in normalised crop coordinates, mid-hip aligned metres,
    rotation matrices and betas (the beta term weighted ``loss_weight_betas``)."""
    pred_2d = cam.full_to_normalized(est.joints_2d, geom.center, geom.size, cfg.crop_size)
    gt_2d = cam.full_to_normalized(gt.joints_2d, geom.center, geom.size, cfg.crop_size)
    l2d = _masked_mean(((pred_2d - gt_2d) ** 2).sum(-1), gt.joints_2d_conf)
    l3d = _masked_mean(((mid_hip_aligned(est.joints) - mid_hip_aligned(gt.joints_3d)) ** 2).sum(-1),
                       gt.has_3d[:, None])
    lrot = _masked_mean(((est.rotmat - gt.rotmat) ** 2).flatten(2).sum(-1), gt.has_smpl[:, None])
    lbeta = _masked_mean(((est.betas - gt.betas) ** 2).sum(-1), gt.has_smpl)
    total = (cfg.loss_weight_2d * l2d + cfg.loss_weight_3d * l3d
             + cfg.loss_weight_smpl * (lrot + cfg.loss_weight_betas * lbeta))
    return {"total": total, "2d": l2d, "3d": l3d, "rot": lrot, "betas": lbeta}


def tar_loss(estimates: list[Estimate], gt: Targets, geom: Geometry, cfg: TARConfig) -> dict[str, torch.Tensor]:
    """Eq. (14): sum over l = 0..L of gamma^(L-l) * L_l, scaled by ``loss_scale``.

    Returns the total (``loss``) and the last estimate's terms for logging."""
    n = len(estimates) - 1
    parts = [stage_loss(e, gt, geom, cfg) for e in estimates]
    loss = sum(cfg.loss_gamma ** (n - l) * p["total"] for l, p in enumerate(parts))
    out = {"loss": cfg.loss_scale * loss}
    out.update({f"final_{k}": v.detach() for k, v in parts[-1].items()})
    return out
