"""Feature cache for a frozen trunk (``blazepose``): the trunk runs once per (augmented) frame, training reads
windows of cached features instead of images.

``cache_features`` writes, for every synthetic clip and every augmentation *draw*, one file
``<clip>_d<k>.npz``: the trunk's global vector (F, Dg) float32 and local map (F, Dl, 64, 64) float16 for each
frame, with the frame's labels (after the draw's augmentation). Draw 0 is the clip as rendered; draw k > 0
applies one augmentation (``augment_item``, the same random choices for every frame of the clip: flip,
rotation/scale with the full-image camera kept consistent, colour, a static occluder), so every window cut
from it is augmented alike, as live training augments a window. Files are written atomically and skipped
when present, so an interrupted run resumes. ``CachedWindows`` serves windows of T frames (edges repeated)
like ``ClipDataset``, with ``global_seq`` (T, Dg) and ``local_seq`` (L, Dl, 64, 64) in place of ``images``.
"""

from __future__ import annotations

import bisect
import json
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from tar_core.errors import DatasetError
from tar_core.geometry.cropping import denormalize
from tar_core.synthetic.groundtruth import CLIP_FPS
from tar_core.training.augment import augment_item
from tar_core.training.dataset import ClipDataset, cached_npz
from tar_core.util.atomic import atomic_path

__all__ = ["LABEL_KEYS", "START_KEYS", "CachedWindows", "cache_features", "cache_file", "cache_starts", "start_file"]

LABEL_KEYS = ("joints_2d", "joints_2d_conf", "joints_3d", "has_3d", "rotmat", "betas", "has_smpl", "center",
              "size", "focal", "principal")  # fmt: skip
_FORMAT = "tar-feature-cache"
START_KEYS = ("start_rotmat", "start_betas", "start_transl", "start_valid")


def cache_file(out_dir: str | Path, clip: Path, draw: int) -> Path:
    return Path(out_dir) / f"{clip.stem}_d{draw}.npz"


def start_file(cache_path: Path) -> Path:
    """Where the keypoints fit of a cache file's frames is kept (a subfolder: not a cache file itself)."""
    return cache_path.parent / "keypoints" / cache_path.name


def _check_same_draw(cached: Path, items: list[dict]) -> None:
    """The draw made again must be the one whose features are cached (same boxes), or the fits would not match."""
    if not cached.is_file():
        raise DatasetError(f"{cached}: cache the features first (cache_features)")
    with np.load(cached, allow_pickle=False) as z:
        centers = z["center"]
    again = np.stack([it["center"].numpy() for it in items])
    if centers.shape != again.shape or not np.allclose(centers, again, atol=1e-3):
        raise DatasetError(f"{cached}: its augmentation draw cannot be made again (other seed or code); rebuild it")


def cache_starts(dirs: Sequence[str | Path], out_dir: str | Path, fit: Callable, draws: int = 1, seed: int = 0,
                 progress: Callable[[int, int], None] | None = None, stop=None) -> list[Path]:
    """The keypoints engine's fit of every cached clip and draw (for ``rrm_init="keypoints"``), beside the cache.

    ``fit(crops (F, S, S, 3) uint8, centers (F, 2), sizes (F,), K (3, 3), times (F,))`` returns (rotmat (F, 24, 3,
    3), betas (F, 10), transl (F, 3), valid (F,)) in the frames' full-image camera; it comes from the capture layer
    (``capture.engines.keypoints.starts``), which training may not import. The draws are made again exactly as
    ``cache_features`` made them, so the fit sees the augmented crops the features were taken from."""
    frames = ClipDataset(dirs, seq_len=1)
    jobs = [(c, k) for c in range(len(frames.paths)) for k in range(draws)]
    paths = []
    for n, (c, k) in enumerate(jobs, start=1):
        if stop is not None:
            stop.check()
        path = start_file(cache_file(out_dir, frames.paths[c], k))
        if not path.is_file():
            items = _frames(frames, c, k, seed)
            _check_same_draw(cache_file(out_dir, frames.paths[c], k), items)
            first = items[0]
            K = np.array([[float(first["focal"]), 0, float(first["principal"][0])],
                          [0, float(first["focal"]), float(first["principal"][1])], [0, 0, 1]])
            crops = denormalize(torch.cat([it["images"] for it in items]))  # as MediaPipe takes them
            rotmat, betas, transl, valid = fit(crops, np.stack([it["center"].numpy() for it in items]),
                                               np.array([float(it["size"]) for it in items]), K,
                                               np.arange(len(items)) / CLIP_FPS)
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(path, suffix=".npz") as tmp, open(tmp, "wb") as fh:
                np.savez(fh, start_rotmat=rotmat.astype(np.float32), start_betas=betas.astype(np.float32),
                         start_transl=transl.astype(np.float32), start_valid=valid.astype(np.float32))
        paths.append(path)
        if progress:
            progress(n, len(jobs))
    return paths


def _frames(frames: ClipDataset, c: int, draw: int, seed: int) -> list[dict]:
    """Clip ``c``'s frames as one-frame items, all augmented by draw ``draw``'s one set of random choices."""
    start, n = int(frames.starts[c]), frames.lengths[c]
    items = [frames[start + f] for f in range(n)]
    if draw == 0:
        return items
    # The same generator state for every frame: the same flip, rotation, scale, colour and occluder.
    return [augment_item(it, np.random.default_rng([seed, c, draw])) for it in items]


