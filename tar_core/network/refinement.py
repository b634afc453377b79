"""Recurrent Refinement Module (paper sec. 3.3, eq. 5-9, Fig. 5) and its building blocks.

Each iteration poses the body with the current estimate, projects K surface markers with the
full-image camera into the crop (eq. 5-6), reads the temporal local features in a window of
radius r around each marker (eq. 7), builds the feedback signal (eq. 8) and lets 26 GRUs (24
rotations, shape, camera) update the estimate (eq. 9): Phi <- Phi + dPhi.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from tar_core.body_model import BodyModel
from tar_core.geometry import camera as cam
from tar_core.geometry.rotations import matrix_to_rot6d, rot6d_to_matrix
from tar_core.network.config import TARConfig
from tar_core.network.global_encoder import NUM_STATES

__all__ = [
    "CorrelationHead",
    "Estimate",
    "GroupedGRUCell",
    "Start",
    "ParameterRegressor",
    "RecurrentRefinement",
    "Geometry",
    "sample_windows",
]

NUM_POSE = 24


@dataclass
class Geometry:
    """Where each crop sits in its full image (the CLIFF camera inputs). Batch B."""

    center: torch.Tensor  # (B, 2) box centre, image pixels
    size: torch.Tensor  # (B,) box side, pixels
    focal: torch.Tensor  # (B,) focal length, pixels
    principal: torch.Tensor  # (B, 2) principal point, pixels

    @property
    def K(self) -> torch.Tensor:
        """(B, 3, 3) intrinsics."""
        B = self.size.shape[0]
        K = self.size.new_zeros(B, 3, 3)
        K[:, 0, 0] = K[:, 1, 1] = self.focal
        K[:, :2, 2] = self.principal
        K[:, 2, 2] = 1.0
        return K

    def bbox_info(self) -> torch.Tensor:
        """(B, 3) CLIFF bbox-info vector."""
        return cam.bbox_info(self.center, self.size, self.focal, self.principal)


@dataclass
class Estimate:
    """One estimate of the SMPL parameters and what they imply. Batch B."""

    pose6d: torch.Tensor  # (B, 24, 6)
    betas: torch.Tensor  # (B, 10)
    cam: torch.Tensor  # (B, 3) crop camera (s, tx, ty)
    rotmat: torch.Tensor  # (B, 24, 3, 3)
    transl: torch.Tensor  # (B, 3) full-image translation
    joints: torch.Tensor  # (B, 24, 3) camera frame (translation included)
    joints_2d: torch.Tensor  # (B, 24, 2) full-image pixels
    markers: torch.Tensor  # (B, K, 3) camera frame


@dataclass
class Start:
    """Where the RRM starts instead of the regressor's estimate (``rrm_init="keypoints"``): the keypoints engine's
    fit of the same frames. Batch B; rows with ``valid`` False (no fit) keep the regressor's estimate."""

    pose6d: torch.Tensor  # (B, 24, 6)
    betas: torch.Tensor  # (B, 10)
    cam: torch.Tensor  # (B, 3) crop camera (s, tx, ty)
    valid: torch.Tensor  # (B,) bool

    @classmethod
    def from_fit(cls, rotmat: torch.Tensor, betas: torch.Tensor, transl: torch.Tensor, valid: torch.Tensor,
                 geom: Geometry) -> Start:
        """A body fitted in the full-image camera (rotmat (B, 24, 3, 3), betas (B, 10), transl (B, 3)) as a
        start for crops of ``geom``: the translation becomes the crop camera that reproduces it."""
        cam_crop = cam.full_to_crop_camera(transl, geom.center, geom.size, geom.focal, geom.principal)
        return cls(matrix_to_rot6d(rotmat), betas, cam_crop, valid.bool())

    def select(self, pose6d: torch.Tensor, betas: torch.Tensor, cam_crop: torch.Tensor):
        """The start where valid, the given (regressor) values elsewhere."""
        v = self.valid.to(pose6d.device)
        return (torch.where(v[:, None, None], self.pose6d.to(pose6d), pose6d),
                torch.where(v[:, None], self.betas.to(betas), betas),
                torch.where(v[:, None], self.cam.to(cam_crop), cam_crop))


