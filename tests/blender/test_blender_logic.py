"""Tests for the Blender add-on's pure logic (tar_blender.logic): numpy only, no bpy.

Expectations are computed here independently of the code under test: rotations against scipy,
the key arrays by a forward kinematics of the armature written in this file and compared with the
engine's exact ``joints_cam``, the camera by Blender's own view-plane equations
(``BKE_camera_params_compute_viewplane``), the engine runner against fake engines. tar_core is
used only to make inputs (motion files, ground truth).
"""

from __future__ import annotations

import ast
import dataclasses
import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from tar_blender.logic.camera import CAMERA_EULER, CV_TO_WORLD, camera_settings
from tar_blender.logic.engine import EngineRun, capture_command, parse_event
from tar_blender.logic.keys import key_frames, motion_curves
from tar_blender.logic.motion import MotionData, MotionError, read_motion
from tar_blender.logic.rotations import (
    axis_angle_to_quaternion,
    continuous_quaternions,
    matrix_to_quaternion,
    quaternion_to_matrix,
)
from tar_blender.logic.skeleton import JOINT_NAMES, PARENTS, load_body_arrays

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "data" / "sample" / "sample_walk.npz"
RX90 = Rotation.from_euler("x", 90, degrees=True).as_matrix()  # the armature object's rotation


def _wxyz(q_xyzw: np.ndarray) -> np.ndarray:
    return np.concatenate([q_xyzw[..., 3:], q_xyzw[..., :3]], axis=-1)


def _assert_same_rotation_quat(q: np.ndarray, ref: np.ndarray, atol: float) -> None:
    """q equals ref or -ref, row by row."""
    err = np.minimum(np.abs(q - ref).max(-1), np.abs(q + ref).max(-1))
    assert err.max() < atol, err.max()


# --------------------------------------------------------------------------------------------
# 1. rotations
# --------------------------------------------------------------------------------------------


def _random_rotvecs(rng, n, max_angle=math.pi):
    axis = rng.normal(size=(n, 3))
    axis /= np.linalg.norm(axis, axis=1, keepdims=True)
    return axis * rng.uniform(0, max_angle, (n, 1))


def test_axis_angle_to_quaternion_matches_scipy():
    rng = np.random.default_rng(0)
    aa = np.concatenate([
        _random_rotvecs(rng, 500, 3 * math.pi),  # beyond pi too (q and -q, both fine)
        np.zeros((1, 3)),
        [[math.pi, 0, 0], [0, -math.pi, 0], [0, 0, math.pi - 1e-9]],
        _random_rotvecs(rng, 20, 1e-6),
    ])  # fmt: skip
    q = axis_angle_to_quaternion(aa)
    assert q.shape == (len(aa), 4) and q.dtype == np.float64
    np.testing.assert_allclose(np.linalg.norm(q, axis=-1), 1.0, atol=1e-14)
    _assert_same_rotation_quat(q, _wxyz(Rotation.from_rotvec(aa).as_quat()), 1e-12)
    np.testing.assert_array_equal(axis_angle_to_quaternion(np.zeros(3)), [1.0, 0.0, 0.0, 0.0])


@pytest.mark.parametrize("angle", [0.0, 1e-14, 1e-10, 0.99e-8, 1.01e-8, 1e-7, 1e-4])
def test_axis_angle_to_quaternion_tiny_angles(angle):
    axis = np.array([0.48, -0.6, 0.64])  # unit
    aa = axis * angle
    q = axis_angle_to_quaternion(aa)
    expect = np.concatenate([[math.cos(angle / 2)], axis * math.sin(angle / 2)])
    np.testing.assert_allclose(q, expect, rtol=1e-12, atol=1e-300)  # relative even for the tiny vector part
    assert np.all(np.isfinite(q))
    _assert_same_rotation_quat(q[None], _wxyz(Rotation.from_rotvec(aa[None]).as_quat()), 1e-15)


def test_axis_angle_to_quaternion_batches_leading_dims():
    rng = np.random.default_rng(1)
    aa = _random_rotvecs(rng, 5 * 24).reshape(5, 24, 3)
    q = axis_angle_to_quaternion(aa)
    assert q.shape == (5, 24, 4)
    np.testing.assert_allclose(q.reshape(-1, 4), axis_angle_to_quaternion(aa.reshape(-1, 3)), atol=0)


def test_quaternion_to_matrix_matches_scipy_and_normalises():
    rng = np.random.default_rng(2)
    rots = Rotation.random(300, random_state=3)
    q = _wxyz(rots.as_quat())
    np.testing.assert_allclose(quaternion_to_matrix(q), rots.as_matrix(), atol=1e-14)
    np.testing.assert_allclose(quaternion_to_matrix(-q), rots.as_matrix(), atol=1e-14)
    scaled = q * rng.uniform(0.1, 10.0, (300, 1))
    np.testing.assert_allclose(quaternion_to_matrix(scaled), rots.as_matrix(), atol=1e-13)
    assert quaternion_to_matrix(q.reshape(3, 100, 4)).shape == (3, 100, 3, 3)


def test_matrix_to_quaternion_round_trips_with_w_non_negative():
    rots = Rotation.random(1000, random_state=4)
    R = rots.as_matrix()
    q = matrix_to_quaternion(R)
    assert np.all(q[:, 0] >= 0)
    np.testing.assert_allclose(np.linalg.norm(q, axis=-1), 1.0, atol=1e-14)
    ref = _wxyz(rots.as_quat())
    ref = np.where(ref[:, :1] < 0, -ref, ref)
    np.testing.assert_allclose(q, ref, atol=1e-12)
    np.testing.assert_allclose(quaternion_to_matrix(q), R, atol=1e-13)
    # batches over leading dimensions
    np.testing.assert_allclose(matrix_to_quaternion(R.reshape(10, 100, 3, 3)), q.reshape(10, 100, 4), atol=0)


