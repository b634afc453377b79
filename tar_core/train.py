"""``train``: TAR training from one process to many GPUs (PyTorch DDP under ``torchrun``).

    python -m tar_core train --variant tar-tiny --data DIR[,FILE.npz@IMAGES,LIST.json...] --out RUN [--steps N]
                             [--batch B] [--resume]
    torchrun --nproc-per-node 8 -m tar_core train ...      (or many nodes: torchrun's own options)

The losses of eq. (10)-(14), Adam 1e-4, gradient clipping 4.0, checkpoints with config and
provenance (``RUN/last.pt`` with optimizer state for resuming, ``RUN/model.pt`` for inference),
a CSV log (``RUN/log.csv``, and ``RUN/tensorboard`` when TensorBoard is installed), mixed precision on GPU.
Data sources and their mixing proportions: ``tar_core.sources``.
"""

from __future__ import annotations

import csv
import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from .atomic import atomic_path

__all__ = ["TrainOptions", "train", "collate", "train_step"]


@dataclass
class TrainOptions:
    variant: str
    data: list[str]
    out: str
    steps: int = 1000
    batch: int = 8
    lr: float = 1e-4
    clip_grad: float = 4.0
    resume: bool = False
    seed: int = 0
    workers: int = 0
    save_every: int = 500
    log_every: int = 10
    device: str = "auto"
    augment: bool = True


class Augmented(torch.utils.data.Dataset):
    """A dataset whose items get the reference augmentation (flip, occlusion, colour, rotation,
    scale; labels kept consistent with the full-image camera); seeded from torch's generator."""

    def __init__(self, base):
        self.base = base

    def __len__(self):
        return len(self.base)

    def __getitem__(self, k):
        import numpy as np

        from .augment import augment_item

        return augment_item(self.base[k], np.random.default_rng(int(torch.randint(2**31 - 1, ()).item())))


def collate(items: list[dict]):
    """Stack dataset items into (images (B, T, 3, S, S), Geometry, Targets)."""
    from .losses import Targets
    from .network.refinement import Geometry

    def st(k):
        return torch.stack([torch.as_tensor(it[k]) for it in items])

    geom = Geometry(center=st("center"), size=st("size"), focal=st("focal"), principal=st("principal"))
    targets = Targets(joints_2d=st("joints_2d"), joints_2d_conf=st("joints_2d_conf"), joints_3d=st("joints_3d"),
                      has_3d=st("has_3d"), rotmat=st("rotmat"), betas=st("betas"), has_smpl=st("has_smpl"))
    return st("images"), geom, targets


def _to(geom, targets, device):
    from dataclasses import fields

    for obj in (geom, targets):
        for f in fields(obj):
            setattr(obj, f.name, getattr(obj, f.name).to(device))
    return geom, targets


def train_step(model, optimizer, batch, cfg, clip_grad: float = 4.0, scaler=None) -> dict:
    """One optimisation step on a collated batch; returns the float losses."""
    from .losses import tar_loss

    images, geom, targets = batch
    device = next(model.parameters()).device
    images = images.to(device)
    geom, targets = _to(geom, targets, device)
    model.train()
    optimizer.zero_grad(set_to_none=True)
    with torch.autocast(device.type, enabled=scaler is not None):
        estimates = model(images, geom)
    losses = tar_loss(estimates, targets, geom, cfg)  # the loss in float32
    if scaler is not None:
        scaler.scale(losses["loss"]).backward()
        scaler.unscale_(optimizer)
    else:
        losses["loss"].backward()
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), clip_grad)
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    out = {k: float(v.detach()) for k, v in losses.items()}
    out["grad_norm"] = float(grad_norm)
    return out


