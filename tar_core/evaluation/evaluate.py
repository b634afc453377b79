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

from tar_core.errors import UsageError
from tar_core.evaluation.metrics import accel_error, mpjpe, pa_mpjpe, pve
from tar_core.geometry.rotations import matrix_to_axis_angle
from tar_core.synthetic.groundtruth import CLIP_FPS

__all__ = ["H36M_TO_LSP14", "MANNEQUIN_LSP14", "evaluate", "evaluate_keypoints", "summarize"]

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


def _regressor14(body, h36m_regressor: str | None):
    """(function (verts, joints) -> (N, 14, 3), joint-set name)."""
    if h36m_regressor:
        R = np.load(h36m_regressor, allow_pickle=False)  # (17, V)
        if R.shape != (17, body.data.num_vertices):
            raise UsageError(f"{h36m_regressor}: expected (17, {body.data.num_vertices}), got {R.shape}")

        def regressor14(verts, joints):
            return np.einsum("jv,nvc->njc", R, verts)[:, H36M_TO_LSP14]

        return regressor14, "h36m-lsp14"

    def own14(verts, joints):
        return joints[:, MANNEQUIN_LSP14]

    return own14, f"{body.kind}-lsp14"


def _clips(data: list[str | Path]) -> list[Path]:
    clips = sorted(p for d in data for p in Path(d).glob("clip_*.npz"))
    if not clips:
        raise UsageError(f"no clip_*.npz in {', '.join(map(str, data))}")
    return clips


def _sequence(body, regressor14, pred_poses, pred_betas, clip: dict, rows=None) -> dict:
    """Metric inputs of one clip; ``rows``: the clip frames the predictions are for (default: all)."""
    F = len(clip["poses"])
    rows = np.arange(F) if rows is None else np.asarray(rows)
    pj, pv = _mesh_and_joints(body, pred_poses, pred_betas, regressor14)
    gj, gv = _mesh_and_joints(body, clip["poses"][rows], np.tile(clip["betas"], (len(rows), 1)), regressor14)
    return {"pred_joints": pj, "gt_joints": gj, "pred_verts": pv, "gt_verts": gv}


def evaluate(checkpoint: str | Path, data: list[str | Path], body=None, h36m_regressor: str | None = None,
             batch_windows: int = 8, progress=None, smooth_hz: float | None = None) -> dict:
    """Predict every frame of every clip in ``data`` with ``checkpoint``; the protocol's metrics. ``smooth_hz``:
    also the metrics of the motion low-passed as capture writes it (``smoothed``)."""
    from tar_core.body_model import load_body_model
    from tar_core.capture.engines.tar import TarEngine, smooth_motion
    from tar_core.geometry.cropping import normalize
    from tar_core.network.checkpoints import load_checkpoint

    body = body or load_body_model()
    ck = load_checkpoint(checkpoint, body=body)
    engine = TarEngine(ck.model, "cpu", batch_windows=batch_windows)
    regressor14, joint_set = _regressor14(body, h36m_regressor)
    clips = _clips(data)
    sequences, start_sequences, smoothed = [], [], []
    for n, path in enumerate(clips, start=1):
        with np.load(path, allow_pickle=False) as z:
            clip = {k: z[k] for k in ("crops", "center", "box_size", "K", "poses", "betas")}
        F = len(clip["crops"])
        K = clip["K"]
        starts = _crop_starts(body, clip) if ck.config.rrm_init == "keypoints" else None
        results = {}
        for f in range(F):
            crop = normalize(clip["crops"][f: f + 1])[0]
            geom = (clip["center"][f], float(clip["box_size"][f]), float(K[0, 0]), K[:2, 2].copy())
            start = () if starts is None else ((starts.rotmat[f], starts.betas[f], starts.transl[f],
                                                bool(starts.valid[f])),)
            for r in engine.add([(n, f, crop, geom, *start)]):
                results[r.row] = r
        for r in engine.end_track(n):
            results[r.row] = r
        pred_poses = np.stack([results[f].poses for f in range(F)])
        pred_betas = np.stack([results[f].betas for f in range(F)])
        sequences.append(_sequence(body, regressor14, pred_poses, pred_betas, clip))
        if smooth_hz:
            trans = np.stack([results[f].trans for f in range(F)])
            poses_s = smooth_motion(pred_poses, trans, np.arange(F) / CLIP_FPS, smooth_hz)[0]
            smoothed.append(_sequence(body, regressor14, poses_s, pred_betas, clip))
        if starts is not None and starts.valid.any():  # the refiner's input alone, on the frames it covers
            rows = np.flatnonzero(starts.valid)
            start_sequences.append(_sequence(body, regressor14, matrix_to_axis_angle(starts.rotmat[rows]).reshape(
                len(rows), 72), starts.betas[rows], clip, rows=rows))
        if progress:
            progress(n, len(clips))
    out = summarize(sequences)
    if smooth_hz:
        out["smoothed"] = {**summarize(smoothed), "cutoff_hz": smooth_hz}
    if ck.config.rrm_init == "keypoints":
        out["keypoints_start"] = summarize(start_sequences) if start_sequences else None
    out.update({"engine": "tar", "checkpoint": str(checkpoint), "checkpoint_sha256": ck.sha256,
                "variant": ck.config.name, "provenance": ck.provenance, "joints": joint_set,
                "body_model": body.describe()})
    return out