def test_matrix_to_quaternion_at_and_near_180_degrees():
    rng = np.random.default_rng(5)
    axes = rng.normal(size=(200, 3))
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    axes[:3] = np.eye(3)  # the coordinate axes: the FLIP of the importer is 180 deg about X
    angles = np.concatenate([np.full(100, math.pi), math.pi - rng.uniform(0, 1e-6, 100)])
    R = Rotation.from_rotvec(axes * angles[:, None]).as_matrix()
    q = matrix_to_quaternion(R)
    assert np.all(q[:, 0] >= 0)
    np.testing.assert_allclose(np.linalg.norm(q, axis=-1), 1.0, atol=1e-14)
    np.testing.assert_allclose(quaternion_to_matrix(q), R, atol=1e-12)
    # the rotation axis is recovered (up to sign, which is free at exactly 180 deg)
    _assert_same_rotation_quat(q[:, 1:], axes * np.sin(angles[:, None] / 2), 1e-9)
    np.testing.assert_allclose(matrix_to_quaternion(np.diag([1.0, -1.0, -1.0])), [0, 1, 0, 0], atol=1e-15)
    np.testing.assert_allclose(matrix_to_quaternion(np.eye(3)), [1, 0, 0, 0], atol=1e-15)


def _smooth_sequence(rng, shape_tail=()):
    """A smooth random quaternion path (N, *tail, 4): small steps, crossing hemispheres freely."""
    n = 120
    start = _wxyz(Rotation.random(int(np.prod(shape_tail, dtype=int)), random_state=6).as_quat())
    omega = _random_rotvecs(rng, start.shape[0], 0.15)  # up to 0.15 rad per frame
    steps = Rotation.from_rotvec(np.einsum("t,jc->tjc", np.arange(n), omega).reshape(-1, 3))
    seq = (steps * Rotation.from_quat(np.tile(start[:, [1, 2, 3, 0]], (n, 1)))).as_quat()
    return _wxyz(seq).reshape((n, *shape_tail, 4))


def test_continuous_quaternions_removes_random_sign_flips():
    rng = np.random.default_rng(7)
    smooth = _smooth_sequence(rng, (1,))[:, 0]  # scipy's as_quat picks w >= 0: it has jumps of its own
    signs = rng.choice([-1.0, 1.0], size=(len(smooth), 1))
    noisy = smooth * signs
    before = noisy.copy()
    out = continuous_quaternions(noisy)
    np.testing.assert_array_equal(noisy, before)  # input untouched
    assert np.all(np.sum(out[1:] * out[:-1], axis=-1) >= 0)
    row_sign = np.sign(np.sum(out * noisy, axis=-1))
    assert set(np.unique(row_sign)) <= {-1.0, 1.0}
    np.testing.assert_array_equal(out, noisy * row_sign[:, None])  # +-input per row, exactly
    np.testing.assert_array_equal(out[0], noisy[0])  # the first row keeps its sign
    assert np.sum(np.sum(noisy[1:] * noisy[:-1], -1) < 0) > 10  # the test really had flips to remove
    np.testing.assert_array_equal(continuous_quaternions(-noisy[:1]), -noisy[:1])  # one row: unchanged


def test_continuous_quaternions_along_axis_with_extra_dims():
    rng = np.random.default_rng(8)
    smooth = _smooth_sequence(rng, (24,))  # (N, 24, 4)
    noisy = smooth * rng.choice([-1.0, 1.0], size=smooth.shape[:2] + (1,))
    out = continuous_quaternions(noisy)  # axis 0
    assert out.shape == noisy.shape
    assert np.all(np.sum(out[1:] * out[:-1], axis=-1) >= 0)
    row_sign = np.sign(np.sum(out * noisy, axis=-1, keepdims=True))
    np.testing.assert_array_equal(np.abs(row_sign), 1.0)
    np.testing.assert_array_equal(out, noisy * row_sign)
    # each joint is made continuous on its own: the same as one joint at a time
    for j in (0, 5, 23):
        np.testing.assert_array_equal(out[:, j], continuous_quaternions(noisy[:, j]))
    # time on another axis
    moved = continuous_quaternions(np.moveaxis(noisy, 0, 1), axis=1)
    np.testing.assert_array_equal(np.moveaxis(moved, 1, 0), out)


# --------------------------------------------------------------------------------------------
# 2. key arrays: exact in numpy
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mannequin():
    return load_body_arrays("mannequin")


@pytest.fixture(scope="module")
def sample_motion():
    return read_motion(SAMPLE)


def _ground_truth_turn():
    from tar_core.body_model import load_body_model
    from tar_core.synthetic.groundtruth import ClipSpec, make_ground_truth

    body = load_body_model()
    m = make_ground_truth(ClipSpec(motion="turn", frames=20), body).motion(body, {})
    return {"poses": m.poses, "trans": m.trans, "betas": m.betas, "joints_cam": m.joints_cam,
            "frame_times": m.frame_times, "fps": m.mocap_framerate}  # fmt: skip


SMPL_LIKE_OFFSET = np.array([0.01, -0.35, 0.06])  # real SMPL's rest pelvis is ~0.2-0.4 m off the origin


def _random_pose_body(offset=(0.0, 0.0, 0.0)):
    """Large random poses, root orientations near identity (the pelvis key then sits near 180 deg)
    and far from it, posed by the engine's body model in float64. ``offset`` moves the template so
    the rest pelvis lies away from the origin, as in SMPL (the mannequin's pelvis is at the origin)."""
    import torch

    from tar_core.body_model import BodyModel, load_body_model_data

    rng = np.random.default_rng(9)
    n = 16
    poses = _random_rotvecs(rng, n * 24, 2.5).reshape(n, 72)
    poses[:4, :3] = [[0, 0, 0], [1e-9, 0, 0], [0, 1e-3, 0], [math.pi, 0, 0]]
    trans = rng.normal(0, 1, (n, 3)) + [0, 0, 5]
    betas = rng.normal(0, 1, 10)
    data = load_body_model_data()
    data = dataclasses.replace(data, v_template=data.v_template + np.asarray(offset, dtype=np.float32))
    body = BodyModel(data, dtype=torch.float64)
    t = torch.from_numpy
    out = body(t(poses[:, :3]), t(poses[:, 3:]), t(np.tile(betas, (n, 1))), t(trans), full_mesh=False)
    return {"poses": poses, "trans": trans, "betas": betas, "joints_cam": out.joints.numpy(), "fps": 30.0,
            "frame_times": np.cumsum(rng.uniform(0.02, 0.06, n)), "offset": np.asarray(offset)}  # fmt: skip