def _tensorboard(out: Path):
    """A TensorBoard writer logging to ``RUN/tensorboard`` when the ``tensorboard`` package is installed."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is optional (it pins a protobuf that MediaPipe does not accept)
        return None
    return SummaryWriter(log_dir=str(out / "tensorboard"))


def _dist():
    """(rank, world size, local rank); initialises the process group under torchrun."""
    import torch.distributed as dist

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0"))


def train(opts: TrainOptions, log=print) -> Path:
    """Train and return the path of the final inference checkpoint (``RUN/model.pt``)."""
    import torch.distributed as dist

    from .body_model import load_body_model
    from .checkpoints import read_checkpoint, save_checkpoint
    from .config import get_variant
    from .network.tar import TAR
    from .sources import build_dataset, parse_sources, source_weights, weighted_sampler

    rank, world, local = _dist()
    if opts.device == "auto":
        device = torch.device(f"cuda:{local}" if torch.cuda.is_available() else "cpu")
    else:
        device = torch.device(opts.device)
    torch.manual_seed(opts.seed)
    cfg = get_variant(opts.variant)
    model = TAR(cfg, load_body_model()).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=opts.lr)
    out = Path(opts.out)
    out.mkdir(parents=True, exist_ok=True)
    step = 0
    last = out / "last.pt"
    if opts.resume and last.is_file():
        payload = read_checkpoint(last)
        model.load_state_dict(payload["state_dict"], strict=False)
        optimizer.load_state_dict(payload["optimizer"])
        step = int(payload["provenance"]["steps"])
        if rank == 0:
            log(f"resumed from {last} at step {step}")
    # The body model's arrays are constant buffers: no need to broadcast them every step.
    net = torch.nn.parallel.DistributedDataParallel(model, broadcast_buffers=False) if world > 1 else model
    sources = parse_sources(opts.data)
    data, lengths = build_dataset(sources, cfg.seq_len)
    if opts.augment:
        data = Augmented(data)
    # Every rank draws its own endless weighted stream (seeded by rank and the step it starts at, so a resumed
    # run does not replay the batches it has seen); all ranks take the same number of steps.
    generator = torch.Generator().manual_seed(opts.seed * 1_000_003 + rank * 7919 + step)
    sampler = weighted_sampler(sources, lengths, generator)
    loader = torch.utils.data.DataLoader(data, batch_size=opts.batch, sampler=sampler, num_workers=opts.workers,
                                         collate_fn=collate, drop_last=True)
    scaler = torch.amp.GradScaler("cuda") if device.type == "cuda" else None
    log_path = out / "log.csv"
    new_log = not log_path.exists() or step == 0
    elapsed = 0.0  # time_s keeps counting across resumes
    if not new_log and rank == 0:
        # Rows logged after the checkpoint we resume from were lost with that run: drop them, and go on from
        # the time at the checkpoint.
        with open(log_path, newline="") as fh:
            reader = csv.reader(fh)
            header = next(reader)
            kept = [r for r in reader if r and int(r[0]) <= step]
        with atomic_path(log_path, suffix=".csv") as tmp, open(tmp, "w", newline="") as fh:
            csv.writer(fh).writerows([header, *kept])
        elapsed = float(kept[-1][-1]) if kept else 0.0
    writer = open(log_path, "w" if new_log else "a", newline="") if rank == 0 else None  # noqa: SIM115
    csv_out = csv.writer(writer) if writer else None
    if csv_out and new_log:
        csv_out.writerow(["step", "loss", "final_2d", "final_3d", "final_rot", "final_betas", "grad_norm", "time_s"])
    kinds = {"synthetic" if src.synthetic else "real" for src in sources}
    provenance = {"trained_on": ",".join(src.describe() for src in sources),
                  "data": kinds.pop() if len(kinds) == 1 else "mixed", "variant": cfg.name,
                  "weights": [round(float(w), 6) for w in source_weights(sources)],
                  "batch": opts.batch * world, "lr": opts.lr, "augment": opts.augment, "seed": opts.seed,
                  "processes": world}
    board = _tensorboard(out) if rank == 0 else None

    def save(path: Path, with_optimizer: bool):
        if rank != 0:
            return
        prov = {**provenance, "steps": step}
        save_checkpoint(path, model, prov)
        if with_optimizer:  # add the optimizer state for --resume
            payload = torch.load(path, map_location="cpu", weights_only=True)
            payload["optimizer"] = optimizer.state_dict()
            with atomic_path(path) as tmp:
                torch.save(payload, tmp)

    t0 = time.perf_counter() - elapsed
    batches = iter(loader)
    while step < opts.steps:
        losses = train_step(net, optimizer, next(batches), cfg, opts.clip_grad, scaler)
        step += 1
        if rank == 0 and (step % opts.log_every == 0 or step == opts.steps):
            csv_out.writerow([step, losses["loss"], losses["final_2d"], losses["final_3d"], losses["final_rot"],
                              losses["final_betas"], losses["grad_norm"], round(time.perf_counter() - t0, 2)])
            writer.flush()
            if board is not None:
                for k, v in losses.items():
                    board.add_scalar(f"train/{k}", v, step)
                board.flush()
            log(f"step {step}/{opts.steps} loss {losses['loss']:.4f}")
        if step % opts.save_every == 0:
            save(last, with_optimizer=True)
    save(last, with_optimizer=True)
    save(out / "model.pt", with_optimizer=False)
    if writer:
        writer.close()
    if board is not None:
        board.close()
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()
    return out / "model.pt"
