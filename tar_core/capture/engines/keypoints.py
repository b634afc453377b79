"""The keypoints engine: MediaPipe BlazePose landmarks fitted with the body model over a track.

No checkpoint is needed, so real footage works out of the box. Per track it solves for per-frame
global orientation, 23 joint rotations and translation and one shape vector, minimising
- confidence-weighted 2D reprojection of the landmarks through the full-image camera (same K as
  the tar engine), robust to outliers;
- root-aligned agreement with MediaPipe's metric "world" landmarks;
- where MediaPipe's points sit: its hips and shoulders are not SMPL's joints, so each gets a
  per-person offset (learned, regularised) in the body's frame; face and foot points are vertices;
- joint-angle limits (knees and elbows bend one way and do not twist), a pose and a shape prior;
- temporal smoothness (acceleration of joints and translation).
Long tracks are solved in overlapping windows so memory stays flat. Short detection gaps are
bridged (rows with no data, filled by smoothness, low confidence); long ones are left out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from tar_core.capture.tracks import TrackData
from tar_core.geometry.rotations import axis_angle_to_matrix, matrix_to_axis_angle, matrix_to_rot6d, rot6d_to_matrix

__all__ = ["FitConfig", "KeypointsEngine", "fit_track", "fit_tracks", "MP_TO_BODY"]

# MediaPipe landmark -> body point index (0-23 SMPL joints, 24+ smplx extra joints:
# 24 nose, 25 reye, 26 leye, 27 rear, 28 lear, 29 LBigToe, 31 LHeel, 32 RBigToe, 34 RHeel).
MP_TO_BODY = {
    0: 24, 2: 26, 5: 25, 7: 28, 8: 27,  # nose, eyes, ears
    11: 16, 12: 17, 13: 18, 14: 19, 15: 20, 16: 21,  # shoulders, elbows, wrists
    23: 1, 24: 2, 25: 4, 26: 5, 27: 7, 28: 8,  # hips, knees, ankles
    29: 31, 30: 34, 31: 29, 32: 32,  # heels, foot tips (big toes)
}  # fmt: skip
MP_IDS = np.array(list(MP_TO_BODY))
BODY_IDS = np.array(list(MP_TO_BODY.values()))
OFFSET_MP = (11, 12, 23, 24)  # landmarks with a learned offset: shoulders, hips
LIMB_MP = [11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28]  # used by the 3D term


@dataclass(frozen=True)
class FitConfig:
    """Weights and schedule of the fit (tuned on the rendered sample clip, see docs/capture.md)."""

    iters_global: int = 40
    iters: int = 100
    lr: float = 0.04
    w_2d: float = 1.0
    w_3d: float = 3.0
    w_smooth: float = 40.0
    w_angle: float = 2.0
    w_pose: float = 0.005
    w_shape: float = 0.01
    w_offset: float = 2.0
    window: int = 240
    overlap: int = 40
    max_gap_s: float = 0.5
    min_visibility: float = 0.3


def _init_global(world: np.ndarray, xy: np.ndarray, K: np.ndarray, pelvis_rest: np.ndarray):
    """Per frame: orientation from MediaPipe's metric torso, translation from its size in pixels."""
    lh, rh, ls, rs = world[:, 23], world[:, 24], world[:, 11], world[:, 12]
    x = lh - rh  # the subject's left (MediaPipe world axes follow the camera's)
    x /= np.linalg.norm(x, axis=1, keepdims=True) + 1e-9
    up = 0.5 * (ls + rs) - 0.5 * (lh + rh)
    y = up - (up * x).sum(1, keepdims=True) * x
    y /= np.linalg.norm(y, axis=1, keepdims=True) + 1e-9
    z = np.cross(x, y)
    R = np.stack([x, y, z], axis=-1)  # columns: body axes in the camera frame
    torso3d = np.linalg.norm(up, axis=1)
    mid_px = 0.5 * (xy[:, 23] + xy[:, 24])
    torso_px = np.linalg.norm(0.5 * (xy[:, 11] + xy[:, 12]) - mid_px, axis=1)
    f = K[0, 0]
    depth = np.clip(f * torso3d / np.maximum(torso_px, 1.0), 0.5, 50.0)
    depth = np.median(depth) * np.ones_like(depth) if len(depth) < 5 else depth
    pelvis = np.stack([(mid_px[:, 0] - K[0, 2]) / f * depth, (mid_px[:, 1] - K[1, 2]) / f * depth, depth], 1)
    return R, pelvis - pelvis_rest