@pytest.fixture(scope="module", params=["sample_walk", "ground_truth_turn", "random_poses", "pelvis_off_origin"])
def motion_case(request, sample_motion, mannequin):
    if request.param == "sample_walk":
        m = sample_motion
        case = {"poses": m.poses, "trans": m.trans, "betas": m.betas, "joints_cam": m.joints_cam,
                "frame_times": m.frame_times, "fps": m.fps}  # fmt: skip
    elif request.param == "ground_truth_turn":
        case = _ground_truth_turn()
    else:
        case = _random_pose_body(SMPL_LIKE_OFFSET if request.param == "pelvis_off_origin" else (0.0, 0.0, 0.0))
    body = mannequin
    if "offset" in case:  # the same template change on the add-on's side
        body = dataclasses.replace(mannequin, v_template=mannequin.v_template + case["offset"].astype(np.float32))
    case["rest"] = body.rest_joints(case["betas"])  # what the importer builds the bones from
    return case


def _curve_values(curves) -> dict:
    return {(c.data_path, c.index): c.co[1::2].astype(np.float64) for c in curves}


def _armature_heads(values: dict, rest: np.ndarray) -> np.ndarray:
    """(N, 24, 3) posed bone heads in armature space, as Blender evaluates this rig: bones at the
    rest joints with identity rest rotations; the pose bone's location is in its rest frame."""
    quats = np.stack([np.stack([values[(f'pose.bones["{name}"].rotation_quaternion', c)] for c in range(4)], -1)
                      for name in JOINT_NAMES], axis=1)  # (N, 24, 4)  # fmt: skip
    loc = np.stack([values[('pose.bones["pelvis"].location', c)] for c in range(3)], -1)  # (N, 3)
    R = quaternion_to_matrix(quats)  # normalises the float32 keys as Blender does
    n = len(loc)
    G_rot = np.empty((n, 24, 3, 3))
    heads = np.empty((n, 24, 3))
    G_rot[:, 0] = R[:, 0]
    heads[:, 0] = rest[0] + loc
    for j in range(1, 24):
        p = PARENTS[j]
        G_rot[:, j] = G_rot[:, p] @ R[:, j]
        heads[:, j] = heads[:, p] + G_rot[:, p] @ (rest[j] - rest[p])
    return heads


def test_key_arrays_reproduce_the_engine_joints_exactly(motion_case):
    c = motion_case
    rest = c["rest"]
    frames = key_frames(c["frame_times"], c["fps"], 1.0)
    curves = motion_curves(c["poses"], c["trans"], frames, rest[0])
    heads = _armature_heads(_curve_values(curves), rest)
    world = heads @ RX90.T  # the armature object's world matrix: +90 deg about X
    expect = np.asarray(c["joints_cam"], dtype=np.float64) @ CV_TO_WORLD.T
    err = np.linalg.norm(world - expect, axis=-1)
    assert err.max() < 1e-5, f"max joint error {err.max():.3g} m at {np.unravel_index(err.argmax(), err.shape)}"
    # the keys are continuous in time (no sign jumps for Blender's linear fcurve interpolation)
    values = _curve_values(curves)
    for name in JOINT_NAMES:
        q = np.stack([values[(f'pose.bones["{name}"].rotation_quaternion', i)] for i in range(4)], -1)
        assert np.all(np.sum(q[1:] * q[:-1], -1) >= 0), name


def test_curve_layout(sample_motion, mannequin):
    m = sample_motion
    rest = mannequin.rest_joints(m.betas)
    frames = key_frames(m.frame_times, m.fps, 1.0)
    curves = motion_curves(m.poses, m.trans, frames, rest[0])
    assert len(curves) == 24 * 4 + 3 == 99
    expect = [(f'pose.bones["{name}"].rotation_quaternion', i, name) for name in JOINT_NAMES for i in range(4)]
    expect += [('pose.bones["pelvis"].location', i, "pelvis") for i in range(3)]
    assert [(c.data_path, c.index, c.group) for c in curves] == expect
    assert {c.group for c in curves} == set(JOINT_NAMES)
    for c in curves:
        assert c.co.dtype == np.float32 and c.co.shape == (2 * m.num_frames,)
        np.testing.assert_array_equal(c.co[0::2], frames.astype(np.float32))
    # values: per bone, the local rotation quaternion of the pose (up to the continuity sign)
    values = _curve_values(curves)
    for j in (1, 7, 16, 23):
        q = np.stack([values[(expect[4 * j][0], i)] for i in range(4)], -1)
        ref = _wxyz(Rotation.from_rotvec(m.poses[:, 3 * j : 3 * j + 3]).as_quat())
        _assert_same_rotation_quat(q, ref, 1e-6)


@pytest.mark.parametrize("frame_start", [1.0, 0.0, 101.0])
def test_key_frames(frame_start):
    times = np.array([0.0, 1 / 24, 2.5 / 24, 0.5, 3.0])
    fps = 24.0
    frames = key_frames(times, fps, frame_start)
    assert frames.dtype == np.float64
    np.testing.assert_allclose(frames, frame_start + times * fps, rtol=0, atol=1e-12)
    np.testing.assert_allclose(frames[[0, 1, 2, 4]], frame_start + np.array([0.0, 1.0, 2.5, 72.0]), atol=1e-12)