class GroupedGRUCell(nn.Module):
    """G independent GRU cells (own weights each) reading one shared input, batched in einsums."""

    def __init__(self, groups: int, input_size: int, hidden_size: int):
        super().__init__()
        H = hidden_size
        bound = H**-0.5  # PyTorch's GRUCell initialisation
        self.w_ih = nn.Parameter(torch.empty(groups, 3 * H, input_size).uniform_(-bound, bound))
        self.w_hh = nn.Parameter(torch.empty(groups, 3 * H, H).uniform_(-bound, bound))
        self.b_ih = nn.Parameter(torch.empty(groups, 3 * H).uniform_(-bound, bound))
        self.b_hh = nn.Parameter(torch.empty(groups, 3 * H).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """x (B, I) shared by all groups, h (B, G, H) -> (B, G, H). Same equations as nn.GRUCell."""
        gi = torch.einsum("bi,gki->bgk", x, self.w_ih) + self.b_ih  # (B, G, 3H)
        gh = torch.einsum("bgh,gkh->bgk", h, self.w_hh) + self.b_hh  # (B, G, 3H)
        i_r, i_z, i_n = gi.chunk(3, dim=-1)
        h_r, h_z, h_n = gh.chunk(3, dim=-1)
        r = torch.sigmoid(i_r + h_r)
        z = torch.sigmoid(i_z + h_z)
        n = torch.tanh(i_n + r * h_n)
        return (1 - z) * n + z * h


class ParameterRegressor(nn.Module):
    """26 regressors: [hidden state, bbox info] -> 32 -> ReLU -> 6 per joint, 10 shape, 3 camera."""

    def __init__(self, hidden_size: int):
        super().__init__()
        G, H = NUM_STATES, hidden_size
        self.w1 = nn.Parameter(torch.empty(G, H, H + 3))
        self.b1 = nn.Parameter(torch.zeros(G, H))
        nn.init.xavier_uniform_(self.w1.view(G * H, H + 3))
        self.pose_w = nn.Parameter(torch.empty(NUM_POSE, 6, H))
        self.pose_b = nn.Parameter(torch.zeros(NUM_POSE, 6))
        # Small output layers: the first estimates stay near the mean parameters.
        nn.init.xavier_uniform_(self.pose_w.view(NUM_POSE * 6, H), gain=0.01)
        self.shape = nn.Linear(H, 10)
        self.camera = nn.Linear(H, 3)
        for lin in (self.shape, self.camera):
            nn.init.xavier_uniform_(lin.weight, gain=0.01)
            nn.init.zeros_(lin.bias)

    def forward(self, states: torch.Tensor, bbox_info: torch.Tensor):
        """states (B, 26, H), bbox_info (B, 3) -> d_pose6d (B, 24, 6), d_betas (B, 10), d_cam (B, 3)."""
        x = torch.cat([states, bbox_info[:, None].expand(-1, NUM_STATES, -1)], dim=-1)  # (B, 26, H+3)
        y = torch.relu(torch.einsum("bgi,gki->bgk", x, self.w1) + self.b1)  # (B, 26, H)
        d_pose = torch.einsum("bgh,gkh->bgk", y[:, :NUM_POSE], self.pose_w) + self.pose_b  # (B, 24, 6)
        return d_pose, self.shape(y[:, NUM_POSE]), self.camera(y[:, NUM_POSE + 1])


class CorrelationHead(nn.Module):
    """Local features -> one map per marker (ReFit's head: 2 x (3x3 conv, BN, ReLU), 1x1 conv)."""

    def __init__(self, in_channels: int, channels: int, num_markers: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, channels, 3, padding=1), nn.BatchNorm2d(channels), nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 3, padding=1), nn.BatchNorm2d(channels), nn.ReLU(inplace=True),
            nn.Conv2d(channels, num_markers, 1),
        )  # fmt: skip

    def forward(self, local: torch.Tensor) -> torch.Tensor:
        """(B, C, 64, 64) -> (B, K, 64, 64)."""
        return self.net(local)


def sample_windows(maps: torch.Tensor, points: torch.Tensor, radius: int) -> torch.Tensor:
    """Read a (2r+1)^2 window around each point, each point from its own channel.

    maps (B, K, h, w); points (B, K, 2) in feature-map pixels, (x, y), pixel centres at integer
    coordinates (``align_corners=True``). Bilinear, zeros outside the map. Returns (B, K, (2r+1)^2)
    ordered row by row (dy outer, dx inner).
    """
    B, K, h, w = maps.shape
    r = torch.arange(-radius, radius + 1, dtype=points.dtype, device=points.device)
    dy, dx = torch.meshgrid(r, r, indexing="ij")
    offsets = torch.stack([dx.reshape(-1), dy.reshape(-1)], dim=-1)  # (W2, 2) as (x, y)
    pts = points[:, :, None, :] + offsets  # (B, K, W2, 2)
    scale = pts.new_tensor([2.0 / (w - 1), 2.0 / (h - 1)])
    grid = (pts * scale - 1.0).reshape(B * K, 1, -1, 2)  # (B*K, 1, W2, 2) normalised
    out = F.grid_sample(maps.reshape(B * K, 1, h, w), grid, mode="bilinear", padding_mode="zeros",
                        align_corners=True)  # (B*K, 1, 1, W2)
    return out.view(B, K, -1)


