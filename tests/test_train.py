"""Training: a step lowers the loss on a fixed batch, runs resume, and DDP works on gloo."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from tar_core.body_model import load_body_model
from tar_core.checkpoints import load_checkpoint, read_checkpoint
from tar_core.config import get_variant
from tar_core.losses import Targets
from tar_core.network.refinement import Geometry
from tar_core.network.tar import TAR
from tar_core.rotations import axis_angle_to_matrix
from tar_core.train import train_step

ROOT = Path(__file__).resolve().parents[1]


def fixed_batch(B: int = 2):
    g = torch.Generator().manual_seed(0)
    images = torch.randn(B, 9, 3, 256, 256, generator=g)
    geom = Geometry(center=torch.tensor([[320.0, 240.0]] * B), size=torch.full((B,), 300.0),
                    focal=torch.full((B,), 800.0), principal=torch.tensor([[320.0, 240.0]] * B))
    joints = torch.randn(B, 24, 3, generator=g) * 0.3 + torch.tensor([0.0, 0.0, 5.0])
    targets = Targets(joints_2d=joints[..., :2] / joints[..., 2:] * 800 + 300, joints_2d_conf=torch.ones(B, 24),
                      joints_3d=joints, has_3d=torch.ones(B),
                      rotmat=axis_angle_to_matrix(0.3 * torch.randn(B, 24, 3, generator=g)),
                      betas=torch.randn(B, 10, generator=g), has_smpl=torch.ones(B))
    return images, geom, targets


def test_training_steps_lower_the_loss_on_a_fixed_batch():
    torch.manual_seed(0)
    cfg = replace(get_variant("tar-tiny"), marker_dropout=0.0)
    model = TAR(cfg, load_body_model())
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    batch = fixed_batch()
    losses = [train_step(model, opt, batch, cfg)["loss"] for _ in range(8)]  # Adam, lr 1e-3
    assert all(np.isfinite(losses))
    assert losses[-1] < 0.9 * losses[0] and all(b < a for a, b in zip(losses, losses[1:])), losses
