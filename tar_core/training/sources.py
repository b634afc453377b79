"""Training data sources: what ``train --data`` names, turned into one weighted dataset.

``--data`` is a comma-separated list of entries, each one of

- ``DIR``: a synthetic dataset folder (``clip_*.npz`` written by ``make-dataset``);
- ``FILE.npz@IMAGE_ROOT``: a real dataset in the common preprocessed layout (``tar_core.training.preprocessed``), its
  ``imgname`` paths relative to ``IMAGE_ROOT``;
- ``LIST.json``: a list of sources with every option, e.g.::

      [{"clips": "synth/"},
       {"npz": "3dpw_train.npz", "images": "/data/3DPW", "weight": 0.3},
       {"npz": "coco_eft.npz", "images": "/data/COCO", "image_dataset": true, "joint_map": [...], "weight": 0.2}]

  ``weight`` is the share of training samples a source gets (sources without one share what is left equally);
  ``image_dataset`` and ``joint_map`` go to ``PreprocessedDataset``; relative paths are taken from the JSON
  file's folder.

Mixing follows the paper's practice of fixed dataset proportions per batch: ``weighted_sampler`` draws sample
indices with replacement so that each source gets its share whatever its size.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from tar_core.errors import DatasetError

__all__ = ["Source", "WeightedStream", "parse_sources", "build_dataset", "weighted_sampler", "source_weights"]


@dataclass(frozen=True)
class Source:
    """One training source: a synthetic folder (``clips``) or a preprocessed file (``npz`` + ``images``)."""

    clips: str | None = None
    npz: str | None = None
    images: str | None = None
    weight: float | None = None
    image_dataset: bool | None = None
    joint_map: tuple[int, ...] | None = None

    @property
    def synthetic(self) -> bool:
        return self.clips is not None

    def describe(self) -> str:
        return self.clips if self.synthetic else f"{self.npz}@{self.images}"


def _from_dict(d: dict, base: Path) -> Source:
    known = {"clips", "npz", "images", "weight", "image_dataset", "joint_map"}
    unknown = set(d) - known
    if unknown:
        raise DatasetError(f"unknown data source keys {sorted(unknown)}; known: {sorted(known)}")
    if ("clips" in d) == ("npz" in d):
        raise DatasetError(f"a data source needs exactly one of 'clips' or 'npz': {d}")
    if "npz" in d and "images" not in d:
        raise DatasetError(f"a preprocessed source needs 'images' (the image root): {d}")

    def path(key):
        return str(base / d[key]) if key in d else None

    jm = d.get("joint_map")
    return Source(clips=path("clips"), npz=path("npz"), images=path("images"),
                  weight=None if d.get("weight") is None else float(d["weight"]),
                  image_dataset=d.get("image_dataset"), joint_map=None if jm is None else tuple(int(j) for j in jm))


def parse_sources(spec: str | list[str]) -> list[Source]:
    """Entries of ``--data`` (module docstring) -> sources; raises ValueError naming a bad entry."""
    entries = [e.strip() for e in (spec.split(",") if isinstance(spec, str) else spec)]
    sources: list[Source] = []
    for e in entries:
        if not e:
            continue
        if e.endswith(".json"):
            p = Path(e)
            try:
                listed = json.loads(p.read_text())
            except FileNotFoundError:
                raise DatasetError(f"data source list not found: {e!r}") from None
            except json.JSONDecodeError as exc:
                raise DatasetError(f"{e!r} is not valid JSON: {exc}") from None
            if not isinstance(listed, list) or not all(isinstance(x, dict) for x in listed):
                raise DatasetError(f"{e!r} must hold a JSON list of objects")
            sources.extend(_from_dict(x, p.parent) for x in listed)
        elif "@" in e:
            npz, images = e.rsplit("@", 1)
            if not npz.endswith(".npz") or not images:
                raise DatasetError(f"bad data entry {e!r}: expected FILE.npz@IMAGE_ROOT")
            sources.append(Source(npz=npz, images=images))
        else:
            sources.append(Source(clips=e))
    if not sources:
        raise DatasetError("no training data given")
    for s in sources:
        if s.weight is not None and not s.weight > 0:
            raise DatasetError(f"weight of {s.describe()!r} must be > 0")
    return sources


def source_weights(sources: list[Source]) -> np.ndarray:
    """Each source's share of the samples (sums to 1): given weights, the rest split equally."""
    given = np.array([s.weight or 0.0 for s in sources])
    n_free = sum(s.weight is None for s in sources)
    total_given = given.sum()
    if n_free == 0:
        return given / total_given
    if total_given >= 1.0:
        raise DatasetError(f"given weights sum to {total_given:g} >= 1 with {n_free} source(s) left without a share")
    w = given.copy()
    w[[s.weight is None for s in sources]] = (1.0 - total_given) / n_free
    return w


def build_dataset(sources: list[Source], seq_len: int):
    """(ConcatDataset of all sources, list of their lengths)."""
    from tar_core.training.dataset import ClipDataset
    from tar_core.training.preprocessed import PreprocessedDataset

    parts = []
    for s in sources:
        if s.synthetic:
            parts.append(ClipDataset(s.clips, seq_len=seq_len))
        else:
            jm = None if s.joint_map is None else np.asarray(s.joint_map)
            parts.append(PreprocessedDataset(s.npz, s.images, seq_len=seq_len, image_dataset=s.image_dataset,
                                             joint_map=jm))
        if len(parts[-1]) == 0:
            raise DatasetError(f"data source {s.describe()!r} holds no samples")
    return torch.utils.data.ConcatDataset(parts), [len(p) for p in parts]


class WeightedStream(torch.utils.data.Sampler):
    """Endless sample indices drawn with replacement by weight, in chunks (``WeightedRandomSampler`` would
    draw all ``num_samples`` at once)."""

    chunk = 4096

    def __init__(self, weights: np.ndarray, generator: torch.Generator):
        self.weights = torch.as_tensor(weights, dtype=torch.double)
        self.generator = generator

    def __iter__(self):
        while True:
            yield from torch.multinomial(self.weights, self.chunk, replacement=True,
                                         generator=self.generator).tolist()


def weighted_sampler(sources: list[Source], lengths: list[int], generator: torch.Generator) -> WeightedStream:
    """Endless indices into ``build_dataset``'s ConcatDataset; source i gets ``source_weights(sources)[i]`` of
    the samples, uniformly over its own samples."""
    share = source_weights(sources)
    return WeightedStream(np.concatenate([np.full(n, w / n) for w, n in zip(share, lengths, strict=True)]),
                          generator)