def _encode(backbone, images: torch.Tensor, batch: int) -> tuple[np.ndarray, np.ndarray]:
    g, m = [], []
    with torch.no_grad():
        for chunk in images.split(batch):
            gv, lm = backbone(chunk)  # (b, Dg), (b, Dl, 64, 64)
            g.append(gv.float().numpy())
            m.append(lm.to(torch.float16).numpy())
    return np.concatenate(g), np.concatenate(m)


def _write(path: Path, items: list[dict], backbone, batch: int, meta: dict) -> None:
    images = torch.cat([it["images"] for it in items])  # (F, 3, 256, 256)
    global_vec, local_map = _encode(backbone, images, batch)
    arrays = {k: np.stack([it[k].numpy() for it in items]).astype(np.float32) for k in LABEL_KEYS}
    with atomic_path(path, suffix=".npz") as tmp, open(tmp, "wb") as fh:
        np.savez(fh, global_vec=global_vec, local_map=local_map, meta=np.array(json.dumps(meta)), **arrays)


def cache_features(dirs: Sequence[str | Path], out_dir: str | Path, backbone, draws: int = 1, seed: int = 0,
                   batch: int = 16, progress: Callable[[int, int], None] | None = None, stop=None) -> list[Path]:
    """Trunk features of every frame of the synthetic clips in ``dirs`` for ``draws`` augmentation draws."""
    if draws < 1:
        raise DatasetError(f"draws must be >= 1, got {draws}")
    frames = ClipDataset(dirs, seq_len=1)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    jobs = [(c, k) for c in range(len(frames.paths)) for k in range(draws)]
    paths = []
    for n, (c, k) in enumerate(jobs, start=1):
        if stop is not None:
            stop.check()
        path = cache_file(out_dir, frames.paths[c], k)
        if not path.is_file():
            meta = {"format": _FORMAT, "backbone": backbone.name, "clip": str(frames.paths[c]), "draw": k,
                    "seed": seed}
            _write(path, _frames(frames, c, k, seed), backbone, batch, meta)
        paths.append(path)
        if progress:
            progress(n, len(jobs))
    return paths


class CachedWindows(Dataset):
    """Windows of ``seq_len`` frames of cached features centred on every frame of every cache file.

    An item holds ``global_seq`` (T, Dg), ``local_seq`` (L, Dl, 64, 64) for the ``lte_window`` frames centred on
    the middle one, float32, and the middle frame's labels under the same names as ``ClipDataset``'s.
    """

    cache_bytes = 1 << 30

    def __init__(self, cache_dir: str | Path, seq_len: int, lte_window: int, backbone: str | None = None,
                 starts: bool = False):
        self.paths = sorted(Path(cache_dir).glob("*_d*.npz"))
        if not self.paths:
            raise DatasetError(f"no cached features (*_d<k>.npz) in {str(cache_dir)!r}")
        self.seq_len, self.lte_window = int(seq_len), int(lte_window)
        self.lengths = []
        for p in self.paths:
            with np.load(p, allow_pickle=False) as z:
                meta = json.loads(str(z["meta"]))
                if meta.get("format") != _FORMAT or (backbone and meta.get("backbone") != backbone):
                    raise DatasetError(f"{p}: not a {backbone or ''} feature cache file ({meta})")
                self.lengths.append(int(z["size"].shape[0]))
        # starts: items also carry the middle frame's keypoints fit (``cache_starts``); a few KB a clip, read once
        self.fits = self._fits(cache_dir) if starts else None
        self.starts = np.concatenate([[0], np.cumsum(self.lengths)]).astype(np.int64)
        self._cache: OrderedDict[int, dict] = OrderedDict()

    def __len__(self) -> int:
        return int(self.starts[-1])

    def _fits(self, cache_dir) -> list[dict[str, np.ndarray]]:
        missing = [p.name for p in self.paths if not start_file(p).is_file()]
        if missing:
            raise DatasetError(f"{cache_dir}: no keypoints fit for {len(missing)} cache files ({missing[0]}, ...)")
        fits = []
        for p in self.paths:
            with np.load(start_file(p), allow_pickle=False) as z:
                fits.append({key: z[key] for key in START_KEYS})
        return fits

    def _file(self, c: int) -> dict:
        keys = ("global_vec", "local_map", *LABEL_KEYS)
        return cached_npz(self._cache, c, self.paths[c], keys, "local_map", self.cache_bytes)

    def __getitem__(self, k: int) -> dict[str, torch.Tensor]:
        if not 0 <= k < len(self):
            raise IndexError(f"index {k} out of range for {len(self)} frames")
        c = bisect.bisect_right(self.starts, k) - 1
        f, n = k - int(self.starts[c]), self.lengths[c]
        data = self._file(c)
        window = np.clip(f + np.arange(self.seq_len) - self.seq_len // 2, 0, n - 1)
        tau = self.lte_window // 2
        local = np.clip(f + np.arange(-tau, tau + 1), 0, n - 1)
        item = {"global_seq": torch.from_numpy(data["global_vec"][window]),
                "local_seq": torch.from_numpy(data["local_map"][local].astype(np.float32))}
        item.update({key: torch.from_numpy(np.asarray(data[key][f])) for key in LABEL_KEYS})
        if self.fits is not None:
            item.update({key: torch.from_numpy(np.asarray(self.fits[c][key][f])) for key in START_KEYS})
        return item
