"""``align_track``: a network's estimate of a tracked person pulled onto the person's landmarks by the keypoints
engine's refinement (synthetic landmarks made with the body model: exact truth)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from tar_core.body_model import load_body_model
from tar_core.capture.detection import Landmarks
from tar_core.capture.engines.keypoints import FitConfig
from tar_core.capture.engines.keypoints.align import align_track, body_facing, bridged, flip_verdict, fused_rotations
from tar_core.capture.engines.keypoints.flips import flip_landmarks
from tar_core.capture.tracks import TrackData
from tar_core.geometry import camera as cam
from tar_core.geometry.rotations import axis_angle_to_matrix, matrix_to_axis_angle
from tar_core.util.stop import StopFlag
from tests.capture.test_keypoints_v2 import H, W, posed, track, upright

N = 20
K = cam.intrinsics(800.0, (W / 2, H / 2))


@pytest.fixture(scope="module")
def body():
    return load_body_model()


def _truth(n: int = N):
    poses = upright(n)
    s = np.sin(np.linspace(0, 2 * np.pi, n))
    poses[:, 3 * 16 + 2], poses[:, 3 * 17 + 2] = 0.9 + 0.3 * s, -0.9 + 0.3 * s  # arms half raised, swinging
    poses[:, 3 * 18 + 1], poses[:, 3 * 19 + 1] = -0.8, 0.8  # elbows bent
    poses[:, 3 * 4], poses[:, 3 * 5] = 0.4 + 0.3 * s, 0.4 - 0.3 * s  # knees
    trans = np.tile([0.0, 0.2, 3.5], (n, 1))
    return poses, trans


def _track_data(a) -> TrackData:
    """The TrackData a capture would hold for these landmark arrays."""
    lms = [Landmarks(image_xy=a.xy[k], visibility=a.vis[k], world=a.world[k]) for k in range(len(a))]
    return TrackData(0, list(map(int, a.ids)), list(map(float, a.times)), list(a.boxes), [0.9] * len(a), lms)


def _times(a) -> dict:
    return {int(i): float(s) for i, s in zip(a.ids, a.times, strict=True)}


def _joints_2d(body, poses, trans) -> np.ndarray:
    return cam.project(posed(body, poses, trans)[:, :24], K)


def test_an_estimate_off_in_the_image_is_pulled_onto_the_landmarks(body):
    poses, trans = _truth()
    a = track(body, poses, trans)
    off = poses.copy()
    off[:, 3 * 16 + 2] += 0.35  # left shoulder 20 degrees off, in the image plane
    off[:, 3 * 20 + 1] -= 0.5  # left wrist
    R = axis_angle_to_matrix(off.reshape(N, 24, 3))
    t = trans + [0.06, -0.04, 0.0]
    fit = align_track(body, _track_data(a), _times(a), K, R, t,
                      np.zeros(10), StopFlag())
    truth_2d = _joints_2d(body, poses, trans)
    before = np.linalg.norm(_joints_2d(body, off, t) - truth_2d, axis=-1)
    after = np.linalg.norm(_joints_2d(body, fit.poses_raw, fit.trans_raw) - truth_2d, axis=-1)
    assert before.mean() > 10 and after.mean() < 2.0, (before.mean(), after.mean())
    assert after[:, [18, 20]].mean() < 3.0  # the left elbow and wrist are where the image shows them
    assert fit.poses.shape == (N, 72) and fit.contacts.shape == (N, 4) and fit.ground.shape == (4,)


def test_an_estimate_on_the_landmarks_keeps_its_depth(body):
    """Where the image does not decide (an elbow bent towards or away from the camera projects alike), the
    aligned pose keeps the estimate's reading."""
    poses, trans = _truth()
    poses[:, 3 * 18 + 1], poses[:, 3 * 18 + 2] = 0.0, 0.0
    poses[:, 3 * 18] = -0.9  # the left elbow bent towards the camera
    a = track(body, poses, trans)
    R = axis_angle_to_matrix(poses.reshape(N, 24, 3))
    fit = align_track(body, _track_data(a), _times(a), K, R, trans,
                      np.zeros(10), StopFlag())
    got = posed(body, fit.poses_raw, fit.trans_raw)[:, :24]
    want = posed(body, poses, trans)[:, :24]
    assert np.linalg.norm(got - want, axis=-1)[:, [18, 20]].mean() < 0.02  # metres


def test_one_estimate_per_track_row(body):
    poses, trans = _truth(6)
    a = track(body, poses, trans)
    R = axis_angle_to_matrix(torch.zeros(5, 24, 3)).numpy()
    with pytest.raises(ValueError, match="one estimate per track row"):
        align_track(body, _track_data(a), {}, K, R, trans[:5], np.zeros(10), StopFlag())


def test_fused_rotations_go_part_way_to_the_fit_per_joint():
    rng = np.random.default_rng(0)
    R_net = axis_angle_to_matrix(rng.normal(0, 0.5, (4, 24, 3)))
    axis = np.array([0.0, 0.6, 0.8])
    R_fit = R_net @ axis_angle_to_matrix(np.tile(np.radians(60) * axis, (4, 24, 1)))  # 60 degrees apart
    valid = np.array([True, True, True, False])
    half = fused_rotations(R_net, R_fit, valid, 0.5)
    step = matrix_to_axis_angle(np.swapaxes(R_net, -1, -2) @ half)  # (4, 24, 3)
    np.testing.assert_allclose(step[:3], np.tile(np.radians(30) * axis, (3, 24, 1)), atol=1e-9)
    np.testing.assert_allclose(half[3], R_net[3])  # a frame the fit does not cover keeps the network's
    np.testing.assert_allclose(fused_rotations(R_net, R_fit, valid, 1.0)[:3], R_fit[:3], atol=1e-9)
    np.testing.assert_allclose(fused_rotations(R_net, R_fit, valid, 0.0), R_net)



