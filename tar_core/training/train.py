"""``train``: TAR training from one process to many GPUs (PyTorch DDP under ``torchrun``).

    python -m tar_core train --variant tar-tiny --data DIR[,FILE.npz@IMAGES,LIST.json...] --out RUN [--steps N]
                             [--batch B] [--resume]
    torchrun --nproc-per-node 8 -m tar_core train ...      (or many nodes: torchrun's own options)

The losses of eq. (10)-(14), Adam 1e-4, gradient clipping 4.0, checkpoints with config and
provenance (``RUN/last.pt`` with optimizer state for resuming, ``RUN/model.pt`` for inference),
a CSV log (``RUN/log.csv``, and ``RUN/tensorboard`` when TensorBoard is installed), mixed precision on GPU.
Data sources and their mixing proportions: ``tar_core.training.sources``.
"""

from __future__ import annotations

import csv
import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from tar_core.util.atomic import atomic_path

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
    feature_cache: str | None = None  # a frozen trunk's features are cached here (synthetic sources only)
    draws: int = 4  # augmentation draws cached per clip (draw 0 is the clip as rendered)
    init_weights: str | None = None  # start from this checkpoint's weights (fine-tuning; same architecture)


class Augmented(torch.utils.data.Dataset):
    """A dataset whose items get the reference augmentation (flip, occlusion, colour, rotation,
    scale; labels kept consistent with the full-image camera); seeded from torch's generator."""

    def __init__(self, base):
        self.base = base

    def __len__(self):
        return len(self.base)

    def __getitem__(self, k):
        import numpy as np

        from tar_core.training.augment import augment_item

        return augment_item(self.base[k], np.random.default_rng(int(torch.randint(2**31 - 1, ()).item())))


def collate(items: list[dict]):
    """Stack dataset items into (inputs, Geometry, Targets, Start or None); inputs are images (B, T, 3, S, S), or
    for cached features the pair (global_seq (B, T, Dg), local_seq (B, L, Dl, 64, 64)); the Start when the items
    carry the keypoints fit of their middle frame (``CachedWindows(starts=True)``)."""
    from tar_core.network.refinement import Geometry, Start
    from tar_core.training.losses import Targets

    def st(k):
        return torch.stack([torch.as_tensor(it[k]) for it in items])

    geom = Geometry(center=st("center"), size=st("size"), focal=st("focal"), principal=st("principal"))
    targets = Targets(joints_2d=st("joints_2d"), joints_2d_conf=st("joints_2d_conf"), joints_3d=st("joints_3d"),
                      has_3d=st("has_3d"), rotmat=st("rotmat"), betas=st("betas"), has_smpl=st("has_smpl"))
    inputs = (st("global_seq"), st("local_seq")) if "global_seq" in items[0] else st("images")
    start = None
    if "start_rotmat" in items[0]:
        start = Start.from_fit(st("start_rotmat"), st("start_betas"), st("start_transl"), st("start_valid") > 0, geom)
    return inputs, geom, targets, start


def _to(geom, targets, device):
    from dataclasses import fields

    for obj in (geom, targets):
        if obj is None:
            continue
        for f in fields(obj):
            setattr(obj, f.name, getattr(obj, f.name).to(device))
    return geom, targets


def train_step(model, optimizer, batch, cfg, clip_grad: float = 4.0, scaler=None) -> dict:
    """One optimisation step on a collated batch; returns the float losses."""
    from tar_core.training.losses import tar_loss

    images, geom, targets, start = batch
    device = next(model.parameters()).device
    images = tuple(x.to(device) for x in images) if isinstance(images, tuple) else images.to(device)
    geom, targets = _to(geom, targets, device)
    if start is not None:
        start = _to(start, None, device)[0]
    model.train()
    optimizer.zero_grad(set_to_none=True)
    with torch.autocast(device.type, enabled=scaler is not None):
        estimates = model(images, geom, start)
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


def _device(name: str, local_rank: int) -> torch.device:
    if name == "auto":
        return torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _resume(last: Path, model, optimizer) -> int:
    """Load ``RUN/last.pt`` into the model and optimizer; returns the step it was saved at."""
    from tar_core.network.checkpoints import read_checkpoint

    payload = read_checkpoint(last)
    model.load_state_dict(payload["state_dict"], strict=False)
    optimizer.load_state_dict(payload["optimizer"])
    return int(payload["provenance"]["steps"])


