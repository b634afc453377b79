"""TAR checkpoints: config + weights + provenance, loaded strictly and safely.

A checkpoint is a dict saved with ``torch.save``: ``format``, ``format_version``, ``config`` (the
TARConfig as a dict), ``state_dict`` (learned weights, the body model's arrays excluded),
``provenance`` (what it was trained on, or ``"untrained"``), ``body_model`` (the kind it was
trained with) and ``weights_dtype``: ``"float32"``, or ``"float16"`` for a file made to ship (half the size;
``export_checkpoint``). Every floating weight is stored in that dtype (a file written before the key existed
holds float32); loading builds float32 modules and copies the weights into them. Loading uses
``torch.load(weights_only=True)`` and never falls back to random weights: a missing, corrupt or
mismatched file is an error.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from tar_core.body_model import BodyModel
from tar_core.errors import CheckpointError, ConfigError, one_line
from tar_core.network.config import TARConfig, config_from_dict
from tar_core.util.atomic import atomic_path

__all__ = ["CheckpointError", "DEMO_CHECKPOINT", "WEIGHT_DTYPES", "LoadedCheckpoint", "demo_checkpoint",
           "export_checkpoint", "load_checkpoint", "save_checkpoint", "file_sha256"]

FORMAT = "tar-checkpoint"
FORMAT_VERSION = 2
# Config fields added by each format version, with the value every older checkpoint was trained with: a version-1
# file (before ``rrm_init``) is read as the version-2 file it would be, and then loaded as strictly as ever.
_ADDED_FIELDS = {2: {"rrm_init": "regressor"}}
MAX_CHECKPOINT_BYTES = 8 << 30  # the largest variant (HRNet-48) is ~0.3 GB; optimizer state triples it
WEIGHT_DTYPES = {"float32": torch.float32, "float16": torch.float16}


@dataclass
class LoadedCheckpoint:
    model: torch.nn.Module
    config: TARConfig
    provenance: dict
    sha256: str
    path: Path
    body_model: str | None = None  # the body kind it was trained with


DEMO_CHECKPOINT = Path(__file__).resolve().parents[1] / "weights" / "tar-blazepose-synthetic.pt"


def demo_checkpoint() -> Path:
    """The built-in demo checkpoint (tar-blazepose heads trained on synthetic renders, stored in float16; see
    weights/MODEL_CARD.md);
    ``$TAR_DEMO_CHECKPOINT`` points elsewhere (packagers, tests). Raises CheckpointError when it is missing."""
    path = Path(os.environ.get("TAR_DEMO_CHECKPOINT") or DEMO_CHECKPOINT)
    if not path.is_file():
        raise CheckpointError(f"the built-in demo checkpoint is missing ({path}); pass --checkpoint FILE")
    return path


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _stored_weights(state: dict[str, torch.Tensor], dtype: str, where: str | Path) -> dict[str, torch.Tensor]:
    """``state`` with every floating tensor in ``dtype`` (integer buffers unchanged); CheckpointError when a
    weight does not fit that dtype's range."""
    if dtype not in WEIGHT_DTYPES:
        raise CheckpointError(f"{where}: weights dtype {dtype!r} is not one of {sorted(WEIGHT_DTYPES)}")
    out = {}
    for name, tensor in state.items():
        if tensor.is_floating_point():
            tensor = tensor.detach().to("cpu", WEIGHT_DTYPES[dtype])
            if not bool(torch.isfinite(tensor).all()):
                raise CheckpointError(f"{where}: weight {name!r} does not fit {dtype} (NaN, infinity or too large)")
        out[name] = tensor
    return out


def _write(path: Path, payload: dict) -> Path:
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path


def save_checkpoint(path: str | Path, model, provenance: dict | str = "untrained", optimizer=None,
                    weights_dtype: str = "float32") -> Path:
    """Write ``model`` (a TAR) with its config and provenance atomically, as one dict; ``optimizer``: also its
    state, for resuming training; ``weights_dtype``: how the weights are stored (``WEIGHT_DTYPES``)."""
    path = Path(path)
    prov = {"trained_on": "untrained"} if provenance == "untrained" else dict(provenance)
    prov.setdefault("trained_on", "untrained")
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "config": model.cfg.to_dict(),
        "state_dict": _stored_weights(model.learned_state_dict(), weights_dtype, path),
        "provenance": prov,
        "body_model": model.body.kind,
        "weights_dtype": weights_dtype,
    }
    if optimizer is not None:
        payload["optimizer"] = optimizer.state_dict()
    return _write(path, payload)