def test_a_long_misreading_is_decided_by_the_estimates_facing(body):
    """MediaPipe reads the body facing away from row 10 on; the keypoints fit, outvoted by those rows, takes the
    first ten rows the wrong way instead. The network's facing overturns that, and its own short flip (rows 20-23)
    is bridged from its other rows; aligned, the body faces the camera throughout, its limbs on the image."""
    n, rows = 40, list(range(10, 40))
    poses, trans = _truth(n)
    a = track(body, poses, trans, noise_px=1.0, noise_m=0.01, seed=3)
    a = replace(a, **dict(zip(("xy", "vis", "world"), (x.copy() for x in (a.xy, a.vis, a.world)), strict=True)))
    a.xy[rows], a.vis[rows], a.world[rows] = flip_landmarks(a.xy[rows], a.vis[rows], a.world[rows])
    R_net = axis_angle_to_matrix(poses.reshape(n, 24, 3))
    R_net[20:24, 0] = axis_angle_to_matrix(np.array([0.0, np.pi, 0.0])) @ R_net[20:24, 0]  # the network turned round
    face = body_facing(R_net)
    verdict = flip_verdict(_track_data(a), _times(a), face)
    assert verdict.overturned.all()  # the fit read rows 0-9 flipped, the verdict rows 10-39
    assert np.flatnonzero(verdict.against).tolist() == [20, 21, 22, 23]
    R, t = bridged(R_net, trans, ~verdict.against)
    assert np.degrees(np.linalg.norm(matrix_to_axis_angle(np.swapaxes(R[:, 0], -1, -2) @ R_net[:, 0]), axis=-1))[
        [19, 24]].max() < 1e-6  # kept rows unchanged
    fit = align_track(body, _track_data(a), _times(a), K, R, t, np.zeros(10), StopFlag(), facing=face)
    err = np.degrees(np.linalg.norm(matrix_to_axis_angle(
        np.swapaxes(axis_angle_to_matrix(fit.poses_raw[:, :3]), -1, -2) @ R_net[:, 0][[0] * n]), axis=-1))
    assert err.max() < 15, err  # faces the camera on every row (the truth's root is the same on every row)
    e2d = np.linalg.norm(_joints_2d(body, fit.poses_raw, fit.trans_raw) - _joints_2d(body, poses, trans), axis=-1)
    assert e2d.mean() < 3.0, e2d.mean()


def test_bridged_rows_are_interpolated_between_the_kept_ones():
    aa = np.zeros((6, 24, 3))
    aa[:, 0, 1] = np.radians([0, 10, 170, 170, 40, 50])  # rows 2-3 turned round
    t = np.arange(18, dtype=float).reshape(6, 3)
    t[2:4] = 99.0
    keep = np.array([True, True, False, False, True, True])
    R, tb = bridged(axis_angle_to_matrix(aa), t, keep)
    yaw = np.degrees(matrix_to_axis_angle(R[:, 0])[:, 1])
    np.testing.assert_allclose(yaw, [0, 10, 20, 30, 40, 50], atol=0.5)  # elementwise, projected back
    np.testing.assert_allclose(tb, np.arange(18, dtype=float).reshape(6, 3))
    R_all, _ = bridged(axis_angle_to_matrix(aa), t, np.zeros(6, bool))
    np.testing.assert_allclose(R_all, axis_angle_to_matrix(aa))  # nothing to bridge from: unchanged


def test_the_landmarks_noise_stays_out_of_a_steady_estimate(body):
    """A steady estimate, its left shoulder 15 degrees off, aligned to landmarks with 3 px of noise: with
    ``correction_hz`` the shoulder still comes onto the image, and the arm's frame-to-frame jitter is well below
    that of the solution low-passed as one."""
    n = 60
    poses, trans = _truth(n)
    a = track(body, poses, trans, noise_px=3.0, seed=5)
    off = poses.copy()
    off[:, 3 * 16 + 2] += 0.26
    R = axis_angle_to_matrix(off.reshape(n, 24, 3))
    arm = [16, 18, 20]
    truth = posed(body, poses, trans)[:, :24]

    def aligned(correction_hz):
        cfg = FitConfig(correction_hz=correction_hz, pin_feet=False)
        fit = align_track(body, _track_data(a), _times(a), K, R, trans, np.zeros(10), StopFlag(), cfg=cfg)
        got = posed(body, fit.poses, fit.trans)[:, :24]
        e = got[:, arm] - truth[:, arm]  # (n, 3, 3)
        jitter = 1000 * np.linalg.norm(e[2:] - 2 * e[1:-1] + e[:-2], axis=-1).mean()  # mm/frame^2
        e2d = np.linalg.norm(cam.project(got, K)[:, arm] - cam.project(truth, K)[:, arm], axis=-1).mean()
        return jitter, e2d

    (j_plain, e_plain), (j_comp, e_comp) = aligned(None), aligned(2.5)
    assert j_comp < 0.75 * j_plain, (j_comp, j_plain)
    assert e_comp < 3.0 and e_comp < e_plain + 0.5, (e_comp, e_plain)  # the 15 degrees are gone still
