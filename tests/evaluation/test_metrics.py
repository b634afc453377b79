"""Metrics of the TCMR/GLoT protocol on (N, 14, 3) LSP joints in metres, values in mm."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from tar_core.evaluation.metrics import accel_error, mpjpe, pa_mpjpe, pve


@pytest.fixture()
def joints():
    return np.random.default_rng(0).normal(0, 0.3, (6, 14, 3))


def test_mpjpe_subtracts_the_mid_hip_and_reports_mm(joints):
    shifted = joints + np.array([1.0, -2.0, 3.0])
    np.testing.assert_allclose(mpjpe(shifted, joints), 0.0, atol=1e-9)
    assert mpjpe(shifted, joints, align=False) == pytest.approx(np.full(6, 1000 * np.sqrt(14)))
    moved = joints.copy()
    moved[:, 0] += [0.01, 0, 0]  # one non-hip joint 10 mm off
    np.testing.assert_allclose(mpjpe(moved, joints), 10.0 / 14)
    hip = joints.copy()
    hip[:, 2] += [0.014, 0, 0]  # a hip moves: the mid-hip moves by 7 mm, so 13 joints are 7 mm off
    np.testing.assert_allclose(mpjpe(hip, joints), (13 * 7.0 + 7.0) / 14)


def test_pa_mpjpe_removes_similarity_but_not_reflection(joints):
    R = Rotation.from_euler("xyz", [0.3, -1.0, 2.0]).as_matrix()
    sim = 1.7 * joints @ R.T + np.array([0.5, 0.1, -4.0])
    np.testing.assert_allclose(pa_mpjpe(sim, joints), 0.0, atol=1e-7)
    mirrored = joints * np.array([-1.0, 1.0, 1.0])
    assert (pa_mpjpe(mirrored, joints) > 1.0).all()  # a reflection is not an allowed alignment
    noisy = joints + np.random.default_rng(1).normal(0, 0.01, joints.shape)
    assert (pa_mpjpe(noisy, joints) <= mpjpe(noisy, joints) + 1e-9).all()


def test_pve_has_no_alignment():
    v = np.zeros((2, 100, 3))
    np.testing.assert_allclose(pve(v + [0, 0, 0.02], v), [20.0, 20.0])


def test_accel_error_interior_frames_root_aligned(joints):
    t = np.arange(10)[:, None, None]
    base = np.random.default_rng(2).normal(0, 0.3, (1, 14, 3))
    gt = base + 0.01 * t  # constant velocity: zero acceleration
    assert accel_error(gt + 5.0 * t**2 * np.array([1, 0, 0]), gt).shape == (8,)
    np.testing.assert_allclose(accel_error(gt + 5.0 * t**2 * np.array([1, 0, 0]), gt), 0.0, atol=1e-9)  # root
    pred = gt.copy()
    pred[4, 0] += [0.003, 0, 0]  # one joint jumps 3 mm in frame 4
    err = accel_error(pred, gt)
    np.testing.assert_allclose(err[[2, 3, 4]], [3 / 14, 6 / 14, 3 / 14])  # |a| 3, 6, 3 mm around it
    np.testing.assert_allclose(err[[0, 1, 5, 6, 7]], 0.0, atol=1e-9)


def test_summary_is_frame_weighted_over_sequences():
    from tar_core.evaluation.evaluate import summarize

    rng = np.random.default_rng(3)
    a = rng.normal(0, 0.3, (4, 14, 3))
    b = rng.normal(0, 0.3, (8, 14, 3))
    v = np.zeros((4, 10, 3))
    seqs = [
        {"pred_joints": a, "gt_joints": a, "pred_verts": v, "gt_verts": v},  # perfect: 4 frames of 0
        {"pred_joints": b + [0, 0, 0.01] * (np.arange(14) == 0)[None, :, None], "gt_joints": b,
         "pred_verts": np.zeros((8, 10, 3)) + 0.002, "gt_verts": np.zeros((8, 10, 3))},
    ]
    out = summarize(seqs)
    assert out["frames"] == 12 and out["sequences"] == 2
    assert out["mpjpe"] == pytest.approx(8 * (10 / 14) / 12)  # frame-weighted, not sequence-weighted
    assert out["pve"] == pytest.approx(8 * 2 * np.sqrt(3) / 12)
    assert out["accel"] == pytest.approx(0.0, abs=1e-9)  # a constant offset has no acceleration