def test_key_frames_of_the_sample_are_one_per_scene_frame(sample_motion):
    m = sample_motion
    frames = key_frames(m.frame_times, m.fps, 1.0)
    np.testing.assert_allclose(frames, 1.0 + np.arange(m.num_frames), atol=1e-9)
    assert key_frames(m.frame_times, m.fps).tolist() == frames.tolist()  # frame_start defaults to 1


# --------------------------------------------------------------------------------------------
# 3. camera
# --------------------------------------------------------------------------------------------


def _blender_project(world_pts, s: dict, cam_euler) -> np.ndarray:
    """OpenCV pixel coordinates of world points seen by a Blender camera at the origin.

    Blender (BKE_camera_params_compute_viewplane): pixsize = sensor / lens / viewfac with
    viewfac = winx for a horizontal fit, ycor = aspy / aspx; the view plane spans
    [-W/2, W/2] x [-ycor H/2, ycor H/2] (units of pixsize at unit depth), moved by
    (shift_x, shift_y) * viewfac. The render maps it onto the W x H image (y up), and pixel i's
    centre is at normalised (i + 0.5) / W, while OpenCV puts it at u = i.
    """
    assert s["sensor_fit"] == "HORIZONTAL"
    W, H = s["resolution"]
    aspx, aspy = s["pixel_aspect"]
    ycor = aspy / aspx
    viewfac = W
    pixsize = s["sensor_width"] / s["lens"] / viewfac  # at unit depth
    R_cam = Rotation.from_euler("xyz", cam_euler).as_matrix()  # Blender XYZ Euler: Rz Ry Rx
    local = world_pts @ R_cam  # camera-local coordinates, R_cam^T p
    depth = -local[..., 2]  # the camera looks down its -Z
    px = local[..., 0] / depth / pixsize  # image-plane position in view-plane units
    py = local[..., 1] / depth / pixsize
    xmin, xmax = -0.5 * W + s["shift_x"] * viewfac, 0.5 * W + s["shift_x"] * viewfac
    ymin, ymax = -0.5 * ycor * H + s["shift_y"] * viewfac, 0.5 * ycor * H + s["shift_y"] * viewfac
    x_ndc = (px - xmin) / (xmax - xmin)
    y_ndc = (py - ymin) / (ymax - ymin)
    return np.stack([x_ndc * W - 0.5, (1.0 - y_ndc) * H - 0.5], axis=-1)


def _cv_project(pts, K):
    p = pts @ K.T
    return p[..., :2] / p[..., 2:]


CAMERAS = [  # (fx, fy, cx, cy, W, H)
    (800.0, 800.0, 331.7, 228.2, 640, 480),  # off-centre principal point
    (1100.0, 850.0, 300.0, 260.5, 640, 480),  # fx > fy: pixel aspect
    (700.0, 910.0, 205.0, 330.0, 384, 640),  # fx < fy, portrait
    (480.0, 480.0, 191.5, 143.5, 384, 288),  # exactly centred (pixel-centre convention)
]


@pytest.mark.parametrize(("fx", "fy", "cx", "cy", "W", "H"), CAMERAS)
def test_camera_settings_formulas(fx, fy, cx, cy, W, H):
    K = np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1.0]])
    s = camera_settings(K, W, H)
    assert s["sensor_fit"] == "HORIZONTAL" and s["sensor_width"] == 36.0
    assert s["resolution"] == (W, H)
    assert s["lens"] == pytest.approx(fx * 36 / W, rel=1e-14)
    assert s["shift_x"] == pytest.approx(((W - 1) / 2 - cx) / W, abs=1e-15)
    assert s["shift_y"] == pytest.approx((cy - (H - 1) / 2) / W * fx / fy, abs=1e-15)
    aspx, aspy = s["pixel_aspect"]
    assert min(aspx, aspy) == 1.0 and aspy / aspx == pytest.approx(fx / fy, rel=1e-14)
    if (cx, cy) == ((W - 1) / 2, (H - 1) / 2):
        assert s["shift_x"] == 0 and s["shift_y"] == 0
    s50 = camera_settings(K, W, H, sensor_width=50.0)
    assert s50["lens"] == pytest.approx(fx * 50 / W) and s50["shift_x"] == s["shift_x"]


@pytest.mark.parametrize(("fx", "fy", "cx", "cy", "W", "H"), CAMERAS)
def test_blender_camera_reproduces_opencv_projection(fx, fy, cx, cy, W, H):
    K = np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1.0]])
    rng = np.random.default_rng(10)
    pts_cv = np.stack([rng.uniform(-2, 2, 500), rng.uniform(-2, 2, 500), rng.uniform(0.5, 20, 500)], -1)
    s = camera_settings(K, W, H)
    uv = _blender_project(pts_cv @ CV_TO_WORLD.T, s, CAMERA_EULER)
    np.testing.assert_allclose(uv, _cv_project(pts_cv, K), rtol=0, atol=1e-6)


def test_blender_camera_reproduces_the_sample_keypoints(sample_motion):
    m = sample_motion
    s = camera_settings(m.K, *m.image_size)
    uv = _blender_project(m.joints_cam @ CV_TO_WORLD.T, s, CAMERA_EULER)
    np.testing.assert_allclose(uv, m.joints_2d, rtol=0, atol=2e-3)  # the file holds float32 pixels