class RecurrentRefinement(nn.Module):
    """The RRM: feedback from marker windows drives 26 GRUs that update the SMPL estimate."""

    def __init__(self, cfg: TARConfig, map_size: int = 64):
        super().__init__()
        K, H = cfg.num_markers, cfg.hidden_dim
        window = (2 * cfg.window_radius + 1) ** 2
        self.cfg = cfg
        self.map_scale = map_size / cfg.crop_size  # crop pixels -> feature-map pixels
        self.marker_w = nn.Parameter(torch.empty(K, window, cfg.marker_features))  # one linear per marker
        self.marker_b = nn.Parameter(torch.zeros(K, cfg.marker_features))
        nn.init.xavier_uniform_(self.marker_w.view(K * window, cfg.marker_features))
        self.feedback = nn.Sequential(nn.Linear(K * cfg.marker_features, cfg.feedback_dim), nn.ReLU(inplace=True))
        gru_in = cfg.feedback_dim + 3 + NUM_POSE * 6 + 10 + 3  # eq. (8): features, bbox info, Phi
        self.gru = GroupedGRUCell(NUM_STATES, gru_in, H)

    def marker_pixels(self, est: Estimate, geom: Geometry) -> torch.Tensor:
        """(B, K, 2) markers in feature-map pixels: full-image projection into the box (eq. 5-6)."""
        full = cam.project(est.markers, geom.K)  # (B, K, 2) includes the translation
        crop = cam.full_to_crop(full, geom.center, geom.size, self.cfg.crop_size)
        return crop * self.map_scale

    def feedback_signal(self, est: Estimate, corr: torch.Tensor, geom: Geometry, bbox_info: torch.Tensor,
                        marker_mask: torch.Tensor | None) -> torch.Tensor:
        """Eq. (7)-(8): s_l = [window features of every marker, Phi_l, bbox info] -> (B, gru_in)."""
        pts = self.marker_pixels(est, geom).detach()  # where to look is not learned through
        win = sample_windows(corr, pts, self.cfg.window_radius)  # (B, K, W2)
        feats = torch.einsum("bkw,kwf->bkf", win, self.marker_w) + self.marker_b  # (B, K, 5)
        if marker_mask is not None:
            feats = feats * marker_mask
        f = self.feedback(feats.flatten(1))  # (B, feedback_dim)
        return torch.cat([f, bbox_info, est.pose6d.flatten(1), est.betas, est.cam], dim=-1)

    def forward(self, init: Estimate, states: torch.Tensor, corr: torch.Tensor, geom: Geometry,
                bbox_info: torch.Tensor, regressor: ParameterRegressor,
                pose_fn, iterations: int | None = None) -> list[Estimate]:
        """Run the iterations from ``init`` (the first ``iterations`` of them when given); returns the estimate
        after each."""
        B, K = corr.shape[:2]
        mask = None
        if self.training and self.cfg.marker_dropout > 0:
            keep = torch.rand(B, K, 1, device=corr.device) >= self.cfg.marker_dropout
            mask = keep.to(corr.dtype)
        est, h, out = init, states, []
        for _ in range(self.cfg.iterations if iterations is None else min(iterations, self.cfg.iterations)):
            h = self.gru(self.feedback_signal(est, corr, geom, bbox_info, mask), h)
            d_pose, d_betas, d_cam = regressor(h, bbox_info)
            est = pose_fn(est.pose6d + d_pose, est.betas + d_betas, est.cam + d_cam)
            out.append(est)
        return out


def pose_body(body: BodyModel, geom: Geometry, pose6d: torch.Tensor, betas: torch.Tensor,
              cam_crop: torch.Tensor) -> Estimate:
    """Run the body model for an estimate and place it with the full-image camera."""
    rotmat = rot6d_to_matrix(pose6d)  # (B, 24, 3, 3)
    transl = cam.crop_to_full(cam_crop, geom.center, geom.size, geom.focal, geom.principal)  # (B, 3)
    out = body(rotmat[:, :1], rotmat[:, 1:], betas, transl, full_mesh=False)  # joints + markers only
    return Estimate(
        pose6d=pose6d, betas=betas, cam=cam_crop, rotmat=rotmat, transl=transl, joints=out.joints,
        joints_2d=cam.project(out.joints, geom.K), markers=out.markers,
    )  # fmt: skip
