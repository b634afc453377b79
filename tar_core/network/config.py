"""TAR configurations: one frozen dataclass and a table of the paper's variants and ablations.

A config is saved inside every checkpoint and rebuilt strictly (unknown or missing fields are an
error), so a checkpoint always runs with the architecture it was trained with.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace

from tar_core.errors import ConfigError

__all__ = ["BACKBONE_NAMES", "VARIANTS", "ConfigError", "TARConfig", "config_from_dict", "get_variant"]

# Image backbones (tar_core.network.backbones builds them); "blazepose" is the frozen pretrained trunk.
BACKBONE_NAMES = ("resnet50", "hrnet48", "hrnet32", "tiny", "blazepose")


# Largest value of an integer field (others: 8192): a checkpoint's config is refused before any model is built.
_MAX_INT = {"crop_size": 1024, "seq_len": 129, "gte_layers": 48, "gte_heads": 128, "lte_window": 129,
            "lte_size": 64, "lte_kernel": 15, "iterations": 64, "window_radius": 16, "marker_features": 256,
            "num_markers": 4096}


@dataclass(frozen=True)
class TARConfig:
    """Architecture of one TAR model (paper sections 3.1-3.4; defaults = the paper's best)."""

    name: str = "tar-hrnet48"
    backbone: str = "hrnet48"  # one of BACKBONE_NAMES
    crop_size: int = 256
    seq_len: int = 9  # T: input frames; the model predicts the middle one
    # Global Temporal Encoder (Fig. 3a)
    use_gte: bool = True  # False: the "only LTE" ablation (no temporal global feature at all)
    gte_dim: int = 512  # transformer width (the backbone's global vector is projected to it)
    gte_layers: int = 4
    gte_heads: int = 8
    gte_ffn: int = 1024
    gte_dropout: float = 0.1
    # Local Temporal Encoder (Fig. 4, S1)
    use_lte: bool = True  # False: the "only GTE" ablation (RRM reads static local features)
    lte_window: int = 5  # L; tau = (L - 1) // 2
    lte_channels: int = 256  # width at which the ConvGRUs run (see docs/network.md)
    lte_size: int = 64  # S: hidden maps are shrunk to S x S by strided convs (Fig. S1)
    lte_kernel: int = 3
    # Recurrent Refinement Module (Fig. 5)
    use_rrm: bool = True  # False: the "without RRM" ablation (initial estimate only)
    hidden_init: str = "gte"  # "gte" (TAR) or "zero" (ReFit-style zero-initialised GRU states)
    # Where the RRM starts: "regressor" (the paper: the GTE states' initial estimate) or "keypoints" (the keypoints
    # engine's fit of MediaPipe's landmarks, the RRM as a learned refiner; frames without a fit fall back to the
    # regressor's estimate)
    rrm_init: str = "regressor"
    iterations: int = 5
    hidden_dim: int = 32
    num_markers: int = 67  # K; the body model supplies the vertex ids
    corr_channels: int = 256  # width of the correlation head (local features -> one map per marker)
    window_radius: int = 3  # r: a (2r+1)^2 window of features read around each marker
    marker_features: int = 5  # each marker's window is compressed to this many numbers
    feedback_dim: int = 256
    marker_dropout: float = 0.25  # whole markers dropped in training, one mask per forward
    # Loss (eq. 10-14)
    loss_gamma: float = 0.85
    loss_weight_2d: float = 5.0
    loss_weight_3d: float = 5.0
    loss_weight_smpl: float = 1.0
    loss_weight_betas: float = 0.001
    loss_scale: float = 60.0

    def __post_init__(self):
        problems = []
        for f in fields(self):  # types and sizes first: a config from a file may hold anything
            value, default = getattr(self, f.name), f.default
            numeric = isinstance(default, float) and type(value) is int  # 1 for 1.0
            if type(value) is not type(default) and not numeric:
                raise ConfigError(f"invalid TAR config {self.name!r}: {f.name} must be a {type(default).__name__}, "
                                  f"got {value!r}")
            if isinstance(value, int) and not isinstance(value, bool) and not 0 <= value <= _MAX_INT.get(f.name, 8192):
                problems.append(f"{f.name} {value} outside 0..{_MAX_INT.get(f.name, 8192)}")
            if isinstance(default, float) and not (math.isfinite(value) and abs(value) <= 1e6):
                problems.append(f"{f.name} {value} is not a sane number")
        if problems:
            raise ConfigError(f"invalid TAR config {self.name!r}: " + "; ".join(problems))
        if self.backbone not in BACKBONE_NAMES:
            problems.append(f"backbone {self.backbone!r}")
        if self.seq_len < 1 or self.seq_len % 2 == 0:
            problems.append("seq_len must be odd and >= 1")
        if not 1 <= self.lte_window <= self.seq_len or self.lte_window % 2 == 0:
            problems.append("lte_window must be odd and <= seq_len")
        if self.lte_size < 1 or 64 % self.lte_size or (64 // self.lte_size) & (64 // self.lte_size - 1):
            problems.append("lte_size must be 64 / 2^k")
        if self.hidden_init not in ("gte", "zero"):
            problems.append("hidden_init must be 'gte' or 'zero'")
        if self.rrm_init not in ("regressor", "keypoints"):
            problems.append("rrm_init must be 'regressor' or 'keypoints'")
        if self.rrm_init == "keypoints" and not self.use_rrm:
            problems.append("rrm_init 'keypoints' needs use_rrm")
        if not self.use_gte and self.hidden_init == "gte":
            problems.append("hidden_init 'gte' needs use_gte")
        if self.gte_dim % self.gte_heads:
            problems.append("gte_dim must be divisible by gte_heads")
        if problems:
            raise ConfigError(f"invalid TAR config {self.name!r}: " + "; ".join(problems))

    @property
    def tau(self) -> int:
        """Index of the middle frame inside the LTE window."""
        return (self.lte_window - 1) // 2

    def to_dict(self) -> dict:
        return asdict(self)


def config_from_dict(d: dict) -> TARConfig:
    """Rebuild a config strictly: every field present, nothing unknown."""
    names = {f.name for f in fields(TARConfig)}
    unknown, missing = sorted(set(d) - names), sorted(names - set(d))
    if unknown or missing:
        raise ConfigError(f"config mismatch: unknown fields {unknown}, missing fields {missing}")
    return TARConfig(**d)


_BEST = TARConfig()


def _v(name: str, **changes) -> TARConfig:
    return replace(_BEST, name=name, **changes)


_TINY = _v("tar-tiny", backbone="tiny", gte_dim=64, gte_heads=4, gte_ffn=128, gte_layers=2,
           lte_channels=32, lte_size=32, corr_channels=32, feedback_dim=64, hidden_dim=16)

# TAR on the frozen BlazePose GHUM trunk (the pretrained human-pose network inside the mediapipe wheel): the
# paper's GTE || LTE -> RRM on its 48-channel 64x64 decoder map and 1,152-value pooled vector, at a width a
# CPU trains and runs at >= 15 frames/s (the checkpoint holds the heads only: a few MB). S = 16 (Table S3: close
# to S = 64 at a quarter of the cost): 0.59 GFLOPs of head per output frame beside the trunk's 0.69.
_BLAZEPOSE = _v("tar-blazepose", backbone="blazepose", gte_dim=256, gte_heads=8, gte_ffn=512, gte_layers=2,
                lte_channels=32, lte_size=16, corr_channels=32, feedback_dim=96, hidden_dim=32)

VARIANTS: dict[str, TARConfig] = {
    c.name: c
    for c in [
        _BEST,
        _v("tar-hrnet48-s32", lte_size=32),
        _v("tar-hrnet48-s16", lte_size=16),
        _v("tar-hrnet48-s8", lte_size=8),
        _v("tar-resnet50", backbone="resnet50"),
        _v("tar-hrnet48-no-rrm", use_rrm=False),
        _v("tar-hrnet48-gte-only", use_lte=False),
        _v("tar-hrnet48-lte-only", use_gte=False, hidden_init="zero"),
        _v("tar-hrnet48-l3", lte_window=3),
        _v("tar-hrnet48-l7", lte_window=7),
        _v("tar-hrnet48-l9", lte_window=9),
        _v("tar-hrnet48-zero-hidden", hidden_init="zero"),
        # Small enough to run a 9-frame window well under a second on 2 CPU cores.
        _TINY,
        # The paper's ablations (Tables 4-5) at the tiny scale: what a CPU can train in minutes.
        replace(_TINY, name="tar-tiny-no-rrm", use_rrm=False),
        replace(_TINY, name="tar-tiny-gte-only", use_lte=False),
        replace(_TINY, name="tar-tiny-lte-only", use_gte=False, hidden_init="zero"),
        _BLAZEPOSE,
        replace(_BLAZEPOSE, name="tar-blazepose-no-rrm", use_rrm=False),
        replace(_BLAZEPOSE, name="tar-blazepose-gte-only", use_lte=False),
        replace(_BLAZEPOSE, name="tar-blazepose-lte-only", use_gte=False, hidden_init="zero"),
        # The RRM as a learned refiner of the keypoints engine's fit (issue 16's ablation).
        replace(_BLAZEPOSE, name="tar-blazepose-kp-init", rrm_init="keypoints"),
    ]
}


def get_variant(name: str) -> TARConfig:
    """A named variant; raises ConfigError listing the known names."""
    if name not in VARIANTS:
        raise ConfigError(f"unknown variant {name!r}; known: {', '.join(VARIANTS)}")
    return VARIANTS[name]
