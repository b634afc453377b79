"""Parameter and FLOP counts of a TAR variant (``python -m tar_core info``)."""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

from tar_core.body_model import load_body_model
from tar_core.network.config import TARConfig
from tar_core.network.tar import TAR, Geometry

__all__ = ["model_info"]


def _params(*modules) -> int:
    return sum(p.numel() for m in modules if m is not None for p in m.parameters())


def _gflops(fn) -> float:
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        fn()
    return counter.get_total_flops() / 1e9


def model_info(cfg: TARConfig) -> dict:
    """Parameters per part and GFLOPs: backbone per frame, the rest per output frame."""
    model = TAR(cfg, load_body_model()).eval()
    size = cfg.crop_size
    image = torch.zeros(1, 3, size, size)
    with torch.no_grad():
        g, m = model.encode_frames(image)
    geom = Geometry(center=torch.tensor([[320.0, 240.0]]), size=torch.tensor([300.0]),
                    focal=torch.tensor([800.0]), principal=torch.tensor([[320.0, 240.0]]))
    global_seq = g[:, None].expand(1, cfg.seq_len, -1).contiguous()  # (1, T, Dg)
    local_seq = m[:, None].expand(1, cfg.lte_window, *m.shape[1:]).contiguous()  # (1, L, Dl, 64, 64)
    gf_backbone = _gflops(lambda: model.encode_frames(image))
    gf_head = _gflops(lambda: model.forward_features(global_seq, local_seq, geom))
    refinement = [model.regressor, getattr(model, "corr", None), getattr(model, "rrm", None)]
    return {
        "variant": cfg.name,
        "params_backbone": _params(model.backbone),
        # A frozen pretrained trunk (blazepose) holds its weights as buffers: counted apart, never trained.
        "backbone_frozen": model.backbone.frozen,
        "frozen_trunk_weights": model.backbone.num_weights if model.backbone.frozen else 0,
        "params_temporal": _params(model.gte, model.lte),
        "params_refinement": _params(*refinement),
        "params_total": _params(model),
        "gflops_backbone_per_frame": round(gf_backbone, 3),
        "gflops_head_per_output_frame": round(gf_head, 3),
        # The capture pipeline runs the backbone once per frame, so one output frame costs one
        # backbone pass plus one head pass.
        "gflops_per_output_frame": round(gf_backbone + gf_head, 3),
    }