def test_camera_placement_conventions():
    assert np.allclose(CV_TO_WORLD @ CV_TO_WORLD.T, np.eye(3)) and np.linalg.det(CV_TO_WORLD) == pytest.approx(1)
    np.testing.assert_array_equal(CV_TO_WORLD @ [1.0, 2.0, 3.0], [1.0, 3.0, -2.0])  # (x, y, z) -> (x, z, -y)
    np.testing.assert_allclose(CV_TO_WORLD, Rotation.from_euler("x", -90, degrees=True).as_matrix(), atol=1e-15)
    R_cam = Rotation.from_euler("xyz", CAMERA_EULER).as_matrix()
    np.testing.assert_allclose(R_cam @ [0, 0, -1.0], [0, 1, 0], atol=1e-15)  # looks along +Y
    np.testing.assert_allclose(R_cam @ [0, 1.0, 0], [0, 0, 1], atol=1e-15)  # +Z up
    # the OpenCV forward / down axes land on the camera's view direction and its -up
    np.testing.assert_allclose(CV_TO_WORLD @ [0, 0, 1.0], R_cam @ [0, 0, -1.0], atol=1e-15)
    np.testing.assert_allclose(CV_TO_WORLD @ [0, 1.0, 0], -(R_cam @ [0, 1.0, 0]), atol=1e-15)


# --------------------------------------------------------------------------------------------
# 4. read_motion
# --------------------------------------------------------------------------------------------


def _engine_motion(n: int = 9):
    from tar_core.motion_file import Motion

    rng = np.random.default_rng(11)
    K = np.array([[700.0, 0, 320], [0, 700.0, 240], [0, 0, 1]])
    joints = rng.normal(0, 0.3, (n, 24, 3)) + [0, 0, 4.0]
    p = joints @ K.T
    return Motion(
        poses=rng.normal(0, 0.3, (n, 72)), trans=rng.normal(0, 1, (n, 3)), betas=rng.normal(0, 1, 10),
        frame_ids=np.arange(n) * 2, frame_times=np.arange(n) * 2 / 30.0, image_size=np.array([640, 480]),
        camera_intrinsics=K, bbox_xyxy=np.tile([10.0, 20.0, 200.0, 400.0], (n, 1)), joints_cam=joints,
        joints_2d=p[..., :2] / p[..., 2:], confidence=rng.uniform(0, 1, n), mocap_framerate=30.0,
        track_id=4, engine="keypoints", body_model="mannequin", gender="female",
        provenance=json.dumps({"engine_version": "test", "video_path": "/clips/a.mp4"}),
    )  # fmt: skip


def test_read_motion_round_trip(tmp_path):
    from tar_core.motion_file import write_motion

    path = write_motion(tmp_path / "person_4.npz", _engine_motion())
    m = read_motion(path)
    assert isinstance(m, MotionData)
    assert m.path == str(path) and m.num_frames == 9
    with np.load(path, allow_pickle=False) as z:
        for ours, key in [(m.poses, "poses"), (m.trans, "trans"), (m.betas, "betas"), (m.K, "camera_intrinsics"),
                          (m.joints_cam, "joints_cam"), (m.joints_2d, "joints_2d"), (m.frame_times, "frame_times")]:
            assert ours.dtype == np.float64
            np.testing.assert_array_equal(ours, z[key].astype(np.float64), err_msg=key)
        assert m.fps == float(z["mocap_framerate"]) == 30.0
    assert m.image_size == (640, 480) and all(type(v) is int for v in m.image_size)
    assert (m.body_model, m.gender, m.track_id, m.engine) == ("mannequin", "female", 4, "keypoints")
    assert m.provenance == {"engine_version": "test", "video_path": "/clips/a.mp4"}


def test_read_motion_sample_file(sample_motion):
    m = sample_motion
    assert m.num_frames == 72 and m.fps == 24.0 and m.image_size == (384, 288)
    assert m.body_model == "mannequin" and m.engine == "ground-truth" and m.provenance["motion"] == "walk"


def _write_arrays(path: Path, arrays: dict) -> Path:
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)
    return path


def _setitem(key, value):
    return lambda a: a.__setitem__(key, value)


def _nan_at(key, index):
    def mutate(a):
        a[key] = a[key].copy()
        a[key][index] = np.nan

    return mutate


MALFORMED = [
    ("betas", lambda a: a.pop("betas")),
    ("format", lambda a: a.pop("format")),
    ("betas", lambda a: a.__setitem__("betas", a["betas"][:9])),
    ("poses", lambda a: a.__setitem__("poses", a["poses"][:, :69])),
    ("poses", lambda a: a.__setitem__("poses", a["poses"].reshape(-1))),
    ("poses", lambda a: a.__setitem__("poses", a["poses"][:0])),
    ("trans", lambda a: a.__setitem__("trans", a["trans"][:-1])),
    ("trans", _nan_at("trans", (2, 1))),
    ("joints_cam", _nan_at("joints_cam", (0, 5, 2))),
    ("joints_2d", lambda a: a.__setitem__("joints_2d", np.where(True, np.inf, a["joints_2d"]))),
    ("frame_times", lambda a: a["frame_times"].__setitem__(4, a["frame_times"][3])),
    ("frame_times", lambda a: a.__setitem__("frame_times", a["frame_times"][::-1].copy())),
    ("frame_times", lambda a: a.__setitem__("frame_times", a["frame_times"][:-1])),
    ("format_version", _setitem("format_version", np.array(2))),
    ("format", _setitem("format", np.array("amass"))),
    ("body_model", _setitem("body_model", np.array("robot"))),
    ("mocap_framerate", _setitem("mocap_framerate", np.array(0.0))),
    ("camera_intrinsics", lambda a: a.__setitem__("camera_intrinsics", a["camera_intrinsics"][:2])),
    ("provenance", _setitem("provenance", np.array("{not json"))),
]


@pytest.mark.parametrize(("key", "mutate"), MALFORMED)
def test_read_motion_names_the_bad_key(tmp_path, key, mutate):
    from tar_core.errors import MotionFileError
    from tar_core.motion_file import validate_file

    arrays = _engine_motion().to_arrays()
    mutate(arrays)
    path = _write_arrays(tmp_path / "bad.npz", arrays)
    with pytest.raises(MotionError) as info:
        read_motion(path)
    assert info.value.key == key, str(info.value)
    assert isinstance(info.value, ValueError)
    assert str(info.value).startswith(f"bad.npz: {key}: ")
    with pytest.raises(MotionFileError):  # the engine's validator refuses it too
        validate_file(path)


