"""Scripted SMPL motions for synthetic clips: walk, turn in place, arm raises, squats.

Each motion is a pure function of (frame count, fps, random generator) returning SMPL poses in
a world frame with y up and the floor at y = 0 (before ground contact is fixed, see
``render.place_on_floor``). Joint rotations are built from simple anatomical angles:
- flexion of hips, knees, ankles and spine is rotation about x (hip flexion < 0, knee flexion > 0);
- the arms hang by rotating the shoulders about z (left < 0, right > 0), swing about x;
- elbow flexion is rotation about y in the upper arm's frame (left < 0, right > 0).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..body_model import JOINT_NAMES
from ..rotations import matrix_to_axis_angle

__all__ = ["MOTIONS", "make_motion"]

J = {n: i for i, n in enumerate(JOINT_NAMES)}


def _rx(a):
    c, s = np.cos(a), np.sin(a)
    o, z = np.ones_like(a), np.zeros_like(a)
    return np.stack([o, z, z, z, c, -s, z, s, c], -1).reshape(a.shape + (3, 3))


def _ry(a):
    c, s = np.cos(a), np.sin(a)
    o, z = np.ones_like(a), np.zeros_like(a)
    return np.stack([c, z, s, z, o, z, -s, z, c], -1).reshape(a.shape + (3, 3))


def _rz(a):
    c, s = np.cos(a), np.sin(a)
    o, z = np.ones_like(a), np.zeros_like(a)
    return np.stack([c, -s, z, s, c, z, z, z, o], -1).reshape(a.shape + (3, 3))


class _Pose:
    """Per-frame joint rotation matrices, composed joint by joint."""

    def __init__(self, n: int):
        self.R = np.tile(np.eye(3), (n, 24, 1, 1))

    def apply(self, joint: str, R: np.ndarray) -> None:
        """Left-multiply a (N, 3, 3) rotation onto a joint's local rotation."""
        self.R[:, J[joint]] = R @ self.R[:, J[joint]]

    def axis_angle(self) -> np.ndarray:
        return matrix_to_axis_angle(self.R).reshape(len(self.R), 72).astype(np.float32)


def _relaxed_arms(pose: _Pose, n: int, rng: np.random.Generator, elbow=0.25) -> None:
    down = np.full(n, np.deg2rad(rng.uniform(62, 72)))
    pose.apply("left_shoulder", _rz(-down))
    pose.apply("right_shoulder", _rz(down))
    pose.apply("left_elbow", _ry(np.full(n, -elbow)))
    pose.apply("right_elbow", _ry(np.full(n, elbow)))


def walk(n: int, fps: float, rng: np.random.Generator):
    t = np.arange(n) / fps
    cadence = rng.uniform(0.8, 1.0)  # strides per second
    phase = 2 * np.pi * cadence * t + rng.uniform(0, 2 * np.pi)
    pose = _Pose(n)
    swing = np.deg2rad(rng.uniform(22, 30))
    for side, sgn in (("left", 1.0), ("right", -1.0)):
        ph = phase if sgn > 0 else phase + np.pi
        pose.apply(f"{side}_hip", _rx(-swing * np.sin(ph)))
        # knee bends most while the leg swings forward (first half of its cycle)
        pose.apply(f"{side}_knee", _rx(np.deg2rad(55) * np.clip(np.sin(ph + 0.6), 0, None) + 0.05))
        pose.apply(f"{side}_ankle", _rx(np.deg2rad(10) * np.sin(ph - 0.5)))
    _relaxed_arms(pose, n, rng, elbow=0.35)
    arm = np.deg2rad(rng.uniform(15, 25))
    pose.apply("left_shoulder", _rx(arm * np.sin(phase)))  # opposite to the left leg
    pose.apply("right_shoulder", _rx(-arm * np.sin(phase)))
    pose.apply("spine1", _ry(np.deg2rad(4) * np.sin(phase)))
    heading = rng.uniform(-1.0, 1.0)  # radians about y; 0 walks toward +z (the camera, see render)
    pose.apply("pelvis", _ry(np.full(n, heading)))
    speed = 1.1 * cadence * 0.75
    dist = speed * t - speed * t[-1] / 2  # centred on the middle frame
    trans = np.stack([np.sin(heading) * dist, 0.02 * np.cos(2 * phase), np.cos(heading) * dist], -1)
    return pose.axis_angle(), trans


