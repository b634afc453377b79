"""Evaluation metrics of the TCMR/GLoT protocol (the one behind the paper's tables), in mm.

Inputs are joint arrays (N, J, 3) in metres; by default the 14 LSP joints, whose hips are indices
2 and 3 (``HIPS``). Each function returns per-frame values (per interior frame for ACCEL).
"""

from __future__ import annotations

import numpy as np

__all__ = ["HIPS", "accel_error", "mpjpe", "pa_mpjpe", "procrustes_align", "pve"]

HIPS = (2, 3)  # LSP order: right hip, left hip


def _root_align(x: np.ndarray, hips) -> np.ndarray:
    return x - x[:, list(hips)].mean(1, keepdims=True)


def mpjpe(pred: np.ndarray, gt: np.ndarray, hips=HIPS, align: bool = True) -> np.ndarray:
    """(N,) mean joint distance after subtracting each side's mid-hip (``align=False``: raw)."""
    pred, gt = np.asarray(pred, np.float64), np.asarray(gt, np.float64)
    if align:
        pred, gt = _root_align(pred, hips), _root_align(gt, hips)
    return 1000.0 * np.linalg.norm(pred - gt, axis=-1).mean(-1)


def procrustes_align(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Similarity-align each frame of pred (N, J, 3) to gt: rotation (no reflection), scale, translation."""
    pred, gt = np.asarray(pred, np.float64), np.asarray(gt, np.float64)
    mp, mg = pred.mean(1, keepdims=True), gt.mean(1, keepdims=True)
    p, g = pred - mp, gt - mg
    M = np.einsum("nji,njk->nik", p, g)  # (N, 3, 3) cross-covariance
    U, S, Vt = np.linalg.svd(M)
    d = np.sign(np.linalg.det(U @ Vt))  # reflection fix: flip the weakest axis if needed
    D = np.ones((len(p), 3))
    D[:, 2] = d
    R = np.einsum("nij,nj,njk->nik", U, D, Vt)  # p @ R ~ g
    scale = (S * D).sum(1) / (p**2).sum((1, 2))
    return scale[:, None, None] * p @ R + mg


def pa_mpjpe(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """(N,) MPJPE after per-frame Procrustes (similarity) alignment with the reflection fix."""
    return mpjpe(procrustes_align(pred, gt), gt, align=False)


def pve(pred_verts: np.ndarray, gt_verts: np.ndarray) -> np.ndarray:
    """(N,) mean vertex distance, no translation removal or alignment (as the protocol states)."""
    return 1000.0 * np.linalg.norm(np.asarray(pred_verts, np.float64) - np.asarray(gt_verts, np.float64),
                                   axis=-1).mean(-1)


def accel_error(pred: np.ndarray, gt: np.ndarray, hips=HIPS, align: bool = True) -> np.ndarray:
    """(N-2,) per interior frame: mean over joints of |a_pred - a_gt|, a = x[t-1] - 2x[t] + x[t+1],
    on root-aligned joints, mm/frame^2 (no fps factor)."""
    pred, gt = np.asarray(pred, np.float64), np.asarray(gt, np.float64)
    if align:
        pred, gt = _root_align(pred, hips), _root_align(gt, hips)

    def acc(x):
        return x[:-2] - 2 * x[1:-1] + x[2:]

    return 1000.0 * np.linalg.norm(acc(pred) - acc(gt), axis=-1).mean(-1)
