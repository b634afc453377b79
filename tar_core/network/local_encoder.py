"""Local Temporal Encoder (paper sec. 3.2, eq. 1-4, Fig. 4 and S1): a bidirectional ConvGRU."""

from __future__ import annotations

import math

import torch
from torch import nn

from tar_core.network.config import TARConfig

__all__ = ["ConvGRUCell", "LocalTemporalEncoder"]


class ConvGRUCell(nn.Module):
    """One ConvGRU step, exactly eq. (1)-(4) of the paper:

        Z_t = sigmoid(W_z * m_t + U_z * h_{t-1})
        R_t = sigmoid(W_r * m_t + U_r * h_{t-1})
        h~_t = tanh(W * m_t + U * (R_t o h_{t-1}))
        h_t = (1 - Z_t) o h_{t-1} + Z_t o h~_t

    ``*`` is a same-padding convolution, ``o`` the elementwise product. The input convolutions
    carry the biases; the hidden ones have none (a second bias would be redundant).
    """

    def __init__(self, channels: int, kernel: int = 3):
        super().__init__()
        pad = kernel // 2
        self.W_z = nn.Conv2d(channels, channels, kernel, padding=pad)
        self.W_r = nn.Conv2d(channels, channels, kernel, padding=pad)
        self.W = nn.Conv2d(channels, channels, kernel, padding=pad)
        self.U_z = nn.Conv2d(channels, channels, kernel, padding=pad, bias=False)
        self.U_r = nn.Conv2d(channels, channels, kernel, padding=pad, bias=False)
        self.U = nn.Conv2d(channels, channels, kernel, padding=pad, bias=False)

    def forward(self, m: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """m, h (B, C, S, S) -> next h (B, C, S, S)."""
        z = torch.sigmoid(self.W_z(m) + self.U_z(h))
        r = torch.sigmoid(self.W_r(m) + self.U_r(h))
        h_tilde = torch.tanh(self.W(m) + self.U(r * h))
        return (1 - z) * h + z * h_tilde


class LocalTemporalEncoder(nn.Module):
    """L static local maps -> the temporal local map m of the middle frame tau.

    Input maps are brought to ``lte_channels`` by a 1x1 conv, shrunk to S x S by stride-2 convs
    (Fig. S1; none when S = 64), run through a past branch over frames 0..tau and a future branch
    over frames L-1..tau (hidden maps zero-initialised), fused by a conv over both final hidden
    maps, and restored to 64 x 64 by stride-2 transposed convs.
    """

    def __init__(self, cfg: TARConfig, local_dim: int, map_size: int = 64):
        super().__init__()
        C = cfg.lte_channels
        self.window, self.tau = cfg.lte_window, cfg.tau
        steps = int(round(math.log2(map_size // cfg.lte_size)))
        self.reduce = nn.Sequential(nn.Conv2d(local_dim, C, 1), nn.BatchNorm2d(C), nn.ReLU(inplace=True))
        down: list[nn.Module] = []
        up: list[nn.Module] = []
        for _ in range(steps):
            down += [nn.Conv2d(C, C, 3, stride=2, padding=1), nn.BatchNorm2d(C), nn.ReLU(inplace=True)]
            up += [nn.ConvTranspose2d(C, C, 4, stride=2, padding=1), nn.BatchNorm2d(C), nn.ReLU(inplace=True)]
        self.down = nn.Sequential(*down)
        self.up = nn.Sequential(*up)
        self.past = ConvGRUCell(C, cfg.lte_kernel)
        self.future = ConvGRUCell(C, cfg.lte_kernel)
        self.fuse = nn.Sequential(nn.Conv2d(2 * C, C, 3, padding=1), nn.BatchNorm2d(C), nn.ReLU(inplace=True))
        self.out_channels = C

    def encode_frames(self, maps: torch.Tensor) -> torch.Tensor:
        """Each frame's own part: maps (N, D, 64, 64) -> (N, C, S, S). Capture runs it once per frame (in eval mode
        the batch norms are fixed per-sample maps, so caching it changes nothing) instead of once per window."""
        return self.down(self.reduce(maps))

    def forward(self, local_maps: torch.Tensor, encoded: bool = False) -> torch.Tensor:
        """local_maps (B, L, D, 64, 64), or with ``encoded`` their ``encode_frames`` (B, L, C, S, S) -> m (B, C, 64,
        64)."""
        B, L = local_maps.shape[:2]
        if L != self.window:
            raise ValueError(f"LTE expects a window of {self.window} maps, got {L}")
        x = local_maps if encoded else self.encode_frames(local_maps.flatten(0, 1))  # (B*L, C, S, S)
        x = x.reshape(B, L, *x.shape[-3:])  # (B, L, C, S, S)
        h_p = x.new_zeros(x[:, 0].shape)
        for t in range(0, self.tau + 1):  # past: 0 .. tau
            h_p = self.past(x[:, t], h_p)
        h_f = x.new_zeros(x[:, 0].shape)
        for t in range(L - 1, self.tau - 1, -1):  # future: L-1 .. tau
            h_f = self.future(x[:, t], h_f)
        return self.up(self.fuse(torch.cat([h_p, h_f], dim=1)))  # (B, C, 64, 64)
