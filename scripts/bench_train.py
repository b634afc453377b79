"""Training speed: samples/s for the tiny and the paper's variant on this machine (CPU, and CUDA
when available), measured in one run on fixed synthetic batches.

    python scripts/bench_train.py [--paper-steps 2]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def batch(B: int, device):
    from tar_core.geometry.rotations import axis_angle_to_matrix
    from tar_core.network.refinement import Geometry
    from tar_core.training.losses import Targets

    g = torch.Generator().manual_seed(0)
    joints = torch.randn(B, 24, 3, generator=g) * 0.3 + torch.tensor([0.0, 0.0, 5.0])
    return (torch.randn(B, 9, 3, 256, 256, generator=g),
            Geometry(center=torch.tensor([[320.0, 240.0]] * B), size=torch.full((B,), 300.0),
                     focal=torch.full((B,), 800.0), principal=torch.tensor([[320.0, 240.0]] * B)),
            Targets(joints_2d=joints[..., :2] / joints[..., 2:] * 800 + 300, joints_2d_conf=torch.ones(B, 24),
                    joints_3d=joints, has_3d=torch.ones(B), rotmat=axis_angle_to_matrix(0.3 * torch.randn(B, 24, 3)),
                    betas=torch.randn(B, 10, generator=g), has_smpl=torch.ones(B)),
            None)  # no keypoints start


def samples_per_s(variant: str, B: int, steps: int, device) -> float:
    from tar_core.body_model import load_body_model
    from tar_core.network.config import get_variant
    from tar_core.network.tar import TAR
    from tar_core.training.train import train_step

    cfg = get_variant(variant)
    model = TAR(cfg, load_body_model()).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    scaler = torch.amp.GradScaler("cuda") if device.type == "cuda" else None
    b = batch(B, device)
    train_step(model, opt, b, cfg, scaler=scaler)  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(steps):
        train_step(model, opt, b, cfg, scaler=scaler)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return B * steps / (time.perf_counter() - t)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tiny-batch", type=int, default=8)
    ap.add_argument("--tiny-steps", type=int, default=5)
    ap.add_argument("--paper-batch", type=int, default=1)
    ap.add_argument("--paper-steps", type=int, default=2)
    args = ap.parse_args()
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    print(f"torch {torch.__version__}, CPU threads {torch.get_num_threads()}, "
          f"CUDA {'yes: ' + torch.cuda.get_device_name() if torch.cuda.is_available() else 'no'}")
    for device in devices:
        for variant, B, steps in (("tar-tiny", args.tiny_batch, args.tiny_steps),
                                  ("tar-hrnet48", args.paper_batch, args.paper_steps)):
            rate = samples_per_s(variant, B, steps, device)
            print(f"{device.type:4s} {variant:12s} batch {B:3d}: {rate:8.3f} training samples/s "
                  f"(a sample = a {9}-frame clip)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
