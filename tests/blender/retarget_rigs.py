"""Test rigs and checks shared by the retargeting tests (numpy + scipy; no code under test).

A Mixamo-style armature as Mixamo's FBX files arrive in Blender: ``mixamorig:`` names, Y-up
armature space in centimetres, the object turned +90 degrees about X and scaled 0.01, arms in an
A-pose (not a T-pose) and bone rolls all different, so bone spaces differ from the source's.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.spatial.transform import Rotation

# name, parent, head (cm, y up, facing +z, character's left = +x), tail, roll (degrees)
_LEFT = [
    ("LeftShoulder", "Spine2", (6.0, 145.0, -1.0), (17.0, 144.0, -2.0), 15.0),
    ("LeftArm", "LeftShoulder", (17.0, 144.0, -2.0), (37.7, 126.6, -3.0), -40.0),
    ("LeftForeArm", "LeftArm", (37.7, 126.6, -3.0), (56.8, 110.6, 0.0), 65.0),
    ("LeftHand", "LeftForeArm", (56.8, 110.6, 0.0), (63.0, 105.0, 1.0), -20.0),
    ("LeftUpLeg", "Hips", (9.0, 95.0, 0.0), (9.5, 52.0, 1.0), 5.0),
    ("LeftLeg", "LeftUpLeg", (9.5, 52.0, 1.0), (10.0, 9.0, -3.0), -12.0),
    ("LeftFoot", "LeftLeg", (10.0, 9.0, -3.0), (10.0, 2.0, 10.0), 30.0),
    ("LeftToeBase", "LeftFoot", (10.0, 2.0, 10.0), (10.0, 2.0, 18.0), 0.0),
]
MIXAMO_BONES = [
    ("Hips", None, (0.0, 100.0, 0.0), (0.0, 110.0, 1.0), 0.0),
    ("Spine", "Hips", (0.0, 110.0, 1.0), (0.0, 122.0, 1.0), 10.0),
    ("Spine1", "Spine", (0.0, 122.0, 1.0), (0.0, 136.0, 0.0), -25.0),
    ("Spine2", "Spine1", (0.0, 136.0, 0.0), (0.0, 150.0, -1.0), 0.0),
    ("Neck", "Spine2", (0.0, 150.0, -1.0), (0.0, 160.0, 1.0), 45.0),
    ("Head", "Neck", (0.0, 160.0, 1.0), (0.0, 178.0, 1.0), 0.0),
    *_LEFT,
    *[(n.replace("Left", "Right"), p.replace("Left", "Right"), (-h[0], h[1], h[2]), (-t[0], t[1], t[2]), -r)
      for n, p, h, t, r in _LEFT],
]  # fmt: skip
MIXAMO_BONES = [("mixamorig:" + n, "mixamorig:" + p if p else None, h, t, r) for n, p, h, t, r in MIXAMO_BONES]

# Limb and spine segments checked: (SMPL joint, SMPL end joint, mixamo bone, mixamo end bone).
MIXAMO_SEGMENTS = [
    (j, c, "mixamorig:" + b, "mixamorig:" + e) for j, c, b, e in [
        ("left_shoulder", "left_elbow", "LeftArm", "LeftForeArm"),
        ("right_shoulder", "right_elbow", "RightArm", "RightForeArm"),
        ("left_elbow", "left_wrist", "LeftForeArm", "LeftHand"),
        ("right_elbow", "right_wrist", "RightForeArm", "RightHand"),
        ("left_hip", "left_knee", "LeftUpLeg", "LeftLeg"),
        ("right_hip", "right_knee", "RightUpLeg", "RightLeg"),
        ("left_knee", "left_ankle", "LeftLeg", "LeftFoot"),
        ("right_knee", "right_ankle", "RightLeg", "RightFoot"),
        ("spine1", "spine2", "Spine", "Spine1"),
        ("spine2", "spine3", "Spine1", "Spine2"),
        ("spine3", "neck", "Spine2", "Neck"),
    ]
]  # fmt: skip

MIXAMO_OBJECT = np.diag([0.01, 0.01, 0.01, 1.0]) @ np.block(
    [[Rotation.from_euler("x", 90, degrees=True).as_matrix(), np.zeros((3, 1))], [np.zeros((1, 3)), np.ones((1, 1))]])


def bone_matrix(head, tail, roll_deg: float) -> np.ndarray:
    """Blender's rest matrix of an edit bone (``vec_roll_to_mat3`` + head), armature space."""
    head, tail = np.asarray(head, float), np.asarray(tail, float)
    nor = (tail - head) / np.linalg.norm(tail - head)
    x, y, z = nor
    theta = 1.0 + y
    theta_alt = x * x + z * z
    if theta > 6.1e-3 or theta_alt > 2.5e-4**2:
        if theta <= 6.1e-3:
            theta = theta_alt * 0.5 + theta_alt * theta_alt * 0.125
        col0 = (1 - x * x / theta, -x, -x * z / theta)
        col2 = (-x * z / theta, -z, 1 - z * z / theta)
        b = np.column_stack([col0, (x, y, z), col2])
    else:
        b = np.diag([-1.0, -1.0, 1.0])
    r = Rotation.from_rotvec(nor * math.radians(roll_deg)).as_matrix()
    m = np.eye(4)
    m[:3, :3] = r @ b
    m[:3, 3] = head
    return m


