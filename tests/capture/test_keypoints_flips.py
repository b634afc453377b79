"""MediaPipe's front/back flips undone (``keypoints.flips``): synthetic landmarks of a turning body, some rows
read the other way round as MediaPipe misreads them (left and right exchanged, world depth mirrored)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from tar_core.body_model import load_body_model
from tar_core.capture.engines import keypoints as kp
from tar_core.capture.engines.keypoints.flips import choose_readings, facing, flip_landmarks, unflip
from tar_core.geometry import camera as cam
from tar_core.util.stop import StopFlag
from tests.capture.test_keypoints_v2 import H, W, track


@pytest.fixture(scope="module")
def body():
    return load_body_model()


def turning(n: int, degrees: float, fps: float = 30.0) -> np.ndarray:
    """(n, 72) an upright body (OpenCV axes) turning ``degrees`` about the vertical over the n frames, arms
    swinging."""
    t = np.arange(n) / fps
    yaw = np.radians(np.linspace(0.0, degrees, n))
    root = Rotation.from_euler("y", yaw[:, None]) * Rotation.from_euler("x", np.pi)
    poses = np.zeros((n, 72))
    poses[:, :3] = root.as_rotvec()
    poses[:, 3 * 16 + 2] = -1.0 + 0.4 * np.sin(2 * np.pi * 0.8 * t)
    poses[:, 3 * 17 + 2] = 1.0 - 0.4 * np.sin(2 * np.pi * 0.8 * t)
    poses[:, 3 * 18 + 1] = -0.7
    poses[:, 3 * 4] = 0.3 + 0.2 * np.sin(2 * np.pi * 0.5 * t)
    return poses


def misread(a, rows):
    """The track with ``rows`` read the other way round, as MediaPipe's flips read them."""
    xy, vis, world = a.xy.copy(), a.vis.copy(), a.world.copy()
    xy[rows], vis[rows], world[rows] = flip_landmarks(a.xy[rows], a.vis[rows], a.world[rows])
    return replace(a, xy=xy, vis=vis, world=world)


def trans(n: int) -> np.ndarray:
    return np.tile([0.0, 0.2, 4.0], (n, 1))


def test_flipping_twice_gives_the_landmarks_back(body):
    a = track(body, turning(5, 30.0), trans(5), noise_px=1.0, noise_m=0.01)
    xy, vis, world = flip_landmarks(*flip_landmarks(a.xy, a.vis, a.world))
    assert np.array_equal(xy, a.xy) and np.array_equal(vis, a.vis) and np.array_equal(world, a.world)
    once = flip_landmarks(a.xy, a.vis, a.world)[2]
    assert np.array_equal(once[:, 11, :2], a.world[:, 12, :2]) and np.array_equal(once[:, 11, 2], -a.world[:, 12, 2])


@pytest.mark.parametrize("rows", [list(range(20, 25)), [0, 1, 2], [38]])
def test_a_flip_of_a_few_frames_is_found(body, rows):
    n = 40
    a = misread(track(body, turning(n, 60.0), trans(n), noise_px=1.0, noise_m=0.015, seed=1), rows)
    assert np.flatnonzero(choose_readings(a.world, a.times)).tolist() == rows


def test_a_real_half_turn_is_left_alone(body):
    n = 30  # 180 degrees in one second
    a = track(body, turning(n, 180.0), trans(n), noise_px=1.0, noise_m=0.015, seed=2)
    assert not choose_readings(a.world, a.times).any()
    assert unflip(a)[1] == 0


def test_the_fit_of_a_misread_track_keeps_facing_the_right_way(body):
    n, rows = 36, list(range(14, 19))
    poses = turning(n, 40.0)
    a = misread(track(body, poses, trans(n), noise_px=1.0, noise_m=0.01, seed=4), rows)
    K = cam.intrinsics(800, (W / 2, H / 2))
    truth = Rotation.from_rotvec(poses[rows, :3])

    def root_error(cfg):
        fit = kp.fit_track(body, a, K, cfg, StopFlag())
        return np.degrees((truth.inv() * Rotation.from_rotvec(fit.poses_raw[rows, :3])).magnitude()), fit.info

    err, info = root_error(kp.FitConfig(pin_feet=False))
    assert info["flipped_rows"] == len(rows)
    assert err.max() < 15, err
    err_as_seen, info = root_error(kp.FitConfig(pin_feet=False, unflip=False))
    assert info["flipped_rows"] == 0
    assert err_as_seen.min() > 90, err_as_seen  # fitted as seen, the body spins round


def facing_of(poses: np.ndarray) -> np.ndarray:
    """(n, 3) the way bodies with ``poses`` face: their pelvis's forward axis, camera frame."""
    return Rotation.from_rotvec(poses[:, :3]).as_matrix()[:, :, 2]


def test_the_landmarks_facing_is_the_bodys(body):
    poses = turning(12, 150.0)
    a = track(body, poses, trans(12), noise_px=1.0, noise_m=0.01, seed=5)
    cos = (facing(a.world) * facing_of(poses)).sum(-1)
    assert cos.min() > np.cos(np.radians(20)), cos
    mirrored = facing_of(poses) * np.array([1.0, 1.0, -1.0])  # the other reading faces as if seen in a mirror
    assert (facing(misread(a, list(range(12))).world) * mirrored).sum(-1).min() > np.cos(np.radians(20))


def test_a_long_flip_is_overturned_by_another_estimates_facing(body):
    n, rows = 60, list(range(10, 60))  # MediaPipe reads the body the wrong way from row 10 on, continuously
    poses = turning(n, 60.0)
    a = misread(track(body, poses, trans(n), noise_px=1.0, noise_m=0.015, seed=6), rows)
    assert np.flatnonzero(choose_readings(a.world, a.times)).tolist() == list(range(10))  # outvoted: the wrong rows
    ref = facing_of(poses)
    assert np.flatnonzero(choose_readings(a.world, a.times, facing_ref=ref)).tolist() == rows
    ref[30:34] *= -1.0  # the other estimate's own short flip does not break a continuous reading
    assert np.flatnonzero(choose_readings(a.world, a.times, facing_ref=ref)).tolist() == rows


def turned_round(a, start: int, steps: int = 3):
    """The track read the other way round from row ``start`` on, as MediaPipe's smoothed landmarks read it: no
    jump, the body turned round about the vertical over the ``steps`` rows before (180 degrees in 0.1 s)."""
    b = misread(a, list(range(start, len(a))))
    world = b.world.copy()
    for k, i in enumerate(range(start - steps + 1, start)):
        yaw = Rotation.from_euler("y", np.pi * (k + 1) / steps).as_matrix()
        world[i] = a.world[i] @ yaw.T
    return replace(b, world=world)


def test_a_flip_smoothed_into_an_impossible_turn_is_found(body, monkeypatch):
    from tar_core.capture.engines.keypoints import flips

    n, start = 48, 30
    a = turned_round(track(body, turning(n, 20.0), trans(n), noise_px=1.0, noise_m=0.01, seed=3), start)
    chosen = choose_readings(a.world, a.times)
    assert chosen[start:].all() and not chosen[: start - 3].any(), np.flatnonzero(chosen)
    monkeypatch.setattr(flips, "TURN_PRICE_PER_RAD", 0.0)  # the jumps alone take it for a turn
    assert not choose_readings(a.world, a.times)[start:].any()


def test_a_fast_real_turn_is_left_alone(body):
    n = 24  # a whole turn in 0.8 s (450 degrees a second)
    a = track(body, turning(n, 360.0), trans(n), noise_px=1.0, noise_m=0.015, seed=4)
    assert not choose_readings(a.world, a.times).any()