def _set_float(key, index, value):
    def mutate(a):
        a[key] = a[key].astype(np.float64)
        a[key][index] = value

    return mutate


# Malformations the engine's validator refuses and that once slipped through this reader (or came
# out as a TypeError / ValueError instead of a MotionError naming the key).
READER_GAPS = [
    pytest.param("betas", _set_float("betas", 3, np.nan), id="nan-betas"),
    pytest.param("frame_times", _set_float("frame_times", 3, np.nan), id="nan-frame-time"),
    pytest.param("frame_times", _set_float("frame_times", -1, np.inf), id="inf-last-frame-time"),
    pytest.param("camera_intrinsics", _set_float("camera_intrinsics", (0, 2), np.nan), id="nan-K"),
    pytest.param("mocap_framerate", _setitem("mocap_framerate", np.array(np.inf)), id="inf-fps"),
    pytest.param("provenance", _setitem("provenance", np.array("[1, 2]")), id="provenance-not-object"),
    pytest.param("format_version", _setitem("format_version", np.array("one")), id="version-not-number"),
    pytest.param("mocap_framerate", _setitem("mocap_framerate", np.array([30.0, 30.0])), id="fps-not-scalar"),
    pytest.param("poses", _setitem("poses", np.full((9, 72), "a")), id="poses-strings"),
]


@pytest.mark.parametrize(("key", "mutate"), READER_GAPS)
def test_read_motion_gaps_name_the_bad_key(tmp_path, key, mutate):
    from tar_core.errors import MotionFileError
    from tar_core.motion_file import validate_file

    arrays = _engine_motion().to_arrays()
    mutate(arrays)
    path = _write_arrays(tmp_path / "bad.npz", arrays)
    with pytest.raises(MotionFileError):  # the engine's own validator refuses every one of these
        validate_file(path)
    with pytest.raises(MotionError) as info:
        read_motion(path)
    assert info.value.key == key, str(info.value)


def test_read_motion_refuses_non_npz_files(tmp_path):
    cases = {
        "missing.npz": None,
        "text.npz": b"poses,trans\n1,2\n",
        "truncated.npz": _write_arrays(tmp_path / "full.npz", _engine_motion().to_arrays()).read_bytes()[:300],
    }
    for name, content in cases.items():
        path = tmp_path / name
        if content is not None:
            path.write_bytes(content)
        with pytest.raises(MotionError) as info:
            read_motion(path)
        assert info.value.key == "file", (name, str(info.value))
        assert name in str(info.value)
    with pytest.raises(MotionError) as info:
        read_motion(tmp_path)  # a folder
    assert info.value.key == "file"


def test_read_motion_refuses_object_arrays(tmp_path):
    arrays = _engine_motion().to_arrays()
    arrays["provenance"] = np.array({"engine_version": "x"}, dtype=object)  # would need pickle to load
    path = tmp_path / "pickled.npz"
    np.savez(path, **arrays)  # np.savez pickles object arrays
    with pytest.raises(MotionError) as info:
        read_motion(path)
    assert info.value.key == "file"


# --------------------------------------------------------------------------------------------
# 5. engine runner
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "expect"),
    [
        ('{"event": "start", "frames": 3}\n', {"event": "start", "frames": 3}),
        ('   {"event":"progress","frame":2,"of":9}  \r\n', {"event": "progress", "frame": 2, "of": 9}),
        ('{"event": "done", "outputs": ["a.npz"]}', {"event": "done", "outputs": ["a.npz"]}),
        ("loading weights...\n", None),
        ("", None),
        ("   \n", None),
        ('{"message": "no event key"}', None),
        ('{"event": 3}', None),
        ('{"event": null}', None),
        ('[{"event": "start"}]', None),
        ('"event"', None),
        ("null", None),
        ('{"event": "start"', None),
        ('{"event": "start"} trailing', None),
        ("{not json at all}", None),
        ('12 frames {"event": "progress"}', None),
    ],
)
def test_parse_event(line, expect):
    assert parse_event(line) == expect


def test_capture_command_defaults():
    cmd = capture_command("/py/python3", "/clips/my clip.mp4", "/out dir")
    assert cmd == ["/py/python3", "-m", "tar_core", "capture", "/clips/my clip.mp4", "-o", "/out dir",
                   "--progress", "jsonl", "--device", "auto"]  # fmt: skip


@pytest.mark.parametrize(
    ("kwargs", "tail"),
    [
        ({"engine": "auto"}, []),
        ({"engine": "tar"}, ["--engine", "tar"]),
        ({"engine": "keypoints"}, ["--engine", "keypoints"]),
        ({"engine": "tar", "checkpoint": "/ck/tar.pt"}, ["--engine", "tar", "--checkpoint", "/ck/tar.pt"]),
        ({"body": "/m/SMPL_NEUTRAL.npz"}, ["--body", "/m/SMPL_NEUTRAL.npz"]),
        ({"focal": 0.0, "max_people": 0}, []),
        ({"focal": -5.0, "max_people": -1}, []),
        ({"focal": 1000.0}, ["--focal", "1000"]),
        ({"focal": 1234.5}, ["--focal", "1234.5"]),
        ({"max_people": 2}, ["--max-people", "2"]),
        ({"person": ""}, []),
        ({"person": " 3 "}, ["--person", "3"]),
        ({"person": "120, 80"}, ["--person", "120,80"]),
        ({"list_people": True}, ["--list-people"]),
        ({"smooth_hz": 2.5}, ["--smooth-hz", "2.5"]),
        ({"smooth_hz": 0.0}, []),
        ({"engine": "tar", "smooth_hz": 2.5}, ["--engine", "tar"]),  # the tar engine has no such filter
        ({"engine": "keypoints", "checkpoint": "c.pt", "body": "b.npz", "focal": 800.25, "max_people": 3},
         ["--engine", "keypoints", "--checkpoint", "/w/c.pt", "--body", "/w/b.npz", "--focal", "800.25",
          "--max-people", "3"]),
    ],
)
def test_capture_command_options(kwargs, tail, monkeypatch, tmp_path):
    monkeypatch.chdir("/")  # relative paths become absolute: the engine runs in its own folder
    tail = [t.replace("/w/", "/") for t in tail]
    base = ["py", "-m", "tar_core", "capture", "/clip.mp4", "-o", "/out", "--progress", "jsonl", "--device", "cuda"]
    cmd = capture_command("py", "clip.mp4", "out", device="cuda", **kwargs)
    assert cmd == base + tail
    assert all(isinstance(a, str) for a in cmd)