def fit_track(body, xy: np.ndarray, vis: np.ndarray, world: np.ndarray, observed: np.ndarray, K: np.ndarray,
              box_size: np.ndarray, cfg: FitConfig | None = None, init=None):
    """Fit one window of a track.

    xy (N, 33, 2) pixels; vis (N, 33); world (N, 33, 3); observed (N,) bool (False: a bridged row
    with no data); box_size (N,) pixels. Returns poses (N, 72), trans (N, 3), betas (10,).
    """
    cfg = cfg or FitConfig()
    N = len(xy)
    dt = torch.float32
    vis = np.where(observed[:, None], vis, 0.0)
    w2 = torch.tensor(np.where(vis[:, MP_IDS] >= cfg.min_visibility, vis[:, MP_IDS], 0.0), dtype=dt)  # (N, P)
    x2 = torch.tensor(xy[:, MP_IDS], dtype=dt)
    scale = torch.tensor(np.maximum(box_size, 1.0), dtype=dt)[:, None]  # (N, 1) pixels -> box units
    Kt = torch.tensor(K, dtype=dt)
    limb = [list(MP_TO_BODY).index(i) for i in LIMB_MP]
    w3 = w2[:, limb].clone()
    wmid = torch.tensor(0.5 * (world[:, 23] + world[:, 24]), dtype=dt)
    x3 = torch.tensor(world[:, LIMB_MP], dtype=dt) - wmid[:, None]
    off_cols = [list(MP_TO_BODY).index(i) for i in OFFSET_MP]

    with torch.no_grad():
        pelvis_rest = body.rest_joints(torch.zeros(1, 10))[0, 0].numpy()
    if init is None:
        obs = observed.copy()
        R0, t0 = _init_global(world[obs], xy[obs], K, pelvis_rest)
        idx = np.clip(np.searchsorted(np.flatnonzero(obs), np.arange(N)), 0, obs.sum() - 1)  # fill bridged rows
        R0, t0 = R0[idx], t0[idx]
        g6 = matrix_to_rot6d(torch.tensor(R0, dtype=dt))
        body_aa = torch.zeros(N, 23, 3)
        # Arms hang rather than stretch out: a better start than the T-pose.
        body_aa[:, 15, 2], body_aa[:, 16, 2] = -1.1, 1.1
        trans = torch.tensor(t0, dtype=dt)
        betas = torch.zeros(10)
        offsets = torch.zeros(len(OFFSET_MP), 3)
    else:
        g6, body_aa, trans, betas, offsets = (torch.as_tensor(v, dtype=dt).clone() for v in init)
    params = {"g6": g6.requires_grad_(), "body": body_aa.requires_grad_(), "trans": trans.requires_grad_(),
              "betas": betas.requires_grad_(), "offsets": offsets.requires_grad_()}

    def points():
        Rg = rot6d_to_matrix(params["g6"])  # (N, 3, 3)
        Rb = axis_angle_to_matrix(params["body"])  # (N, 23, 3, 3)
        out = body(Rg[:, None], Rb, params["betas"].expand(N, 10), params["trans"], full_mesh=False)
        pts = torch.cat([out.joints, out.extra_joints], 1)[:, BODY_IDS]  # (N, P, 3)
        off = torch.einsum("nij,kj->nki", Rg, params["offsets"])  # offsets turn with the body
        pts = pts.clone()
        pts[:, off_cols] = pts[:, off_cols] + off
        return pts, out.joints

    def loss_fn(stage: int):
        pts, joints = points()
        proj = pts @ Kt.T
        uv = proj[..., :2] / proj[..., 2:3].clamp_min(1e-3)
        r = ((uv - x2) / scale[..., None]).norm(dim=-1)  # (N, P) in box units
        l2d = (w2 * (r**2 / (r**2 + 0.01))).sum() / w2.sum().clamp_min(1)  # Geman-McClure, sigma 0.1 box
        mid = 0.5 * (pts[:, list(MP_TO_BODY).index(23)] + pts[:, list(MP_TO_BODY).index(24)])
        e3 = ((pts[:, limb] - mid[:, None]) - x3).norm(dim=-1)
        l3d = (w3 * e3**2).sum() / w3.sum().clamp_min(1)
        loss = cfg.w_2d * l2d + cfg.w_3d * l3d
        if stage == 1:
            aa = params["body"]
            knee = aa[:, [3, 4]]  # SMPL body joints 4, 5 (index - 1)
            elbow_l, elbow_r = aa[:, 17], aa[:, 18]  # joints 18, 19
            angle = (torch.relu(-knee[..., 0]) ** 2 + knee[..., 1] ** 2 + knee[..., 2] ** 2).sum(1)
            angle = angle + torch.relu(elbow_l[:, 1]) ** 2 + torch.relu(-elbow_r[:, 1]) ** 2
            angle = angle + 0.5 * (elbow_l[:, [0, 2]] ** 2).sum(1) + 0.5 * (elbow_r[:, [0, 2]] ** 2).sum(1)
            loss = loss + cfg.w_angle * angle.mean() + cfg.w_pose * (aa**2).sum((1, 2)).mean()
            loss = loss + cfg.w_shape * (params["betas"] ** 2).sum() + cfg.w_offset * (params["offsets"] ** 2).sum()
            if N >= 3:  # acceleration of joints and translation, per frame (rates differ little)
                acc = joints[2:] - 2 * joints[1:-1] + joints[:-2]
                loss = loss + cfg.w_smooth * (acc**2).sum(-1).mean()
        elif N >= 3:
            acc = params["trans"][2:] - 2 * params["trans"][1:-1] + params["trans"][:-2]
            loss = loss + cfg.w_smooth * (acc**2).sum(-1).mean()
        return loss

    stages = [(0, ["g6", "trans"], cfg.iters_global if init is None else 0), (1, list(params), cfg.iters)]
    for stage, names, iters in stages:
        if iters <= 0:
            continue
        opt = torch.optim.Adam([params[n] for n in names], lr=cfg.lr)
        for _ in range(iters):
            opt.zero_grad()
            loss_fn(stage).backward()
            opt.step()
    with torch.no_grad():
        Rg = rot6d_to_matrix(params["g6"])
        poses = torch.cat([matrix_to_axis_angle(Rg.double()).float(), params["body"].reshape(N, 69)], 1)
        state = tuple(p.detach().clone() for p in params.values())
        return poses.numpy(), params["trans"].numpy().copy(), params["betas"].numpy().copy(), state


