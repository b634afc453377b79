"""TAR: backbone -> Global Temporal Encoder || Local Temporal Encoder -> Recurrent Refinement Module.

The capture pipeline runs the backbone once per frame (``encode_frames``) and the temporal part
on windows of cached features (``forward_features``); training calls ``forward`` on clips.
"""

from __future__ import annotations

import torch
from torch import nn

from tar_core.body_model import BodyModel
from tar_core.network.backbones import build_backbone
from tar_core.network.config import TARConfig
from tar_core.network.global_encoder import NUM_STATES, GlobalTemporalEncoder
from tar_core.network.local_encoder import LocalTemporalEncoder
from tar_core.network.refinement import (
    CorrelationHead,
    Estimate,
    Geometry,
    ParameterRegressor,
    RecurrentRefinement,
    Start,
    pose_body,
)

__all__ = ["TAR", "Geometry", "Estimate", "Start"]

MEAN_CAM = (0.9, 0.0, 0.0)  # ReFit/CLIFF's mean crop camera (s, tx, ty)


class TAR(nn.Module):
    """The Temporal-Aware Refining Network for one config and one body model.

    The body model is held but its buffers are not part of the learned state (checkpoints drop
    ``body.*``); the config says how many markers it must provide.
    """

    def __init__(self, cfg: TARConfig, body: BodyModel):
        super().__init__()
        if body.num_markers != cfg.num_markers:
            raise ValueError(f"config wants {cfg.num_markers} markers, the body model has {body.num_markers}")
        self.cfg = cfg
        self.body = body
        self.backbone = build_backbone(cfg.backbone)
        self.gte = GlobalTemporalEncoder(cfg, self.backbone.global_dim) if cfg.use_gte else None
        self.lte = LocalTemporalEncoder(cfg, self.backbone.local_dim) if cfg.use_lte else None
        self.regressor = ParameterRegressor(cfg.hidden_dim)
        if cfg.use_rrm:
            local_channels = self.lte.out_channels if self.lte is not None else self.backbone.local_dim
            self.corr = CorrelationHead(local_channels, cfg.corr_channels, cfg.num_markers)
            self.rrm = RecurrentRefinement(cfg)
        eye6 = torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 0.0])  # identity rotation in our 6D layout
        self.register_buffer("mean_pose6d", eye6.repeat(24, 1), persistent=False)  # (24, 6) rest pose
        self.register_buffer("mean_cam", torch.tensor(MEAN_CAM), persistent=False)

    # -- per frame ------------------------------------------------------------------------------
    def encode_frames(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """images (N, 3, 256, 256) -> global (N, Dg), local (N, Dl, 64, 64): once per frame."""
        return self.backbone(images)

    def encode_local(self, local_maps: torch.Tensor) -> torch.Tensor:
        """A frame's local map as the windows read it: with the LTE, its per-frame part (N, C, S, S), computed once
        per frame in capture; without it, the map itself (N, Dl, 64, 64)."""
        return self.lte.encode_frames(local_maps) if self.lte is not None else local_maps

    # -- per window -----------------------------------------------------------------------------
    def forward_features(self, global_seq: torch.Tensor, local_seq: torch.Tensor, geom: Geometry,
                         start: Start | None = None, local_encoded: bool = False,
                         iterations: int | None = None) -> list[Estimate]:
        """Estimates for the middle frame of each window.

        global_seq (B, T, Dg): the T frames' global vectors; local_seq (B, L, Dl, 64, 64): the L
        local maps centred on the middle frame; geom: the middle frame's crop geometry (B); start: with
        ``rrm_init="keypoints"``, the keypoints engine's fit of the middle frame, where the RRM starts (ignored
        otherwise: the paper's models start from the regressor); local_encoded: local_seq holds ``encode_local``'s
        output instead of the maps; iterations: stop the RRM after this many of its iterations (inference).
        Returns [initial estimate, after iteration 1, ..., after iteration n] (1 + iterations,
        or just the initial one without the RRM).
        """
        cfg = self.cfg
        B = global_seq.shape[0]
        bbox_info = geom.bbox_info()  # (B, 3)
        if self.gte is not None:
            _, states = self.gte(global_seq)  # (B, 26, H)
        else:  # only-LTE: no temporal global feature; the regressor starts from zero states
            states = global_seq.new_zeros(B, NUM_STATES, cfg.hidden_dim)
        d_pose, d_betas, d_cam = self.regressor(states, bbox_info)
        params = (self.mean_pose6d + d_pose, d_betas, self.mean_cam + d_cam)
        if start is not None and cfg.rrm_init == "keypoints":
            params = start.select(*params)
        init = pose_body(self.body, geom, *params)
        if not cfg.use_rrm:
            return [init]
        if self.lte is not None:
            local = self.lte(local_seq, encoded=local_encoded)  # (B, C, 64, 64) temporal local features
        else:  # only-GTE: the static local features of the middle frame
            local = local_seq[:, local_seq.shape[1] // 2]
        corr = self.corr(local)  # (B, K, 64, 64)
        h0 = states if cfg.hidden_init == "gte" else torch.zeros_like(states)
        refined = self.rrm(init, h0, corr, geom, bbox_info, self.regressor,
                           lambda p, b, c: pose_body(self.body, geom, p, b, c), iterations)
        return [init, *refined]

    def forward(self, images, geom: Geometry, start: Start | None = None) -> list[Estimate]:
        """images (B, T, 3, 256, 256) clips, or a frozen trunk's cached features as a pair (global_seq (B, T, Dg),
        local_seq (B, L, Dl, 64, 64)); geom (and start) for each clip's middle frame. One entry point, so DDP wraps
        both."""
        if isinstance(images, tuple | list):
            global_seq, local_seq = images
            return self.forward_features(global_seq, local_seq, geom, start)
        B, T = images.shape[:2]
        if T != self.cfg.seq_len:
            raise ValueError(f"expected clips of {self.cfg.seq_len} frames, got {T}")
        g, m = self.encode_frames(images.flatten(0, 1))
        g = g.view(B, T, -1)  # (B, T, Dg)
        m = m.view(B, T, *m.shape[1:])  # (B, T, Dl, 64, 64)
        mid, tau = T // 2, self.cfg.tau
        return self.forward_features(g, m[:, mid - tau: mid + tau + 1], geom, start)

    def learned_state_dict(self) -> dict[str, torch.Tensor]:
        """The weights a checkpoint stores (everything except the body model's arrays)."""
        return {k: v for k, v in self.state_dict().items() if not k.startswith("body.")}
