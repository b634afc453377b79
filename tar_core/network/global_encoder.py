"""Global Temporal Encoder (paper sec. 3.1, Fig. 3a): transformer over per-frame global vectors."""

from __future__ import annotations

import torch
from torch import nn

from tar_core.network.config import TARConfig

__all__ = ["GlobalTemporalEncoder", "NUM_STATES"]

NUM_STATES = 26  # 24 joint rotations (incl. global orientation), shape, camera


class GlobalTemporalEncoder(nn.Module):
    """T static global vectors -> one temporal global vector f -> 26 hidden states H_init.

    A 4-layer transformer encoder relates the frames; a learned weighted average over time,
    implemented as a 1-D convolution with the T frames as input channels, shrinks the sequence to
    the mid-frame's temporal global feature; a linear layer + tanh splits it into the 26 states.
    """

    def __init__(self, cfg: TARConfig, global_dim: int):
        super().__init__()
        self.proj = nn.Linear(global_dim, cfg.gte_dim)
        self.pos = nn.Parameter(torch.zeros(1, cfg.seq_len, cfg.gte_dim))
        nn.init.trunc_normal_(self.pos, std=0.02)
        layer = nn.TransformerEncoderLayer(
            cfg.gte_dim, cfg.gte_heads, cfg.gte_ffn, cfg.gte_dropout, batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, cfg.gte_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(cfg.gte_dim)
        self.weighted_average = nn.Conv1d(cfg.seq_len, 1, kernel_size=1)  # weights over time
        nn.init.constant_(self.weighted_average.weight, 1.0 / cfg.seq_len)
        nn.init.zeros_(self.weighted_average.bias)
        self.to_states = nn.Linear(cfg.gte_dim, NUM_STATES * cfg.hidden_dim)
        self.hidden_dim = cfg.hidden_dim

    def forward(self, global_feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """global_feats (B, T, Dg) -> f (B, gte_dim), H_init (B, 26, hidden_dim)."""
        x = self.proj(global_feats) + self.pos  # (B, T, C)
        x = self.norm(self.encoder(x))  # (B, T, C)
        f = self.weighted_average(x).squeeze(1)  # (B, C)
        states = torch.tanh(self.to_states(f)).view(-1, NUM_STATES, self.hidden_dim)  # (B, 26, H)
        return f, states