def _bridge(track, all_times: dict, max_gap_s: float):
    """Rows for the track's frames plus short gaps; returns frame ids, times, observed mask, source row."""
    ids, times, observed, src = [], [], [], []
    for k, f in enumerate(track.frame_ids):
        if k > 0:
            prev = track.frame_ids[k - 1]
            if f - prev > 1 and all_times.get(f, math.inf) - all_times.get(prev, 0) <= max_gap_s:
                for g in range(prev + 1, f):
                    if g in all_times:
                        ids.append(g), times.append(all_times[g]), observed.append(False), src.append(k)
        ids.append(f), times.append(track.times[k]), observed.append(True), src.append(k)
    return np.array(ids), np.array(times), np.array(observed), np.array(src)


class KeypointsEngine:
    """The keypoints engine behind the ``Engine`` interface: no checkpoint, landmarks from pass 1."""

    name = "keypoints"

    def __init__(self, cfg: FitConfig | None = None):
        self.cfg = cfg or FitConfig()

    def summary(self) -> dict:
        return {}

    def provenance(self) -> dict:
        return {"config": None, "checkpoint_sha256": None}

    def run(self, job) -> None:
        fit_tracks(job.tracks, job.writer, job.body, job.K, job.progress, job.stop, job.frame_times, self.cfg)


def fit_tracks(tracks: dict, writer, body, K: np.ndarray, progress, stop, all_times: dict | None = None,
               cfg: FitConfig | None = None) -> None:
    """Fit every track and write its motion file."""
    cfg = cfg or FitConfig()
    all_times = all_times or {}
    total = sum(len(t.frame_ids) for t in tracks.values())
    done = 0
    for tid in sorted(tracks):
        stop.check()
        t = tracks[tid]
        ids, times, observed, src = _bridge(t, all_times, cfg.max_gap_s)
        lms = [t.landmarks[k] for k in src]
        xy = np.stack([lm.image_xy for lm in lms])
        vis = np.stack([lm.visibility for lm in lms])
        world = np.stack([lm.world for lm in lms])
        boxes = np.stack([t.boxes[k] for k in src])
        box_size = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
        N = len(ids)
        poses = np.zeros((N, 72))
        trans = np.zeros((N, 3))
        betas = None
        state = None
        start = 0
        while start < N:
            stop.check()
            end = min(N, start + cfg.window)
            sl = slice(start, end)
            init = None
            if state is not None:  # carry the overlap over from the previous window
                g6, bd, tr, be, of = state
                keep = cfg.overlap
                n = end - start
                g6n = torch.cat([g6[-keep:], g6[-1:].expand(n - keep, 6)])
                bdn = torch.cat([bd[-keep:], bd[-1:].expand(n - keep, 23, 3)])
                trn = torch.cat([tr[-keep:], tr[-1:].expand(n - keep, 3)])
                init = (g6n, bdn, trn, be, of)
            p, tr_, be_, state = fit_track(body, xy[sl], vis[sl], world[sl], observed[sl], K, box_size[sl],
                                           cfg, init)
            # In an overlap, the later window wins from the overlap's middle on.
            first = 0 if start == 0 else cfg.overlap // 2
            poses[start + first: end] = p[first:]
            trans[start + first: end] = tr_[first:]
            betas = be_
            done += end - start - (0 if start == 0 else cfg.overlap)
            progress.progress("fitting", min(done, total), total)
            if end == N:
                break
            start = end - cfg.overlap
        conf = np.where(observed, vis[:, [11, 12, 23, 24]].mean(1), 0.2).clip(0, 1)
        rows = TrackData(tid, list(ids), list(times), [b for b in boxes], list(conf), [None] * N)
        writer.write(rows, poses, trans, betas, conf)