def turn(n: int, fps: float, rng: np.random.Generator):
    t = np.arange(n) / fps
    pose = _Pose(n)
    total = np.deg2rad(rng.uniform(200, 360)) * rng.choice([-1, 1])
    yaw = total * (t / max(t[-1], 1e-6)) + rng.uniform(-0.5, 0.5)
    step = 2 * np.pi * 1.6 * t
    for side, sgn in (("left", 1.0), ("right", -1.0)):
        ph = step if sgn > 0 else step + np.pi
        lift = np.clip(np.sin(ph), 0, None)
        pose.apply(f"{side}_hip", _rx(-np.deg2rad(18) * lift))
        pose.apply(f"{side}_knee", _rx(np.deg2rad(30) * lift))
    _relaxed_arms(pose, n, rng, elbow=0.5)
    pose.apply("pelvis", _ry(yaw))
    return pose.axis_angle(), np.zeros((n, 3))


def arms(n: int, fps: float, rng: np.random.Generator):
    """Arm raises (sideways and forward) with elbow bends; the legs stand."""
    t = np.arange(n) / fps
    pose = _Pose(n)
    f = rng.uniform(0.35, 0.55)
    for side, sgn, off in (("left", -1.0, 0.0), ("right", 1.0, rng.uniform(0.5, 2.5))):
        ph = 2 * np.pi * f * t + off
        raise_ = np.deg2rad(-70 + 150 * (0.5 - 0.5 * np.cos(ph)))  # from hanging (-70) to overhead (+80)
        pose.apply(f"{side}_shoulder", _rz(-sgn * raise_))
        forward = np.deg2rad(25) * np.sin(0.5 * ph)
        pose.apply(f"{side}_shoulder", _ry(sgn * forward))
        elbow = np.deg2rad(10 + 80 * (0.5 - 0.5 * np.cos(2 * ph)))
        pose.apply(f"{side}_elbow", _ry(sgn * elbow))
    pose.apply("left_hip", _rz(np.full(n, -0.05)))
    pose.apply("right_hip", _rz(np.full(n, 0.05)))
    pose.apply("pelvis", _ry(np.full(n, rng.uniform(-0.6, 0.6))))
    return pose.axis_angle(), np.zeros((n, 3))


def squat(n: int, fps: float, rng: np.random.Generator):
    """Knee bends / squats; the arms reach forward for balance as the body goes down."""
    t = np.arange(n) / fps
    pose = _Pose(n)
    depth = rng.uniform(0.55, 1.0)
    s = depth * (0.5 - 0.5 * np.cos(2 * np.pi * rng.uniform(0.3, 0.45) * t))  # 0 standing .. depth
    for side in ("left", "right"):
        pose.apply(f"{side}_hip", _rx(-np.deg2rad(95) * s))
        pose.apply(f"{side}_knee", _rx(np.deg2rad(120) * s))
        pose.apply(f"{side}_ankle", _rx(-np.deg2rad(28) * s))
    pose.apply("spine1", _rx(np.deg2rad(12) * s))
    _relaxed_arms(pose, n, rng, elbow=0.2)
    reach = np.deg2rad(80) * s
    pose.apply("left_shoulder", _rx(-reach))
    pose.apply("right_shoulder", _rx(-reach))
    pose.apply("pelvis", _rx(np.deg2rad(10) * s))
    pose.apply("pelvis", _ry(np.full(n, rng.uniform(-0.7, 0.7))))
    return pose.axis_angle(), np.zeros((n, 3))


MOTIONS: dict[str, Callable] = {"walk": walk, "turn": turn, "arms": arms, "squat": squat}


def make_motion(name: str, n_frames: int, fps: float, rng: np.random.Generator):
    """(N, 72) float32 SMPL poses and (N, 3) translations, world frame (y up), for a named motion."""
    if name not in MOTIONS:
        raise ValueError(f"unknown motion {name!r}; choose from {', '.join(MOTIONS)}")
    if n_frames < 1:
        raise ValueError("n_frames must be >= 1")
    poses, trans = MOTIONS[name](n_frames, fps, rng)
    return poses, np.asarray(trans, dtype=np.float64)