def test_capture_command_is_accepted_by_the_engine_cli():
    from tar_core.cli import build_parser  # the engine's own argument parser (no torch at import)

    cmd = capture_command("py", "/c/clip.mp4", "/o", engine="tar", checkpoint="/ck.pt", body="/b.npz",
                          device="cuda", focal=912.5, max_people=2)  # fmt: skip
    assert cmd[1:3] == ["-m", "tar_core"]
    args = build_parser().parse_args(cmd[3:])
    assert (args.command, args.clip, args.output, args.progress) == ("capture", "/c/clip.mp4", "/o", "jsonl")
    assert (args.engine, args.checkpoint, args.body, args.device) == ("tar", "/ck.pt", "/b.npz", "cuda")
    assert (args.focal, args.max_people) == (912.5, 2)
    args = build_parser().parse_args(capture_command("py", "clip.mp4", "out", person="1", list_people=True,
                                                     smooth_hz=6.0)[3:])
    assert (args.person, args.list_people, args.smooth_hz) == ("1", True, 6.0)
    args = build_parser().parse_args(capture_command("py", "clip.mp4", "out")[3:])
    assert (args.engine, args.checkpoint, args.body, args.focal, args.max_people) == ("auto", None, None, None, 0)


def _script(tmp_path: Path, name: str, body: str) -> str:
    path = tmp_path / name
    path.write_text("import json, os, signal, sys, time\n"
                    "signal.signal(signal.SIGINT, signal.default_int_handler)\n"
                    "def emit(**e):\n    print(json.dumps(e), flush=True)\n" + textwrap.dedent(body))  # fmt: skip
    return str(path)


def _collect(run: EngineRun, until, timeout: float = 15.0) -> list[dict]:
    got, t0 = [], time.monotonic()
    while not until(got):
        assert time.monotonic() - t0 < timeout, f"timed out; events so far {got}, stderr {list(run.stderr_tail)}"
        got += run.poll()
        time.sleep(0.01)
    return got


def test_engine_run_success(tmp_path):
    script = _script(tmp_path, "ok.py", """
        emit(event="start", frames=4, people=1)
        print("some log line from a library")
        for i in range(4):
            emit(event="progress", frame=i + 1, of=4)
            time.sleep(0.02)
        print("warming up", file=sys.stderr, flush=True)
        emit(event="output", path="/out/person_0.npz", track_id=0)
        print("{not an event}")
        emit(event="output", path="/out/person_1.npz", track_id=1)
        emit(event="done", outputs=2)
    """)
    run = EngineRun([sys.executable, script])
    got = _collect(run, lambda ev: any(e["event"] == "done" for e in ev))
    assert run.wait(timeout=10) == 0
    got += run.poll()
    assert [e["event"] for e in got] == ["start"] + ["progress"] * 4 + ["output", "output", "done"]
    assert [e["frame"] for e in got if e["event"] == "progress"] == [1, 2, 3, 4]
    assert run.outputs == ["/out/person_0.npz", "/out/person_1.npz"]
    assert run.last_progress == {"event": "progress", "frame": 4, "of": 4}
    assert run.done == {"event": "done", "outputs": 2}
    assert run.error is None and not run.cancelled and not run.running and run.returncode == 0
    assert "warming up" in run.stderr_tail
    assert run.failure_message() is None
    assert run.poll() == []


def test_engine_run_reports_the_engine_error(tmp_path):
    script = _script(tmp_path, "err.py", """
        emit(event="start", frames=10)
        emit(event="progress", frame=1, of=10)
        print("Traceback (most recent call last): ...", file=sys.stderr)
        emit(event="error", message="no person found in the clip")
        sys.exit(3)
    """)
    run = EngineRun([sys.executable, script])
    assert run.wait(timeout=10) == 3
    assert run.error == "no person found in the clip"
    assert run.failure_message() == "no person found in the clip"
    assert run.done is None and run.outputs == []


def test_engine_run_crash_without_error_event_points_to_the_log(tmp_path):
    script = _script(tmp_path, "crash.py", """
        emit(event="start", frames=10)
        print("I0000 00:00:1 gl_context.cc:357] GL version: 3.2", file=sys.stderr)
        raise RuntimeError("CUDA out of memory")
    """)
    log = tmp_path / "out" / "engine.log"
    run = EngineRun([sys.executable, script], log_path=log)
    assert run.wait(timeout=10) == 1
    # The exception that ended it is named; a library's log line never is.
    assert run.failure_message() == ("the engine stopped unexpectedly (code 1): RuntimeError: CUDA out of memory; "
                                     f"its log: {log}")
    assert "RuntimeError: CUDA out of memory" in log.read_text() and "gl_context" in log.read_text()
    quiet = _script(tmp_path, "quiet.py", """
        print("I0000 00:00:1 gl_context.cc:357] GL version: 3.2", file=sys.stderr)
        sys.exit(7)
    """)
    run = EngineRun([sys.executable, quiet], log_path=log)
    assert run.wait(timeout=10) == 7
    assert run.failure_message() == f"the engine stopped unexpectedly (code 7); its log: {log}"