def rig_arrays(bones=MIXAMO_BONES):
    names = [b[0] for b in bones]
    parents = np.array([names.index(b[1]) if b[1] else -1 for b in bones])
    rest = np.stack([bone_matrix(h, t, r) for _, _, h, t, r in bones])
    tails = np.array([t for *_, t, _ in bones], dtype=float)
    return names, parents, rest, tails


def pose_world(names, parents, rest, obj, keyed: dict[str, np.ndarray], root: str | None = None,
               root_loc: np.ndarray | None = None) -> np.ndarray:
    """(N, B, 4, 4) world matrices of posed bones: X = X_parent · rest_parent⁻¹ · rest · basis.

    keyed: bone -> (N, 4) quaternions (w, x, y, z); other bones keep an identity basis.
    """
    n = len(next(iter(keyed.values())))
    X = np.zeros((n, len(names), 4, 4))
    for b, name in enumerate(names):  # parents come first in these lists
        basis = np.tile(np.eye(4), (n, 1, 1))
        if name in keyed:
            q = keyed[name]
            basis[:, :3, :3] = Rotation.from_quat(np.concatenate([q[:, 1:], q[:, :1]], axis=1)).as_matrix()
        if name == root and root_loc is not None:
            basis[:, :3, 3] = root_loc
        p = parents[b]
        X[:, b] = (X[:, p] @ np.linalg.inv(rest[p]) @ rest[b] @ basis) if p >= 0 else rest[b] @ basis
    return obj @ X


def angle_deg(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    u = u / np.linalg.norm(u, axis=-1, keepdims=True)
    v = v / np.linalg.norm(v, axis=-1, keepdims=True)
    return np.degrees(np.arctan2(np.linalg.norm(np.cross(u, v), axis=-1), np.sum(u * v, axis=-1)))


def synth_contacts(world_joints: np.ndarray, fps: float, ankle_ids=(7, 8), max_speed: float = 0.7) -> np.ndarray:
    """(N, 4) contacts where a source ankle moves slower than ``max_speed`` m/s (runs of 2+ frames)."""
    n = len(world_joints)
    c = np.zeros((n, 4))
    for col, j in zip((0, 2), ankle_ids, strict=True):
        v = np.linalg.norm(np.gradient(world_joints[:, j], axis=0), axis=-1) * fps
        slow = v < max_speed
        runs = np.diff(np.concatenate([[0], slow.astype(int), [0]]))
        for a, b in zip(np.flatnonzero(runs == 1), np.flatnonzero(runs == -1), strict=True):
            if b - a >= 2:
                c[a:b, col] = 1.0
    return c


def contact_runs(planted: np.ndarray) -> list[tuple[int, int]]:
    x = np.diff(np.concatenate([[0], planted.astype(int), [0]]))
    return list(zip(np.flatnonzero(x == 1).tolist(), np.flatnonzero(x == -1).tolist(), strict=True))


def build_mixamo(name="Armature", bones=MIXAMO_BONES):
    """The Mixamo-style rig in the current Blender scene, as Blender's FBX importer leaves a Mixamo
    character (needs bpy)."""
    import bpy

    arm = bpy.data.armatures.new(name)
    obj = bpy.data.objects.new(name, arm)
    bpy.context.scene.collection.objects.link(obj)
    obj.rotation_euler = (math.pi / 2, 0.0, 0.0)
    obj.scale = (0.01, 0.01, 0.01)
    bpy.context.view_layer.objects.active = obj
    bpy.ops.object.mode_set(mode="EDIT")
    made = {}
    for n, p, h, t, r in bones:
        eb = arm.edit_bones.new(n)
        eb.head, eb.tail, eb.roll = h, t, math.radians(r)
        if p:
            eb.parent = made[p]
        made[n] = eb
    bpy.ops.object.mode_set(mode="OBJECT")
    return obj