def export_checkpoint(source: str | Path, path: str | Path, weights_dtype: str = "float16") -> Path:
    """Write the inference part of checkpoint ``source`` to ``path``: its config, provenance and body kind
    unchanged, no optimizer state, the weights stored in ``weights_dtype`` (float16: half the size, for
    shipping). ``source`` is read and checked first; the result is read back and checked too."""
    path = Path(path)
    payload = read_checkpoint(source)
    out = {key: payload[key] for key in ("format", "format_version", "config", "provenance")}
    out["state_dict"] = _stored_weights(payload["state_dict"], weights_dtype, source)
    out["weights_dtype"] = weights_dtype
    if "body_model" in payload:
        out["body_model"] = payload["body_model"]
    _write(path, out)
    read_checkpoint(path)
    return path


def read_checkpoint(path: str | Path) -> dict:
    """The raw checkpoint dict, checked for format; no model is built."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    size = path.stat().st_size
    if size > MAX_CHECKPOINT_BYTES:
        raise CheckpointError(f"{path}: {size / 1e9:.1f} GB, larger than any TAR checkpoint "
                              f"(at most {MAX_CHECKPOINT_BYTES / 1e9:.0f} GB)")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many kinds for a damaged or foreign file
        reason = f"{type(exc).__name__}: {one_line(exc, 160)}"
        raise CheckpointError(f"{path}: corrupt or not a TAR checkpoint ({reason})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a TAR checkpoint (no '{FORMAT}' header)")
    version = payload.get("format_version")
    if type(version) is not int or not 1 <= version <= FORMAT_VERSION:
        raise CheckpointError(f"{path}: checkpoint format version {version} is not supported")
    for key in ("config", "state_dict", "provenance"):
        if key not in payload:
            raise CheckpointError(f"{path}: checkpoint lacks '{key}'")
    if not isinstance(payload["config"], dict) or not isinstance(payload["provenance"], dict):
        raise CheckpointError(f"{path}: checkpoint's config and provenance must be dicts")
    for v in range(version + 1, FORMAT_VERSION + 1):
        payload["config"] = {**_ADDED_FIELDS[v], **payload["config"]}
    payload["format_version"] = FORMAT_VERSION
    state = payload["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: checkpoint's state_dict must map names to tensors")
    dtype = payload.get("weights_dtype", "float32")
    if dtype not in WEIGHT_DTYPES:
        raise CheckpointError(f"{path}: weights dtype {dtype!r} is not one of {sorted(WEIGHT_DTYPES)}")
    for name, tensor in state.items():
        if tensor.is_floating_point() and tensor.dtype != WEIGHT_DTYPES[dtype]:
            raise CheckpointError(f"{path}: weight {name!r} is {str(tensor.dtype).removeprefix('torch.')}, "
                                  f"the checkpoint says its weights are {dtype}")
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise CheckpointError(f"{path}: weight {name!r} contains NaN or infinity (a diverged training run?)")
    return payload


def load_checkpoint(path: str | Path, body: BodyModel | None = None, variant: str | None = None,
                    device: str | torch.device = "cpu") -> LoadedCheckpoint:
    """Build the model a checkpoint describes and load its weights strictly.

    ``variant``: if given, the checkpoint's config must be that variant (else CheckpointError).
    ``body``: the body model to run (default: the built-in body, or $TAR_BODY_MODEL).
    """
    from tar_core.body_model import load_body_model
    from tar_core.network.tar import TAR

    path = Path(path)
    payload = read_checkpoint(path)
    try:
        cfg = config_from_dict(dict(payload["config"]))
    except (ConfigError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: config does not match this version of TAR ({exc})") from None
    if variant is not None and cfg.name != variant:
        raise CheckpointError(f"{path}: holds variant {cfg.name!r}, not {variant!r}")
    body = body or load_body_model()
    try:
        model = TAR(cfg, body)
    except ValueError as exc:
        raise CheckpointError(f"{path}: cannot build its model with {body.describe()} ({exc})") from None
    state = payload["state_dict"]
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # shape mismatches raise even when strict=False
        detail = str(exc).splitlines()[1:3]
        raise CheckpointError(f"{path}: weights do not match config {cfg.name!r}: {' '.join(detail)}") from None
    missing = [k for k in missing if not k.startswith("body.")]
    if missing or unexpected:
        raise CheckpointError(
            f"{path}: weights do not match config {cfg.name!r}: missing {missing[:5]}{'…' if len(missing) > 5 else ''}"
            f", unexpected {unexpected[:5]}{'…' if len(unexpected) > 5 else ''}"
        )
    model.eval().to(device)  # load_state_dict copied float16 weights into the float32 modules
    return LoadedCheckpoint(model=model, config=cfg, provenance=dict(payload["provenance"]),
                            sha256=file_sha256(path), path=path, body_model=payload.get("body_model"))
