"""``evaluate``: the TCMR/GLoT protocol (the one behind the paper's tables) on a dataset of clips.

Every frame of every sequence is predicted (windows padded at the clip ends by repetition, the
backbone once per frame, exactly as in capture). 14 evaluation joints in LSP order: with a real
SMPL body and a user-provided H36M regressor (``--h36m-regressor``, 17 x V) the standard 14 from it;
otherwise the body model's own joints (``MANNEQUIN_LSP14`` below; the head top is the SMPL head
joint, which lies lower than LSP's head top). MPJPE (mid-hip aligned), PA-MPJPE (similarity, with
the reflection fix), PVE (meshes without translation, no alignment), ACCEL (per interior frame of
each sequence), all in mm and averaged over all frames of all sequences.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from .metrics import accel_error, mpjpe, pa_mpjpe, pve

__all__ = ["H36M_TO_LSP14", "MANNEQUIN_LSP14", "evaluate", "summarize"]

# LSP order: r_ankle, r_knee, r_hip, l_hip, l_knee, l_ankle, r_wrist, r_elbow, r_shoulder, l_shoulder,
# l_elbow, l_wrist, neck, head (top).
MANNEQUIN_LSP14 = [8, 5, 2, 1, 4, 7, 21, 19, 17, 16, 18, 20, 12, 15]  # indices into the 24 SMPL joints
H36M_TO_LSP14 = [3, 2, 1, 4, 5, 6, 16, 15, 14, 11, 12, 13, 8, 10]  # indices into H36M's 17 joints


def summarize(sequences: list[dict]) -> dict:
    """sequences: dicts with pred/gt joints (N, 14, 3) and pred/gt verts (N, V, 3), metres.
    Returns frame-weighted means in mm over all frames (interior frames for ACCEL)."""
    per = {"mpjpe": [], "pa_mpjpe": [], "pve": [], "accel": []}
    for s in sequences:
        per["mpjpe"].append(mpjpe(s["pred_joints"], s["gt_joints"]))
        per["pa_mpjpe"].append(pa_mpjpe(s["pred_joints"], s["gt_joints"]))
        per["pve"].append(pve(s["pred_verts"], s["gt_verts"]))
        if len(s["gt_joints"]) >= 3:
            per["accel"].append(accel_error(s["pred_joints"], s["gt_joints"]))
    out = {k: float(np.concatenate(v).mean()) if v else float("nan") for k, v in per.items()}
    out["frames"] = int(sum(len(s["gt_joints"]) for s in sequences))
    out["sequences"] = len(sequences)
    return out


@torch.no_grad()
def _mesh_and_joints(body, poses: np.ndarray, betas: np.ndarray, regressor14):
    p = torch.as_tensor(poses, dtype=torch.float32)
    b = torch.as_tensor(betas, dtype=torch.float32)
    out = body(p[:, :3], p[:, 3:], b, None)  # no translation (PVE and the aligned metrics)
    verts = out.vertices.numpy()
    joints = regressor14(verts, out.joints.numpy())
    return joints, verts


def evaluate(checkpoint: str | Path, data: list[str | Path], body=None, h36m_regressor: str | None = None,
             batch_windows: int = 8, progress=None) -> dict:
    """Predict every frame of every clip in ``data`` with ``checkpoint``; the protocol's metrics."""
    from .body_model import load_body_model
    from .checkpoints import load_checkpoint
    from .cropping import normalize
    from .engines.tar import TarEngine

    body = body or load_body_model()
    ck = load_checkpoint(checkpoint, body=body)
    engine = TarEngine(ck.model, "cpu", batch_windows=batch_windows)
    if h36m_regressor:
        R = np.load(h36m_regressor, allow_pickle=False)  # (17, V)
        if R.shape != (17, body.data.num_vertices):
            raise ValueError(f"{h36m_regressor}: expected (17, {body.data.num_vertices}), got {R.shape}")

        def regressor14(verts, joints):
            return np.einsum("jv,nvc->njc", R, verts)[:, H36M_TO_LSP14]

        joint_set = "h36m-lsp14"
    else:
        def regressor14(verts, joints):
            return joints[:, MANNEQUIN_LSP14]

        joint_set = f"{body.kind}-lsp14"
    clips = sorted(p for d in data for p in Path(d).glob("clip_*.npz"))
    if not clips:
        raise ValueError(f"no clip_*.npz in {', '.join(map(str, data))}")
    sequences = []
    for n, path in enumerate(clips, start=1):
        with np.load(path, allow_pickle=False) as z:
            clip = {k: z[k] for k in ("crops", "center", "box_size", "K", "poses", "betas")}
        F = len(clip["crops"])
        K = clip["K"]
        results = {}
        for f in range(F):
            crop = normalize(clip["crops"][f: f + 1])[0]
            geom = (clip["center"][f], float(clip["box_size"][f]), float(K[0, 0]), K[:2, 2].copy())
            for r in engine.add([(n, f, crop, geom)]):
                results[r.row] = r
        for r in engine.end_track(n):
            results[r.row] = r
        pred_poses = np.stack([results[f].poses for f in range(F)])
        pred_betas = np.stack([results[f].betas for f in range(F)])
        pj, pv = _mesh_and_joints(body, pred_poses, pred_betas, regressor14)
        gj, gv = _mesh_and_joints(body, clip["poses"], np.tile(clip["betas"], (F, 1)), regressor14)
        sequences.append({"pred_joints": pj, "gt_joints": gj, "pred_verts": pv, "gt_verts": gv})
        if progress:
            progress(n, len(clips))
    out = summarize(sequences)
    out.update({"checkpoint": str(checkpoint), "checkpoint_sha256": ck.sha256, "variant": ck.config.name,
                "provenance": ck.provenance, "joints": joint_set, "body_model": body.describe()})
    return out


def write_json(result: dict, path: str | Path) -> None:
    from .atomic import atomic_path

    with atomic_path(path, suffix=".json") as tmp, open(tmp, "w") as fh:
        json.dump(result, fh, indent=2)
