"""``ClipDataset``: the synthetic clip files (``tar_core.synthetic.dataset``) as a torch dataset of windows."""

from __future__ import annotations

import bisect
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from tar_core.errors import DatasetError
from tar_core.geometry.cropping import normalize
from tar_core.geometry.rotations import axis_angle_to_matrix

__all__ = ["ClipDataset", "cached_npz"]


def cached_npz(cache: OrderedDict[int, dict], c: int, path: Path, keys: Sequence[str], sized: str,
               budget: int) -> dict:
    """The arrays ``keys`` of file number ``c``, through ``cache``. Decompressing a file costs ~5x an
    item and random sampling touches every file: keep as many as fit ``budget`` bytes (counted on the
    array ``sized``), at least the newest one, dropping the least recently used."""
    if c in cache:
        cache.move_to_end(c)
        return cache[c]
    with np.load(path, allow_pickle=False) as z:
        data = {k: z[k] for k in keys}
    cache[c] = data
    while len(cache) > 1 and sum(v[sized].nbytes for v in cache.values()) > budget:
        cache.popitem(last=False)
    return data


class ClipDataset(Dataset):
    """Windows of ``seq_len`` crops centred on every frame of the clips in ``dirs``, with the middle frame's
    targets. Frames before a clip's start or after its end repeat its first / last frame.

    An item is a dict of float32 tensors: ``images`` (T, 3, 256, 256) ImageNet-normalised; for the middle frame
    ``joints_2d`` (24, 2) full-image pixels, ``joints_2d_conf`` (24,), ``joints_3d`` (24, 3) camera frame,
    ``has_3d`` (), ``rotmat`` (24, 3, 3), ``betas`` (10,), ``has_smpl`` (), ``center`` (2,), ``size`` (),
    ``focal`` () and ``principal`` (2,).
    """

    cache_bytes = 1 << 30  # decompressed crops kept in memory (a 32-frame clip is 6.3 MB)

    def __init__(self, dirs: Sequence[str | Path] | str | Path, seq_len: int = 9):
        if isinstance(dirs, str | Path):
            dirs = [dirs]
        if seq_len < 1:
            raise DatasetError(f"seq_len must be >= 1, got {seq_len}")
        self.seq_len = int(seq_len)
        self.paths: list[Path] = []
        for d in dirs:
            found = sorted(Path(d).glob("clip_*.npz"))
            if not found:
                raise DatasetError(f"no clip_*.npz files in {str(d)!r}")
            self.paths.extend(found)
        self.lengths = []
        for p in self.paths:
            with np.load(p, allow_pickle=False) as z:
                self.lengths.append(int(z["box_size"].shape[0]))
        self.starts = np.concatenate([[0], np.cumsum(self.lengths)]).astype(np.int64)
        self._cache: OrderedDict[int, dict] = OrderedDict()

    def __len__(self) -> int:
        return int(self.starts[-1])

    def locate(self, k: int) -> tuple[int, int]:
        """Dataset index -> (clip number, frame within the clip)."""
        n = len(self)
        if k < 0:
            k += n
        if not 0 <= k < n:
            raise IndexError(f"index {k} out of range for {n} frames")
        c = bisect.bisect_right(self.starts, k) - 1
        return c, k - int(self.starts[c])

    def _clip(self, c: int) -> dict:
        keys = ("crops", "center", "box_size", "K", "poses", "betas", "joints_cam", "joints_2d")
        return cached_npz(self._cache, c, self.paths[c], keys, "crops", self.cache_bytes)

    def __getitem__(self, k: int) -> dict[str, torch.Tensor]:
        c, f = self.locate(int(k))
        clip = self._clip(c)
        n = self.lengths[c]
        window = np.clip(f + np.arange(self.seq_len) - self.seq_len // 2, 0, n - 1)
        K = clip["K"]

        def t(x) -> torch.Tensor:
            return torch.as_tensor(np.asarray(x, dtype=np.float32))

        return {
            "images": normalize(clip["crops"][window]),
            "joints_2d": t(clip["joints_2d"][f]),
            "joints_2d_conf": torch.ones(clip["joints_2d"].shape[1], dtype=torch.float32),
            "joints_3d": t(clip["joints_cam"][f]),
            "has_3d": torch.tensor(1.0),
            "rotmat": t(axis_angle_to_matrix(clip["poses"][f].reshape(-1, 3).astype(np.float64))),
            "betas": t(clip["betas"]),
            "has_smpl": torch.tensor(1.0),
            "center": t(clip["center"][f]),
            "size": t(clip["box_size"][f]),
            "focal": t(K[0, 0]),
            "principal": t(K[:2, 2]),
        }