def _dataset(opts: TrainOptions, sources, cfg, model, log, start_fit=None):
    """The sources as one dataset; with a feature cache the frozen trunk's features of every synthetic clip are
    computed once (resumable), augmentation baked into ``opts.draws`` draws; for ``rrm_init="keypoints"`` the
    keypoints fit of every cached clip too (``start_fit``)."""
    from tar_core.errors import UsageError
    from tar_core.training.sources import build_dataset

    starts = cfg.rrm_init == "keypoints"
    if starts and (opts.feature_cache is None or start_fit is None):
        raise UsageError(f"{cfg.name} starts its refinement from the keypoints engine's fit: train it with "
                         "--feature-cache (the fit of every cached clip is kept beside the features)")
    if opts.feature_cache is None:
        data, lengths = build_dataset(sources, cfg.seq_len)
        return (Augmented(data) if opts.augment else data), lengths
    from tar_core.training.features import CachedWindows, cache_features, cache_starts

    if not model.backbone.frozen:
        raise UsageError(f"--feature-cache needs a frozen trunk; {cfg.name} trains its {cfg.backbone} backbone")
    if not all(s.synthetic for s in sources):
        raise UsageError("--feature-cache takes synthetic clip folders only")
    parts = []
    for i, s in enumerate(sources):
        out = Path(opts.feature_cache) / f"source{i}"
        files = cache_features([s.clips], out, model.backbone, draws=opts.draws if opts.augment else 1,
                               seed=opts.seed)
        log(f"feature cache of {s.clips}: {len(files)} files in {out}")
        if starts:
            fits = cache_starts([s.clips], out, start_fit, draws=opts.draws if opts.augment else 1, seed=opts.seed)
            log(f"keypoints fits of {s.clips}: {len(fits)} files in {out / 'keypoints'}")
        parts.append(CachedWindows(out, cfg.seq_len, cfg.lte_window, backbone=cfg.backbone, starts=starts))
    return torch.utils.data.ConcatDataset(parts), [len(p) for p in parts]


def _loader(opts: TrainOptions, data, lengths, sources, rank: int, step: int):
    """Every rank draws its own endless weighted stream, seeded by rank and the step it starts at, so a resumed
    run does not replay the batches it has seen; all ranks take the same number of steps."""
    from tar_core.training.sources import weighted_sampler

    generator = torch.Generator().manual_seed(opts.seed * 1_000_003 + rank * 7919 + step)
    sampler = weighted_sampler(sources, lengths, generator)
    return torch.utils.data.DataLoader(data, batch_size=opts.batch, sampler=sampler, num_workers=opts.workers,
                                       collate_fn=collate, drop_last=True)


def _init_weights_provenance(path: str | None) -> dict | None:
    if not path:
        return None
    from tar_core.network.checkpoints import file_sha256, read_checkpoint

    steps = read_checkpoint(path)["provenance"].get("steps")
    return {"path": str(path), "sha256": file_sha256(path), "steps": steps}


def _provenance(opts: TrainOptions, sources, cfg, world: int) -> dict:
    from tar_core.training.sources import source_weights

    kinds = {"synthetic" if src.synthetic else "real" for src in sources}
    return {"trained_on": ",".join(src.describe() for src in sources),
            "data": kinds.pop() if len(kinds) == 1 else "mixed", "variant": cfg.name,
            "weights": [round(float(w), 6) for w in source_weights(sources)],
            "batch": opts.batch * world, "lr": opts.lr, "augment": opts.augment, "seed": opts.seed,
            "processes": world, "feature_cache_draws": opts.draws if opts.feature_cache else None,
            "init_weights": _init_weights_provenance(opts.init_weights)}  # fmt: skip


LOG_COLUMNS = ["step", "loss", "final_2d", "final_3d", "final_rot", "final_betas", "grad_norm", "time_s"]