def test_engine_run_cancel_lets_the_engine_flush(tmp_path):
    script = _script(tmp_path, "loop.py", """
        emit(event="start", frames=1000000)
        try:
            i = 0
            while True:
                i += 1
                emit(event="progress", frame=i, of=1000000)
                time.sleep(0.01)
        except KeyboardInterrupt:
            emit(event="output", path="/out/partial.npz")
            emit(event="done", cancelled=True)
            sys.exit(130)
    """)
    run = EngineRun([sys.executable, script])
    _collect(run, lambda ev: sum(e["event"] == "progress" for e in ev) >= 3)
    t0 = time.perf_counter()
    assert isinstance(run.poll(), list) and time.perf_counter() - t0 < 0.05  # poll never blocks
    assert run.running and run.failure_message() is None
    t0 = time.monotonic()
    rc = run.cancel()
    assert time.monotonic() - t0 < 4.0
    assert rc == 130 and not run.running
    assert run.cancelled
    assert run.outputs == ["/out/partial.npz"]  # what the engine flushed on SIGINT was read
    assert run.done == {"event": "done", "cancelled": True}
    assert run.failure_message() == "capture cancelled"


def test_engine_run_cancel_kills_an_engine_that_ignores_sigint(tmp_path):
    script = _script(tmp_path, "stubborn.py", """
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        emit(event="start", frames=1)
        while True:
            time.sleep(0.05)
    """)
    run = EngineRun([sys.executable, script])
    _collect(run, lambda ev: len(ev) >= 1)
    t0 = time.monotonic()
    rc = run.cancel(grace=1.0)
    elapsed = time.monotonic() - t0
    assert 0.9 <= elapsed < 5.0, elapsed
    assert rc == -signal.SIGKILL and not run.running
    assert run.cancelled and run.failure_message() == "capture cancelled"


def test_engine_run_cancel_after_exit_is_harmless(tmp_path):
    script = _script(tmp_path, "quick.py", 'emit(event="done")\n')
    run = EngineRun([sys.executable, script])
    assert run.wait(timeout=10) == 0
    assert run.cancel() == 0
    assert run.cancelled and run.done == {"event": "done"}


def _env_event(run: EngineRun) -> dict:
    got = _collect(run, lambda ev: any(e["event"] == "env" for e in ev))
    assert run.wait(timeout=10) == 0, list(run.stderr_tail)
    return next(e for e in got if e["event"] == "env")


def test_engine_run_puts_engine_path_first_on_pythonpath(tmp_path):
    script = _script(tmp_path, "env.py", """
        emit(event="env", pythonpath=os.environ.get("PYTHONPATH"), path=sys.path,
             unbuffered=os.environ.get("PYTHONUNBUFFERED"), marker=os.environ.get("TAR_TEST_MARKER"))
    """)
    engine = tmp_path / "addon root"
    engine.mkdir()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(["/some/where", "/else"]), TAR_TEST_MARKER="x")
    ev = _env_event(EngineRun([sys.executable, script], env=env, engine_path=engine))
    assert ev["pythonpath"] == os.pathsep.join([str(engine), "/some/where", "/else"])
    assert ev["path"][1] == str(engine)  # after the script's own folder, before everything else
    assert ev["unbuffered"] == "1" and ev["marker"] == "x"
    assert env["PYTHONPATH"] == os.pathsep.join(["/some/where", "/else"])  # the caller's dict is untouched

    env.pop("PYTHONPATH")
    ev = _env_event(EngineRun([sys.executable, script], env=env, engine_path=str(engine)))
    assert ev["pythonpath"] == str(engine)
    assert ev["path"][1] == str(engine)

    ev = _env_event(EngineRun([sys.executable, script], env=env))  # no engine_path: nothing added
    assert ev["pythonpath"] is None and str(engine) not in ev["path"]


# --------------------------------------------------------------------------------------------
# 6. the add-on never imports torch or tar_core
# --------------------------------------------------------------------------------------------


def test_addon_logic_imports_neither_torch_nor_the_engine():
    code = textwrap.dedent("""
        import importlib, json, pkgutil, sys
        import tar_blender
        import tar_blender.logic as logic
        names = [m.name for m in pkgutil.iter_modules(logic.__path__, "tar_blender.logic.")]
        for name in names:
            importlib.import_module(name)
        print(json.dumps({"submodules": names, "modules": sorted(sys.modules)}))
    """)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=60)  # fmt: skip
    assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout.strip().splitlines()[-1])
    expected = {f"tar_blender.logic.{n}" for n in ("camera", "engine", "keys", "motion", "rotations", "skeleton")}
    assert expected <= set(res["submodules"])
    mods = res["modules"]
    assert "torch" not in mods and not [m for m in mods if m.startswith("torch.")]
    assert [m for m in mods if m == "tar_core" or m.startswith("tar_core.")] == []
    assert "bpy" not in mods
    assert expected <= set(mods)


def _imported_roots(tree: ast.AST, path: Path) -> set[str]:
    roots = set()
    pkg_parts = path.relative_to(ROOT).with_suffix("").parts[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                roots.add(node.module.split(".")[0])
            else:  # relative: must stay inside tar_blender
                base = pkg_parts[: len(pkg_parts) - (node.level - 1)]
                assert base and base[0] == "tar_blender", (path, ast.unparse(node))
                roots.add(base[0])
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = ast.unparse(node.func)
            if func.endswith("import_module") or func == "__import__":
                roots.add(str(node.args[0].value).split(".")[0])
    return roots


def test_no_addon_source_imports_torch_or_tar_core():
    files = sorted((ROOT / "tar_blender").rglob("*.py"))
    assert len(files) >= 10
    offenders = {}
    for path in files:
        roots = _imported_roots(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)), path)
        bad = roots & {"torch", "tar_core", "smplx", "cv2"}
        if bad:
            offenders[str(path.relative_to(ROOT))] = sorted(bad)
    assert offenders == {}
    logic = sorted((ROOT / "tar_blender" / "logic").glob("*.py"))
    for path in logic:  # the pure logic also stays off bpy
        assert "bpy" not in _imported_roots(ast.parse(path.read_text(encoding="utf-8")), path), path
