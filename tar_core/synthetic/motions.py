"""SMPL motions for synthetic clips: walk, turn in place, arm raises, squats, and random movement.

Each motion is a pure function of (frame count, fps, random generator) returning SMPL poses in
a world frame with y up and the floor at y = 0 (before ground contact is fixed, see
``render.place_on_floor``). Joint rotations are built from simple anatomical angles:
- flexion of hips, knees, ankles and spine is rotation about x (hip flexion < 0, knee flexion > 0);
- the arms hang by rotating the shoulders about z (left < 0, right > 0), swing about x;
- elbow flexion is rotation about y in the upper arm's frame (left < 0, right > 0).

``random`` moves every joint along smooth random curves inside ``JOINT_LIMITS``: each joint's local
rotation is ``Rx(ax) @ Ry(ay) @ Rz(az)`` (applied z, then y, then x), except the elbows, whose hinge
angle is the outermost: ``Ry(ay) @ Rx(ax) @ Rz(az)`` (``JOINT_ORDER``; ``euler_angles`` inverts both).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from tar_core.body_model import JOINT_NAMES
from tar_core.geometry.rotations import matrix_to_axis_angle

__all__ = ["JOINT_LIMITS", "JOINT_ORDER", "MOTIONS", "ScriptedMotion", "euler_angles", "make_motion"]

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


def walk(n: int, fps: float, rng: np.random.Generator, flat_stance: bool = False):
    """A walk along a seeded heading. ``flat_stance``: the standing foot stays flat on the floor (its ankle
    undoes the hip's swing), so that a body travelling by its standing foot plants it; otherwise the ankle
    rocks as scripted (the original clips)."""
    t = np.arange(n) / fps
    stance = np.zeros((n, 2))
    cadence = rng.uniform(0.8, 1.0)  # strides per second
    phase = 2 * np.pi * cadence * t + rng.uniform(0, 2 * np.pi)
    pose = _Pose(n)
    swing = np.deg2rad(rng.uniform(22, 30))
    if flat_stance:  # steps of 0.5-0.7 m: a body that travels by its feet walks 0.9-1.3 m/s at this cadence
        swing *= 0.65
    for side, sgn in (("left", 1.0), ("right", -1.0)):
        ph = phase if sgn > 0 else phase + np.pi
        pose.apply(f"{side}_hip", _rx(-swing * np.sin(ph)))
        # knee bends most while the leg swings forward (first half of its cycle)
        knee = np.deg2rad(55) * np.clip(np.sin(ph + 0.6), 0, None) + 0.05
        ankle = np.deg2rad(10) * np.sin(ph - 0.5)
        if flat_stance:
            # The leg swings forward while cos(ph) > 0: the knee bends then (the foot clears the floor) and
            # stays nearly straight while the leg stands. The foot stays level (hip + knee + ankle pitch
            # zero: flat while standing), its toes raised 9 degrees while it swings.
            knee = np.deg2rad(60) * np.clip(np.cos(ph + 0.4), 0, None) ** 1.5 + 0.05  # straight at touchdown
            standing = np.clip(-4.0 * np.cos(ph), 0, 1)
            stance[:, 0 if sgn > 0 else 1] = 0.5 - 0.5 * np.tanh(4.0 * np.cos(ph))
            ankle = swing * np.sin(ph) - knee - (1 - standing) * np.deg2rad(9)
        pose.apply(f"{side}_knee", _rx(knee))
        pose.apply(f"{side}_ankle", _rx(ankle))
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
    return pose.axis_angle(), trans, (stance if flat_stance else None)


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


# Anatomical limits (degrees) of (ax, ay, az) for the left side and the spine; the right side mirrors the
# left (ay and az change sign). ax: flexion (+ forward for the spine, neck and head; knee flexion > 0, hip
# flexion < 0; shoulder swing forward < 0), ay: twist / horizontal swing, az: abduction / side bend (the
# arms hang at az ~ -68 on the left). Each entry: (lo, hi, rest) per axis.
_LIMITS_DEG = {
    "spine1": ((-10, 25, 0), (-15, 15, 0), (-10, 10, 0)),
    "spine2": ((-8, 15, 0), (-12, 12, 0), (-8, 8, 0)),
    "spine3": ((-8, 15, 0), (-12, 12, 0), (-8, 8, 0)),
    "neck": ((-20, 25, 0), (-30, 30, 0), (-12, 12, 0)),
    "head": ((-20, 25, 0), (-35, 35, 0), (-15, 15, 0)),
    "left_collar": ((-8, 8, 0), (-10, 10, 0), (-10, 15, 0)),
    "left_shoulder": ((-100, 40, 0), (-80, 30, 0), (-75, 80, -68)),
    "left_elbow": ((-20, 20, 0), (-140, -3, -15), (0, 0, 0)),
    "left_wrist": ((-40, 40, 0), (-30, 30, 0), (-50, 50, 0)),
    "left_hip": ((-95, 25, 0), (-35, 35, 0), (-12, 40, 0)),
    "left_knee": ((3, 125, 5), (0, 0, 0), (0, 0, 0)),
    "left_ankle": ((-35, 25, 0), (-12, 12, 0), (-15, 15, 0)),
}


def _joint_limits() -> dict[str, np.ndarray]:
    out = {}
    for name, axes in _LIMITS_DEG.items():
        lim = np.deg2rad(np.array(axes, dtype=np.float64))  # (3 axes, lo/hi/rest)
        if name.startswith("left_"):
            right = lim.copy()
            right[1:] = -lim[1:][:, [1, 0, 2]]  # mirror: ay, az change sign (lo/hi swap)
            out[name] = lim
            out["right_" + name[5:]] = right
        else:
            out[name] = lim
    return out


JOINT_LIMITS: dict[str, np.ndarray] = _joint_limits()  # joint -> (3, 3) radians: rows ax, ay, az; lo, hi, rest


JOINT_ORDER = {"left_elbow": "yxz", "right_elbow": "yxz"}  # others: "xyz"


def euler_angles(R: np.ndarray, order: str = "xyz") -> np.ndarray:
    """(..., 3) angles (ax, ay, az) with ``R = Rx(ax) @ Ry(ay) @ Rz(az)`` (order "xyz", |ay| <= pi/2) or
    ``R = Ry(ay) @ Rx(ax) @ Rz(az)`` (order "yxz", |ax| <= pi/2)."""
    if order == "yxz":  # swapping x and y (a reflection) turns it into "xyz" with negated angles
        P = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
        ay, ax, az = np.moveaxis(-euler_angles(P @ R @ P, "xyz"), -1, 0)
        return np.stack([ax, ay, az], -1)
    if order != "xyz":
        raise ValueError(f"unsupported order {order!r}")
    ay = np.arcsin(np.clip(R[..., 0, 2], -1.0, 1.0))
    ax = np.arctan2(-R[..., 1, 2], R[..., 2, 2])
    az = np.arctan2(-R[..., 0, 1], R[..., 0, 0])
    return np.stack([ax, ay, az], -1)


def _smooth_curve(t: np.ndarray, values: np.ndarray, key_t: np.ndarray) -> np.ndarray:
    """Shape-preserving cubic (PCHIP) through the keys: C1-smooth, never leaves the keys' range."""
    from scipy.interpolate import PchipInterpolator

    if len(key_t) < 2:
        return np.full_like(t, values[0])
    return PchipInterpolator(key_t, values)(t)


def _key_times(rng: np.random.Generator, duration: float) -> np.ndarray:
    """0, then gaps of 0.4-1.2 s until past the end of the clip."""
    times = [0.0]
    while times[-1] < duration:
        times.append(times[-1] + rng.uniform(0.4, 1.2))
    return np.array(times)


def random_motion(n: int, fps: float, rng: np.random.Generator):
    """Smooth random joint trajectories inside ``JOINT_LIMITS``, starting from a relaxed stand.

    Every angle passes through random keys every 0.4-1.2 s (PCHIP, so it stays inside the keys' range
    and therefore inside the limits); keys cluster around the rest pose (arms hanging) with a per-clip
    activity, the first key is near rest. The root turns smoothly and drifts a little on the floor.
    """
    t = np.arange(n) / fps
    duration = float(t[-1])
    activity = rng.uniform(0.45, 1.0)
    pose = _Pose(n)
    hang = np.deg2rad(rng.uniform(62, 72))
    for name, lim in JOINT_LIMITS.items():
        angles = []
        for ax in range(3):
            lo, hi, rest = lim[ax]
            if name.endswith("shoulder") and ax == 2:
                rest = -hang if name.startswith("left") else hang
            if hi - lo < 1e-9:
                angles.append(np.full(n, lo))
                continue
            key_t = _key_times(rng, duration)
            u = rng.uniform(-1.0, 1.0, len(key_t))
            u = np.sign(u) * np.abs(u) ** 1.5 * activity  # most keys near rest, some near the limits
            u[0] *= 0.25  # start close to a relaxed stand
            keys = np.where(u > 0, rest + u * (hi - rest), rest + u * (rest - lo))
            angles.append(np.clip(_smooth_curve(t, keys, key_t), lo, hi))
        ax_, ay_, az_ = angles
        pose.apply(name, _rz(az_))
        if JOINT_ORDER.get(name, "xyz") == "yxz":
            pose.apply(name, _rx(ax_))
            pose.apply(name, _ry(ay_))
        else:
            pose.apply(name, _ry(ay_))
            pose.apply(name, _rx(ax_))
    # Root: a little lean, a smoothly drifting heading, a slow wander on the floor.
    key_t = _key_times(rng, duration)
    lean = _smooth_curve(t, rng.uniform(-0.12, 0.12, len(key_t)), key_t)
    pose.apply("pelvis", _rx(lean))
    key_t = _key_times(rng, duration)
    yaw_keys = rng.uniform(-1.0, 1.0) + np.cumsum(rng.uniform(-0.9, 0.9, len(key_t)) * (np.arange(len(key_t)) > 0))
    pose.apply("pelvis", _ry(_smooth_curve(t, yaw_keys, key_t)))
    key_t = _key_times(rng, duration)
    walk_keys = np.cumsum(rng.uniform(-0.25, 0.25, (len(key_t), 2)) * (np.arange(len(key_t)) > 0)[:, None], 0)
    drift = np.stack([_smooth_curve(t, walk_keys[:, k], key_t) for k in range(2)], -1)
    drift -= drift.mean(0)
    trans = np.stack([drift[:, 0], np.zeros(n), drift[:, 1]], -1)
    return pose.axis_angle(), trans


MOTIONS: dict[str, Callable] = {"walk": walk, "turn": turn, "arms": arms, "squat": squat, "random": random_motion}


class ScriptedMotion(NamedTuple):
    poses: np.ndarray  # (N, 72) float32
    trans: np.ndarray  # (N, 3) float64
    stance: np.ndarray | None  # (N, 2) how much the left / right foot stands, where the motion knows it


def make_motion(name: str, n_frames: int, fps: float, rng: np.random.Generator, planted_feet: bool = False):
    """(N, 72) float32 SMPL poses and (N, 3) translations, world frame (y up), for a named motion, and which
    foot stands where the motion says. ``planted_feet``: poses meant for a body that travels by its
    standing foot (the walk's stands flat)."""
    if name not in MOTIONS:
        raise ValueError(f"unknown motion {name!r}; choose from {', '.join(MOTIONS)}")
    if n_frames < 1:
        raise ValueError("n_frames must be >= 1")
    stance = None
    if name == "walk":
        poses, trans, stance = walk(n_frames, fps, rng, flat_stance=planted_feet)
    else:
        poses, trans = MOTIONS[name](n_frames, fps, rng)
    return ScriptedMotion(poses, np.asarray(trans, dtype=np.float64), stance)