class TrainLog:
    """``RUN/log.csv`` (and TensorBoard when installed), written by rank 0 only. On resume, rows logged after
    the checkpoint were lost with that run: they are dropped, and the clock goes on from the checkpoint's time."""

    def __init__(self, out: Path, step: int, enabled: bool):
        self.file, self.csv, self.board, self.elapsed = None, None, None, 0.0
        if not enabled:
            return
        path = out / "log.csv"
        new = not path.exists() or step == 0
        if not new:
            self.elapsed = self._truncate(path, step)
        self.file = open(path, "w" if new else "a", newline="")  # noqa: SIM115
        self.csv = csv.writer(self.file)
        if new:
            self.csv.writerow(LOG_COLUMNS)
        self.board = _tensorboard(out)

    @staticmethod
    def _truncate(path: Path, step: int) -> float:
        with open(path, newline="") as fh:
            reader = csv.reader(fh)
            header = next(reader)
            kept = [r for r in reader if r and int(r[0]) <= step]
        with atomic_path(path, suffix=".csv") as tmp, open(tmp, "w", newline="") as fh:
            csv.writer(fh).writerows([header, *kept])
        return float(kept[-1][-1]) if kept else 0.0

    def row(self, step: int, losses: dict, time_s: float) -> None:
        if self.csv is None:
            return
        self.csv.writerow([step, *(losses[k] for k in LOG_COLUMNS[1:-1]), round(time_s, 2)])
        self.file.flush()
        if self.board is not None:
            for k, v in losses.items():
                self.board.add_scalar(f"train/{k}", v, step)
            self.board.flush()

    def close(self) -> None:
        for handle in (self.file, self.board):
            if handle is not None:
                handle.close()


def _initial_weights(model, path: str) -> None:
    """Fine-tuning: the learned weights of checkpoint ``path`` (same architecture; the config may differ in
    fields that hold no weights, such as where the RRM starts)."""
    from tar_core.errors import CheckpointError
    from tar_core.network.checkpoints import read_checkpoint

    state = read_checkpoint(path)["state_dict"]
    own = model.learned_state_dict()
    wrong = sorted(k for k in own if k not in state or state[k].shape != own[k].shape)
    if wrong or set(state) - set(own):
        raise CheckpointError(f"{path}: its weights do not fit {model.cfg.name} ({(wrong or sorted(set(state)))[0]})")
    model.load_state_dict({k: v.float() for k, v in state.items()}, strict=False)


def train(opts: TrainOptions, log=print, start_fit=None) -> Path:
    """Train and return the path of the final inference checkpoint (``RUN/model.pt``). ``start_fit``: the
    keypoints fit of a crop sequence (``cache_starts``), for variants whose RRM starts from it."""
    import torch.distributed as dist

    from tar_core.body_model import load_body_model
    from tar_core.network.checkpoints import save_checkpoint
    from tar_core.network.config import get_variant
    from tar_core.network.tar import TAR
    from tar_core.training.sources import parse_sources

    rank, world, local = _dist()
    device = _device(opts.device, local)
    torch.manual_seed(opts.seed)
    cfg = get_variant(opts.variant)
    model = TAR(cfg, load_body_model()).to(device)
    if opts.init_weights and not (opts.resume and (Path(opts.out) / "last.pt").is_file()):
        _initial_weights(model, opts.init_weights)
    optimizer = torch.optim.Adam(model.parameters(), lr=opts.lr)
    out = Path(opts.out)
    out.mkdir(parents=True, exist_ok=True)
    last = out / "last.pt"
    step = _resume(last, model, optimizer) if opts.resume and last.is_file() else 0
    if step and rank == 0:
        log(f"resumed from {last} at step {step}")
    # The body model's arrays are constant buffers: no need to broadcast them every step.
    net = torch.nn.parallel.DistributedDataParallel(model, broadcast_buffers=False) if world > 1 else model
    sources = parse_sources(opts.data)
    if rank == 0 or opts.feature_cache is None:
        data, lengths = _dataset(opts, sources, cfg, model, log, start_fit)
    if world > 1 and opts.feature_cache is not None:  # rank 0 fills the cache, the others then read it
        dist.barrier()
        if rank != 0:
            data, lengths = _dataset(opts, sources, cfg, model, log, start_fit)
    batches = iter(_loader(opts, data, lengths, sources, rank, step))
    scaler = torch.amp.GradScaler("cuda") if device.type == "cuda" else None
    provenance = _provenance(opts, sources, cfg, world)
    train_log = TrainLog(out, step, enabled=rank == 0)

    def save(path: Path, with_optimizer: bool) -> None:
        if rank == 0:
            save_checkpoint(path, model, {**provenance, "steps": step}, optimizer if with_optimizer else None)

    t0 = time.perf_counter() - train_log.elapsed
    while step < opts.steps:
        losses = train_step(net, optimizer, next(batches), cfg, opts.clip_grad, scaler)
        step += 1
        if rank == 0 and (step % opts.log_every == 0 or step == opts.steps):
            train_log.row(step, losses, time.perf_counter() - t0)
            log(f"step {step}/{opts.steps} loss {losses['loss']:.4f}")
        if step % opts.save_every == 0:
            save(last, with_optimizer=True)
    save(last, with_optimizer=True)
    save(out / "model.pt", with_optimizer=False)
    train_log.close()
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()
    return out / "model.pt"
