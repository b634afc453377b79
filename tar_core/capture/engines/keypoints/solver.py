"""Refinement of the analytic start against the landmarks: a converged L-BFGS solve per chunk of frames.

Unknowns per frame: a correction rotation for each of the 24 joints (on top of the analytic IK's) and the
translation; the shape is fixed per person. Frames are independent in this solve (smoothing is a separate
zero-phase filter, see ``filters``), so chunks only bound the memory: a chunk's result does not depend on
where the chunk starts, and there is no seam. Terms:
- ``2d``: visibility-weighted Geman-McClure reprojection of the landmarks through the full-image camera,
  in units of the person's box (times a nominal body height, so it reads in metres);
- ``3d``: MediaPipe's metric world landmarks of the limbs in the pelvis's own frame (its axes are not
  exactly the camera's, so orientation comes from the image and this term gives depth);
- ``prior``: stay near the analytic pose (the landmarks' own bends), per joint;
- ``pin``: planted foot points (heel, toe) held at their targets, weighted by contact probability.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from tar_core.capture.engines.keypoints.landmarks import BODY_IDS, FOOT_BODY, LANDMARK_OFFSETS, MP_IDS
from tar_core.capture.engines.keypoints.optim import lbfgs_rows
from tar_core.geometry.rotations import axis_angle_to_matrix

__all__ = ["FOOT_COLS", "PT_COLS", "Observations", "SolveConfig", "refine", "pose_points"]

# The posed points a fit needs: the 24 joints, these extra joints (smplx order) and the landmarks that sit
# apart from their joints (LANDMARK_OFFSETS), and where each landmark's point (PT_COLS) and each contact
# point (FOOT_BODY) sits among them.
EXTRAS = tuple(sorted({i - 24 for i in (*BODY_IDS, *FOOT_BODY) if i >= 24}))
ATTACHED = tuple(LANDMARK_OFFSETS.values())
_N_FIXED = 24 + len(EXTRAS)


def _column(mp: int, body_id: int) -> int:
    if mp in LANDMARK_OFFSETS:
        return _N_FIXED + list(LANDMARK_OFFSETS).index(mp)
    return body_id if body_id < 24 else 24 + EXTRAS.index(body_id - 24)


PT_COLS = [_column(int(m), int(b)) for m, b in zip(MP_IDS, BODY_IDS, strict=True)]
FOOT_COLS = [24 + EXTRAS.index(i - 24) for i in FOOT_BODY]

LIMB_MP = (11, 12, 13, 14, 15, 16, 25, 26, 27, 28, 29, 30, 31, 32)  # the 3D term's landmarks
LIMB_COLS = [list(MP_IDS).index(i) for i in LIMB_MP]
HIP_COLS = [list(MP_IDS).index(i) for i in (23, 24)]
FACE_COLS = [list(MP_IDS).index(i) for i in (0, 2, 5, 7, 8)]
BOX_METRES = 1.7  # a box is about one body height: 2D residuals in boxes x this read in metres


@dataclass(frozen=True)
class SolveConfig:
    iters: int = 30
    tol: float = 1e-6
    chunk: int = 512
    w_2d: float = 1.0
    sigma_2d: float = 0.05  # metres-equivalent scale of the robust 2D cost
    w_face: float = 0.3  # face landmarks count this much of a limb landmark
    w_3d: float = 0.0  # measured on renders: any weight here costs 2D and 3D accuracy (the IK start and
    # the prior already carry the world landmarks' bends and depth)
    w_depth: float = 0.0  # relative depths (camera z) of the limb landmarks from the world landmarks
    w_prior: float = 0.01  # per joint (radians^2) of the body's own joints
    w_prior_root: float = 0.0  # of the global orientation
    w_pin: float = 10.0
    w_stay: float = 0.0  # pull of the translation towards its start (the pin pass uses it)
    min_visibility: float = 0.3


@dataclass
class Observations:
    """One chunk's data as torch tensors (float32)."""

    x2: torch.Tensor  # (n, P, 2) pixels
    w2: torch.Tensor  # (n, P)
    scale: torch.Tensor  # (n, 1) box size, pixels
    local3: torch.Tensor  # (n, L, 3) limb landmarks in MediaPipe's pelvis frame, hip-centred
    depth3: torch.Tensor  # (n, L) their depth relative to the hips' (MediaPipe's axes ~ the camera's)
    w3: torch.Tensor  # (n, L)
    pin_target: torch.Tensor | None = None  # (n, 4, 3) camera frame
    pin_w: torch.Tensor | None = None  # (n, 4)

    def take(self, rows: torch.Tensor) -> Observations:
        """The observations of ``rows`` only."""
        pick = {k: (None if v is None else v[rows]) for k, v in vars(self).items()}
        return Observations(**pick)