def _crop_starts(body, clip: dict):
    """The keypoints engine's fit of a clip's crops (where a ``rrm_init="keypoints"`` model's RRM starts), made
    as training made it."""
    from tar_core.capture.engines.keypoints.starts import crop_sequence_starts
    from tar_core.util.stop import StopFlag

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return crop_sequence_starts(body, clip["crops"], clip["center"], clip["box_size"], clip["K"],
                                    np.arange(len(clip["crops"])) / CLIP_FPS, StopFlag())
    finally:
        torch.set_num_threads(threads)


def evaluate_keypoints(data: list[str | Path], body=None, h36m_regressor: str | None = None,
                       progress=None) -> dict:
    """The keypoints engine on the same clips: each ``clip_*.npz`` needs its full frames beside it as
    ``clip_*.mp4`` (``make-dataset --videos``), captured with the clip's focal length. Frames the engine
    leaves out (no person found) are not scored; ``coverage`` says which share of frames was scored."""
    import os
    import tempfile

    from tar_core.body_model import load_body_model
    from tar_core.capture.pipeline import CaptureOptions, capture
    from tar_core.errors import NoPersonError, VideoError
    from tar_core.motion_file import read_motion
    from tar_core.util.progress import Progress

    body = body or load_body_model()
    regressor14, joint_set = _regressor14(body, h36m_regressor)
    clips = _clips(data)
    sequences, frames_total, failed = [], 0, []
    with tempfile.TemporaryDirectory(prefix="tar-eval-kp-") as tmp, open(os.devnull, "w") as quiet:
        for n, path in enumerate(clips, start=1):
            video = path.with_suffix(".mp4")
            if not video.is_file():
                raise UsageError(f"{path.name} has no full-frame video beside it ({video.name}); "
                                 "render the set with make-dataset --videos")
            with np.load(path, allow_pickle=False) as z:
                clip = {k: z[k] for k in ("K", "poses", "betas")}
            frames_total += len(clip["poses"])
            out_dir = Path(tmp) / path.stem
            try:
                capture(CaptureOptions(clip=str(video), output=str(out_dir), engine="keypoints",
                                       body=body.data.source,  # fit the body the metrics use
                                       focal=float(clip["K"][0, 0]), max_people=1), Progress(stream=quiet))
            except (NoPersonError, VideoError) as exc:
                failed.append(f"{path.name}: {exc}")
                continue
            people = sorted(out_dir.glob("person_*.npz"))
            if not people:
                failed.append(f"{path.name}: no person")
                continue
            m = read_motion(people[0])
            keep = m.frame_ids < len(clip["poses"])
            sequences.append(_sequence(body, regressor14, m.poses[keep], np.tile(m.betas, (int(keep.sum()), 1)),
                                       clip, rows=m.frame_ids[keep]))
            if progress:
                progress(n, len(clips))
    if not sequences:
        raise NoPersonError("the keypoints engine found nobody in any clip: " + "; ".join(failed))
    out = summarize(sequences)
    out.update({"engine": "keypoints", "joints": joint_set, "body_model": body.describe(),
                "coverage": out["frames"] / frames_total, "failed": failed})
    return out


def write_json(result: dict, path: str | Path) -> None:
    from tar_core.util.atomic import atomic_path

    with atomic_path(path, suffix=".json") as tmp, open(tmp, "w") as fh:
        json.dump(result, fh, indent=2)