def observations(xy, vis, world, box_size, pelvis_R, cfg: SolveConfig, pins=None) -> Observations:
    """Tensors of the landmarks of rows ``xy`` (n, 33, 2), ``vis``, ``world`` and the analytic pelvis
    rotation ``pelvis_R`` (n, 3, 3) that defines MediaPipe's pelvis frame."""
    f = torch.float32
    v = vis[:, MP_IDS]
    w2 = np.where(v >= cfg.min_visibility, v, 0.0)
    w2[:, FACE_COLS] *= cfg.w_face
    mid = 0.5 * (world[:, 23] + world[:, 24])
    local = np.einsum("nji,nkj->nki", pelvis_R, world[:, list(LIMB_MP)] - mid[:, None])
    obs = Observations(x2=torch.tensor(xy[:, MP_IDS], dtype=f), w2=torch.tensor(w2, dtype=f),
                       scale=torch.tensor(np.maximum(box_size, 1.0), dtype=f)[:, None],
                       local3=torch.tensor(local, dtype=f),
                       depth3=torch.tensor(world[:, list(LIMB_MP), 2] - mid[:, None, 2], dtype=f),
                       w3=torch.tensor(w2[:, LIMB_COLS], dtype=f))
    if pins is not None:
        obs.pin_target = torch.tensor(pins[0], dtype=f)
        obs.pin_w = torch.tensor(pins[1], dtype=f)
    return obs


def pose_points(body, betas: torch.Tensor, R: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """(n, 24 + len(EXTRAS) + len(ATTACHED), 3) the joints and the other points a fit needs, camera frame."""
    return body.skeleton(R, betas.expand(len(R), -1), t, EXTRAS, ATTACHED)


def _loss(pts, R_global, t, t_start, delta, obs: Observations, K: torch.Tensor, cfg: SolveConfig) -> torch.Tensor:
    """(n,) each frame's loss: frames do not interact in this solve."""
    p = pts[:, PT_COLS]
    proj = p @ K.T
    uv = proj[..., :2] / proj[..., 2:3].clamp_min(1e-3)
    r2 = (((uv - obs.x2) / obs.scale[..., None]) * BOX_METRES).square().sum(-1)
    s2 = cfg.sigma_2d**2
    loss = cfg.w_2d * (obs.w2 * (s2 * r2 / (r2 + s2))).sum(1)
    if cfg.w_3d > 0:
        mid = 0.5 * (p[:, HIP_COLS[0]] + p[:, HIP_COLS[1]])
        local = torch.einsum("nji,nkj->nki", R_global, p[:, LIMB_COLS] - mid[:, None])
        loss = loss + cfg.w_3d * (obs.w3 * (local - obs.local3).square().sum(-1)).sum(1)
    if cfg.w_depth > 0:
        mid = 0.5 * (p[:, HIP_COLS[0], 2] + p[:, HIP_COLS[1], 2])
        loss = loss + cfg.w_depth * (obs.w3 * (p[:, LIMB_COLS, 2] - mid[:, None] - obs.depth3).square()).sum(1)
    loss = loss + cfg.w_prior * delta[:, 1:].square().sum((1, 2)) + cfg.w_prior_root * delta[:, 0].square().sum(1)
    if obs.pin_target is not None and obs.pin_w is not None:
        feet = pts[:, FOOT_COLS]
        loss = loss + cfg.w_pin * (obs.pin_w * (feet - obs.pin_target).square().sum(-1)).sum(1)
    if cfg.w_stay > 0:
        loss = loss + cfg.w_stay * (t - t_start).square().sum(1)
    return loss


def refine(body, betas: np.ndarray, K: np.ndarray, R0: np.ndarray, t0: np.ndarray, obs: Observations,
           cfg: SolveConfig, stop, on_iter=None) -> tuple[np.ndarray, np.ndarray, dict]:
    """Refine rotations ``R0`` (n, 24, 3, 3) and translations ``t0`` (n, 3) of one chunk; returns both and
    the solver's figures."""
    f = torch.float32
    n = len(R0)
    base = torch.tensor(R0, dtype=f)
    t_start = torch.tensor(t0, dtype=f)
    Kt, b = torch.tensor(K, dtype=f), torch.tensor(betas, dtype=f)[None]

    def fun(x, rows):  # x: (k, 75) = 24 correction rotations (axis-angle) and the translation's change
        x = x.detach().requires_grad_()
        base_k, start_k, obs_k = (base, t_start, obs) if rows is None else (base[rows], t_start[rows], obs.take(rows))
        delta = x[:, :72].view(-1, 24, 3)
        R, t = base_k @ axis_angle_to_matrix(delta), start_k + x[:, 72:]
        losses = _loss(pose_points(body, b, R, t), R[:, 0], t, start_k, delta, obs_k, Kt, cfg)
        (g,) = torch.autograd.grad(losses.sum(), x)  # rows are independent: the sum's gradient is each row's
        return losses.detach(), g

    res = lbfgs_rows(fun, torch.zeros(n, 75), cfg.iters, cfg.tol, stop, on_iter=on_iter)
    with torch.no_grad():
        R, t = base @ axis_angle_to_matrix(res.x[:, :72].view(n, 24, 3)), t_start + res.x[:, 72:]
    info = {"iterations": res.iterations, "evaluations": res.evaluations, "row_evaluations": res.row_evaluations,
            "converged": res.converged}
    return R.double().numpy(), t.double().numpy(), info

