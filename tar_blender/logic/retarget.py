"""Retarget SMPL-layout motion to another armature (numpy only, no bpy).

Conventions (Blender's): a bone's rest matrix ``L`` (``bone.matrix_local``) is in armature space,
its Y axis points from head to tail; a pose bone's armature-space matrix is
``X = X_parent · L_parent⁻¹ · L · B`` with ``B`` its basis (rotation_quaternion, location), or
``X = L · B`` for a root bone. Rotations are 3×3 arrays, quaternions (w, x, y, z).

The transfer, per mapped target bone b driven by SMPL joint j:

* The source's world rotation change of joint j since its rest pose, ``D_j``, is what moves the
  segment j → child(j) (e.g. shoulder → elbow); its rest direction is ``d_j``.
* Rest-pose correction: ``C_b`` is the smallest rotation turning the target bone's rest direction
  (its Y axis, or the Y axis of the bone ``refs`` names) onto ``d_j`` (after ``M``, the turn about
  world Z that makes the rest rigs face the same way). The target's rest pose need not be a T-pose.
* Target world rotation on each frame: ``W_b = M D_j Mᵀ C_b T_b`` (``T_b`` its rest world rotation),
  so the bone's direction equals the source segment's direction on every frame; it is then
  expressed in the bone's own space through the target's hierarchy (unmapped bones in between
  keep their rest relation).
* Root motion: the midpoint of the thighs follows the midpoint of the source's hips, scaled by the
  ratio of leg lengths (or hip heights) about the floor; it is written as the location of the
  root bone.
* Foot IK (optional): where the motion's ``contacts`` (N, 4: left heel, left toe, right heel,
  right toe, probabilities) say a foot is planted, the heel (ankle) or, on the toe only, the ball
  of the foot stays where it is; a two-bone solve on thigh and shin reaches it, easing in and out.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .bone_maps import BoneMap, BoneMapError
from .rotations import continuous_quaternions, matrix_to_quaternion
from .skeleton import JOINT_NAMES, PARENTS

__all__ = [
    "SEGMENT_CHILD",
    "RetargetOptions",
    "RetargetResult",
    "SourceMotion",
    "TargetRig",
    "decompose",
    "min_rotation",
    "retarget",
    "source_fk",
    "source_from_motion",
]

_J = {n: i for i, n in enumerate(JOINT_NAMES)}
# The joint whose position marks the end of each joint's segment (its "bone" direction).
SEGMENT_CHILD = {
    "pelvis": "spine1", "left_hip": "left_knee", "right_hip": "right_knee", "spine1": "spine2",
    "left_knee": "left_ankle", "right_knee": "right_ankle", "spine2": "spine3", "left_ankle": "left_foot",
    "right_ankle": "right_foot", "spine3": "neck", "neck": "head", "left_collar": "left_shoulder",
    "right_collar": "right_shoulder", "left_shoulder": "left_elbow", "right_shoulder": "right_elbow",
    "left_elbow": "left_wrist", "right_elbow": "right_wrist", "left_wrist": "left_hand", "right_wrist": "right_hand",
}  # fmt: skip
_FOOT_JOINTS = ("left_ankle", "right_ankle", "left_foot", "right_foot")
_SIDES = (("left", 0), ("right", 2))  # contacts columns: heel, toe of each side


@dataclass
class SourceMotion:
    """An SMPL-layout armature's animation: 24 bones named and parented like SMPL's joints."""

    rest: np.ndarray  # (24, 3) bone heads (joints), armature space
    basis: np.ndarray  # (N, 24, 3, 3) pose-bone rotations
    root_loc: np.ndarray  # (N, 3) pelvis pose-bone location
    matrix_world: np.ndarray = field(default_factory=lambda: np.eye(4))  # the armature object's
    rest_rot: np.ndarray | None = None  # (24, 3, 3) bone rest rotations; None: identity (the importer's rig)
    contacts: np.ndarray | None = None  # (N, 4) left heel, left toe, right heel, right toe in 0..1

    @property
    def num_frames(self) -> int:
        return int(self.basis.shape[0])


@dataclass
class TargetRig:
    names: list[str]
    parents: np.ndarray  # (B,) parent index, -1 for a root
    rest: np.ndarray  # (B, 4, 4) bone.matrix_local
    tails: np.ndarray  # (B, 3) bone.tail_local
    matrix_world: np.ndarray = field(default_factory=lambda: np.eye(4))
    inherit_rotation: np.ndarray | None = None  # (B,) bool; None: all True
    # bone -> bone whose armature-space transform it takes (a full Copy Transforms constraint, as
    # Rigify's ORG bones follow its controls); only unkeyed bones follow theirs
    copies: dict[int, int] = field(default_factory=dict)

    def index(self) -> dict[str, int]:
        return {n: i for i, n in enumerate(self.names)}


@dataclass
class RetargetOptions:
    root_motion: bool = True  # False: the hips keep their place on the floor, only height follows
    scale: str = "leg"  # "leg" (leg-length ratio), "hip" (hip-height ratio) or "none"
    foot_ik: bool = True  # pin planted feet where the source has contacts
    contact_threshold: float = 0.5
    ik_blend: int = 4  # frames over which the IK eases in and out around a contact


@dataclass
class RetargetResult:
    bones: list[str]  # the keyed target bones
    quaternions: np.ndarray  # (N, len(bones), 4) their rotation_quaternion, continuous in time
    root_bone: str | None
    root_location: np.ndarray | None  # (N, 3) the root bone's location channel
    scale: float  # target / source leg length (or hip height)
    floor_source: float  # world z of the source's standing foot joints
    floor_target: float  # world z of the target's foot joints at rest
    heads: dict[str, np.ndarray]  # posed head of each keyed bone, target armature space (N, 3)
    world_rotations: dict[str, np.ndarray]  # target armature-space rotation of each keyed bone (N, 3, 3)
    contact_frames: dict[str, np.ndarray] = field(default_factory=dict)  # side -> (N,) bool planted
    notes: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------------------------
# small maths
# --------------------------------------------------------------------------------------------


def decompose(matrix: np.ndarray) -> tuple[np.ndarray, float, np.ndarray]:
    """A 4x4 object matrix -> (rotation (3,3), uniform scale, translation (3,))."""
    m = np.asarray(matrix, dtype=np.float64)
    a = m[:3, :3]
    u, s, vt = np.linalg.svd(a)
    rot = u @ vt
    if np.linalg.det(rot) < 0:  # mirrored: keep a rotation, scale takes the sign
        rot = u @ np.diag([1.0, 1.0, -1.0]) @ vt
    return rot, float(np.mean(s)), m[:3, 3].copy()


def _normalize(v: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(v, axis=-1, keepdims=True)
    return v / np.where(n < 1e-12, 1.0, n)


def axis_angle_matrix(axis: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """Rodrigues: (..., 3) unit axes, (...) angles -> (..., 3, 3)."""
    axis = np.asarray(axis, dtype=np.float64)
    angle = np.asarray(angle, dtype=np.float64)
    x, y, z = np.moveaxis(axis, -1, 0)
    zero = np.zeros_like(x)
    K = np.stack([zero, -z, y, z, zero, -x, -y, x, zero], axis=-1).reshape(axis.shape[:-1] + (3, 3))
    s, c = np.sin(angle)[..., None, None], np.cos(angle)[..., None, None]
    return np.eye(3) + s * K + (1 - c) * (K @ K)


def min_rotation(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """The smallest rotation taking direction u to direction v, (..., 3) -> (..., 3, 3)."""
    u, v = np.broadcast_arrays(_normalize(np.asarray(u, dtype=np.float64)), _normalize(np.asarray(v, np.float64)))
    axis = np.cross(u, v)
    sin = np.linalg.norm(axis, axis=-1)
    cos = np.clip(np.sum(u * v, axis=-1), -1.0, 1.0)
    # Opposite directions: any axis perpendicular to u.
    helper = np.where(np.abs(u[..., :1]) < 0.9, np.array([1.0, 0, 0]), np.array([0, 1.0, 0]))
    perp = _normalize(np.cross(u, helper))
    axis = np.where((sin < 1e-9)[..., None], perp, axis / np.where(sin < 1e-12, 1.0, sin)[..., None])
    return axis_angle_matrix(axis, np.arctan2(sin, cos))


def _mT(a: np.ndarray) -> np.ndarray:
    return np.swapaxes(a, -1, -2)


def _smoothstep(x: np.ndarray | float) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


# --------------------------------------------------------------------------------------------
# the source
# --------------------------------------------------------------------------------------------


def source_fk(src: SourceMotion) -> tuple[np.ndarray, np.ndarray]:
    """World joint positions (N, 24, 3) and world rotation changes since rest D (N, 24, 3, 3)."""
    P, G, Q = _source_fk(src)
    return P, Q @ np.stack(G, axis=1) @ Q.T


def _times(a: np.ndarray, c: np.ndarray) -> np.ndarray:
    """(N, 3, 3) @ (3, 3) as one (3N, 3) @ (3, 3) product (several times faster than a stack of
    3x3 products), skipping identities (the importer's rig has identity rest rotations)."""
    if np.array_equal(c, np.eye(3)):
        return a
    a = np.ascontiguousarray(a)
    return (a.reshape(-1, 3) @ c).reshape(a.shape)


def _before(c: np.ndarray, a: np.ndarray) -> np.ndarray:
    """(3, 3) @ (N, 3, 3), through the transposes: c a = (aᵀ cᵀ)ᵀ."""
    return np.ascontiguousarray(_mT(_times(_mT(a), c.T)))


def _source_fk(src: SourceMotion) -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
    """World joint positions (N, 24, 3), per joint the armature-space rotation change since rest
    G_j (N, 3, 3), and the object's rotation Q (world change D_j = Q G_j Qᵀ)."""
    Q, s, o = decompose(src.matrix_world)
    n = src.num_frames
    rest = np.asarray(src.rest, dtype=np.float64)
    L = np.broadcast_to(np.eye(3), (24, 3, 3)) if src.rest_rot is None else np.asarray(src.rest_rot, np.float64)
    B = np.asarray(src.basis, dtype=np.float64)
    R: list[np.ndarray] = []
    P = np.empty((n, 24, 3))
    for j in range(24):
        p = PARENTS[j]
        Bj = np.ascontiguousarray(B[:, j])  # contiguous stacks multiply several times faster
        if p < 0:
            R.append(L[j] @ Bj)
            P[:, j] = rest[j] + np.asarray(src.root_loc, np.float64) @ L[j].T
        else:
            R.append(_times(R[p], L[p].T @ L[j]) @ Bj)
            P[:, j] = P[:, p] + R[p] @ (L[p].T @ (rest[j] - rest[p]))
    G = [_times(R[j], L[j].T) for j in range(24)]  # armature-space change since rest
    return s * P @ Q.T + o, G, Q


def source_from_motion(poses: np.ndarray, trans: np.ndarray, rest: np.ndarray,
                       contacts: np.ndarray | None = None) -> SourceMotion:
    """The source as the importer's rig animates it: SMPL rotations (root placed in the camera
    view, see ``keys.root_motion``) on bones with identity rest rotations, the object at +90° about X."""
    from .keys import root_motion
    from .rotations import axis_angle_to_quaternion, quaternion_to_matrix

    poses = np.asarray(poses, dtype=np.float64)
    n = len(poses)
    basis = quaternion_to_matrix(axis_angle_to_quaternion(poses.reshape(n, 24, 3)))
    root_rot, root_loc = root_motion(poses, trans, rest[0])
    basis[:, 0] = root_rot
    world = np.eye(4)
    world[1:3, 1:3] = [[0.0, -1.0], [1.0, 0.0]]  # Rx(+90)
    return SourceMotion(rest=np.asarray(rest, np.float64), basis=basis, root_loc=root_loc, matrix_world=world,
                        contacts=contacts)


# --------------------------------------------------------------------------------------------
# the target
# --------------------------------------------------------------------------------------------


class _Target:
    """The target rig's arrays, restricted to the bones the transfer needs, in parent-first order."""

    def __init__(self, rig: TargetRig, needed: list[int]):
        self.rig = rig
        parents = np.asarray(rig.parents, dtype=np.int64)
        keyed = set(needed)
        self.copies = {b: c for b, c in rig.copies.items() if b not in keyed}
        # Parent-first order (and copied bones before the bones that copy them), only what is needed.
        order: list[int] = []
        state: dict[int, int] = {}  # 1 visiting, 2 done
        for start in needed:
            stack = [(start, False)]
            while stack:
                b, expanded = stack.pop()
                if b < 0 or state.get(b) == 2:
                    continue
                if expanded:
                    state[b] = 2
                    order.append(b)
                    continue
                if state.get(b) == 1:
                    raise ValueError(f"bone {rig.names[b]!r} depends on itself through its constraints")
                state[b] = 1
                stack.append((b, True))
                stack.append((int(parents[b]), False))
                if b in self.copies:
                    stack.append((self.copies[b], False))
        self.order = order
        self.parents = parents
        rest = np.asarray(rig.rest, dtype=np.float64)
        self.L = rest[:, :3, :3]
        self.t = rest[:, :3, 3]
        self.tails = np.asarray(rig.tails, dtype=np.float64)
        inh = rig.inherit_rotation
        self.inherit = np.ones(len(rig.names), bool) if inh is None else np.asarray(inh, bool)
        self.Q, self.s, self.o = decompose(rig.matrix_world)

    def world(self, p_arm: np.ndarray) -> np.ndarray:
        return self.s * p_arm @ self.Q.T + self.o

    def fk(self, desired: dict[int, np.ndarray], n: int, root: int | None = None, shift=None):
        """Armature-space rotations and heads of the kept bones; ``shift`` (N, 3) moves ``root``."""
        R: dict[int, np.ndarray] = {}
        H: dict[int, np.ndarray] = {}
        for b in self.order:
            p = int(self.parents[b])
            if b in self.copies:
                R[b], H[b] = R[self.copies[b]], H[self.copies[b]]
                continue
            if b in desired:
                R[b] = desired[b]
            elif p >= 0 and self.inherit[b]:
                R[b] = _times(R[p], self.L[p].T @ self.L[b])
            else:
                R[b] = np.broadcast_to(self.L[b], (n, 3, 3))
            if p < 0:
                H[b] = np.broadcast_to(self.t[b], (n, 3)).copy()
            else:
                H[b] = H[p] + R[p] @ (self.L[p].T @ (self.t[b] - self.t[p]))
            if b == root and shift is not None:
                H[b] = H[b] + shift
        return R, H

    def shifted(self, H: dict[int, np.ndarray], root: int, delta: np.ndarray) -> dict[int, np.ndarray]:
        """Heads after moving ``root`` by ``delta`` (N, 3): it and everything that hangs from it."""
        moved = {root}
        for b in self.order:
            if b not in moved and (int(self.parents[b]) in moved or self.copies.get(b) in moved):
                moved.add(b)
        return {b: (h + delta if b in moved else h) for b, h in H.items()}

    def location(self, root: int, R: dict[int, np.ndarray], shift: np.ndarray) -> np.ndarray:
        """The root bone's location channel (N, 3) that moves its head by ``shift`` (armature space)."""
        p = int(self.parents[root])
        if p >= 0:
            parent_rot = self.L[p] @ _mT(R[p])  # (N, 3, 3): Lp · R_pᵀ
            return np.einsum("ij,njk,nk->ni", self.L[root].T, parent_rot, shift)
        return shift @ self.L[root]

    def basis(self, b: int, R: dict[int, np.ndarray]) -> np.ndarray:
        """The pose bone's own rotation for an armature-space rotation R[b] (parents in R)."""
        p = int(self.parents[b])
        if p >= 0 and self.inherit[b]:  # (R_p L_pᵀ L_b)ᵀ R_b
            return _mT(_times(R[p], self.L[p].T @ self.L[b])) @ R[b]
        return _before(self.L[b].T, R[b])


def _facing(src_rest_w: np.ndarray, tgt: _Target, idx: dict[str, int]) -> np.ndarray:
    """The turn about world Z that makes the source's rest left-right hip axis match the target's."""
    if "left_hip" not in idx or "right_hip" not in idx:
        return np.eye(3)
    a = src_rest_w[_J["left_hip"]] - src_rest_w[_J["right_hip"]]
    b = tgt.world(tgt.t[idx["left_hip"]]) - tgt.world(tgt.t[idx["right_hip"]])
    a[2] = b[2] = 0.0
    if np.linalg.norm(a) < 1e-9 or np.linalg.norm(b) < 1e-9:
        return np.eye(3)
    ang = np.arctan2(a[0] * b[1] - a[1] * b[0], a @ b)
    c, s = np.cos(ang), np.sin(ang)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _leg_length_src(rest_w: np.ndarray) -> float:
    out = []
    for side in ("left", "right"):
        h, k, a = (rest_w[_J[f"{side}_{x}"]] for x in ("hip", "knee", "ankle"))
        out.append(np.linalg.norm(k - h) + np.linalg.norm(a - k))
    return float(np.mean(out))


def _leg_length_tgt(tgt: _Target, idx: dict[str, int]) -> float | None:
    out = []
    for side in ("left", "right"):
        hip, knee, ankle = idx.get(f"{side}_hip"), idx.get(f"{side}_knee"), idx.get(f"{side}_ankle")
        if hip is None or knee is None:
            continue
        end = tgt.t[ankle] if ankle is not None else tgt.tails[knee]
        out.append(tgt.s * (np.linalg.norm(tgt.t[knee] - tgt.t[hip]) + np.linalg.norm(end - tgt.t[knee])))
    return float(np.mean(out)) if out else None


def _two_bone_ik(H, K, A, target, R_thigh, R_shin, hinge):
    """Rotate thigh and shin (armature space, (n, 3, 3)) so the ankle reaches ``target``.

    The knee bends in its current plane (``hinge`` where the leg is straight); the hip-ankle
    line then swings onto the target. Unreachable targets stop the leg just short of straight.
    """
    u1, u2 = K - H, A - K
    a, b = np.linalg.norm(u1, axis=-1), np.linalg.norm(u2, axis=-1)
    e = A - H
    t = target - H
    d = np.clip(np.linalg.norm(t, axis=-1), np.abs(a - b) + 1e-6, (a + b) * (1 - 1e-6))
    n = np.cross(u1, e)
    nn = np.linalg.norm(n, axis=-1)
    n = np.where((nn < 1e-9 * a * a)[:, None], _normalize(hinge), n / np.maximum(nn, 1e-300)[:, None])
    cos0 = np.sum(u1 * e, axis=-1) / np.maximum(a * np.linalg.norm(e, axis=-1), 1e-300)
    alpha0 = np.arccos(np.clip(cos0, -1, 1))
    alpha = np.arccos(np.clip((a * a + d * d - b * b) / (2 * a * d), -1, 1))
    bend = axis_angle_matrix(n, alpha0 - alpha)
    u1n = np.einsum("nij,nj->ni", bend, u1)
    u2n = d[:, None] * _normalize(e) - u1n
    shin_turn = min_rotation(u2, u2n)
    swing = min_rotation(e, t)
    return swing @ bend @ R_thigh, swing @ shin_turn @ R_shin


def _contact_segments(planted: np.ndarray) -> list[tuple[int, int]]:
    """[start, stop) runs of True."""
    x = np.concatenate([[False], planted, [False]]).astype(np.int8)
    d = np.diff(x)
    return list(zip(np.flatnonzero(d == 1).tolist(), np.flatnonzero(d == -1).tolist(), strict=True))


def _ease(offsets: np.ndarray, mask: np.ndarray, blend: int) -> np.ndarray:
    """Extend per-frame offsets (valid where mask) to ``blend`` frames either side, fading out."""
    n = len(mask)
    out = np.where(mask[:, None], offsets, 0.0)
    if blend <= 0 or not mask.any():
        return out
    idx = np.arange(n)
    valid = np.flatnonzero(mask)
    left = valid[np.clip(np.searchsorted(valid, idx, side="right") - 1, 0, len(valid) - 1)]
    right = valid[np.clip(np.searchsorted(valid, idx, side="left"), 0, len(valid) - 1)]
    wl = np.where(left <= idx, _smoothstep(1 - (idx - left) / (blend + 1)), 0.0)
    wr = np.where(right >= idx, _smoothstep(1 - (right - idx) / (blend + 1)), 0.0)
    total = np.maximum(wl + wr, 1.0)
    eased = (wl[:, None] * offsets[left] + wr[:, None] * offsets[right]) / total[:, None]
    return np.where(mask[:, None], offsets, eased)


def _ankle_goals(tg: _Target, R, H, ft: int, toe_b: int | None, heel, toe, blend: int):
    """Frames the IK acts on and the ankle position it must reach there (armature space).

    A heel contact pins the ankle; a toe-only contact pins the ball of the foot (the head of the
    toe bone, else the foot's tail) and the ankle turns about it with the foot's rotation. Runs that
    follow each other hand the pinned point on; a fresh run pins where the foot is on average.
    """
    planted = heel | toe
    if not planted.any():
        return None
    ankle = H[ft]
    if toe_b is not None:
        toe_pt = H[toe_b]
    else:
        toe_pt = ankle + np.einsum("nij,j->ni", R[ft], tg.L[ft].T @ (tg.tails[ft] - tg.t[ft]))
    v = toe_pt - ankle  # rigid with the foot, whose rotation the IK keeps
    kind = np.where(heel, 1, np.where(toe, 2, 0))
    goal = ankle.copy()
    prev_end, prev_ankle = -1, None
    for a, b in _contact_segments(planted):
        cuts = [a] + [f for f in range(a + 1, b) if kind[f] != kind[f - 1]] + [b]
        for s0, s1 in zip(cuts[:-1], cuts[1:], strict=False):
            heel_run = kind[s0] == 1
            if prev_end == s0 and prev_ankle is not None:  # continue where the last run left off
                pin = prev_ankle if heel_run else prev_ankle + v[s0]
            else:
                pin = (ankle if heel_run else toe_pt)[s0:s1].mean(axis=0)
            goal[s0:s1] = pin if heel_run else pin - v[s0:s1]
            prev_end, prev_ankle = s1, goal[s1 - 1]
    offs = _ease(goal - ankle, planted, blend)
    active = np.linalg.norm(offs, axis=-1) > 1e-12 * (1.0 + np.abs(ankle).max())
    if not active.any():
        return None
    f = np.flatnonzero(active)
    return f, ankle[f] + offs[f]


def _hip_drop(tg: _Target, H, goals: dict, up: np.ndarray, n: int, blend: int) -> np.ndarray:
    """(N,) how far the hips must come down (along ``up``) for every leg to reach its goal."""
    drop = np.zeros(n)
    for th, sh, ft, f, target in goals.values():
        reach = (np.linalg.norm(tg.t[sh] - tg.t[th]) + np.linalg.norm(tg.t[ft] - tg.t[sh])) * (1 - 1e-4)
        w = target - H[th][f]
        wu = w @ up
        ww = np.sum(w * w, axis=-1)
        disc = wu * wu - (ww - reach * reach)
        need = -wu - np.sqrt(np.maximum(disc, 0.0))  # the smaller root: the least drop that reaches
        need = np.where(ww > reach * reach, np.maximum(need, 0.0), 0.0)
        drop[f] = np.maximum(drop[f], need)
    if not drop.any() or blend <= 0:
        return drop
    eased = drop.copy()
    for k in range(1, blend + 1):  # ease in and out: a max over neighbours, fading with distance
        w = _smoothstep(1 - k / (blend + 1))
        eased[k:] = np.maximum(eased[k:], w * drop[:-k])
        eased[:-k] = np.maximum(eased[:-k], w * drop[k:])
    return eased


# --------------------------------------------------------------------------------------------
# the transfer
# --------------------------------------------------------------------------------------------


@dataclass
class _Mapping:
    """The bone map resolved against the target rig: bone indices, and the rig's needed arrays."""

    names: dict[str, int]  # target bone name -> index
    pairs: list[tuple[str, str]]  # (SMPL joint, target bone), the map's order
    by_joint: dict[str, int]  # joint -> its first target bone
    root_name: str | None
    root: int | None  # the bone carrying the root motion
    tg: _Target


def _resolve(rig: TargetRig, bmap: BoneMap, rig_name: str) -> _Mapping:
    names = rig.index()
    bmap.check_rig(rig.names, rig_name)
    pairs = bmap.pairs()
    if not pairs:
        raise BoneMapError(f"the bone map '{bmap.name}' maps no bone")
    by_joint: dict[str, int] = {}
    for j, b in pairs:
        by_joint.setdefault(j, names[b])
    root_name = bmap.root_bone()
    root = names[root_name] if root_name else None
    needed = [names[b] for _, b in pairs] + [names[r] for r in bmap.refs.values()]
    needed += [root] if root is not None else []
    return _Mapping(names, pairs, by_joint, root_name, root, _Target(rig, needed))


def _source_rest_world(src: SourceMotion) -> np.ndarray:
    """The source's joints in its rest pose, world space (24, 3)."""
    rest_src = SourceMotion(src.rest, np.broadcast_to(np.eye(3), (1, 24, 3, 3)), np.zeros((1, 3)),
                            src.matrix_world, src.rest_rot)
    return source_fk(rest_src)[0][0]


def _rest_direction(mp: _Mapping, bmap: BoneMap, joint: str, bone: str) -> np.ndarray:
    """A target bone's rest direction, world axes: towards the next mapped joint's bone, else its
    (or its ref's) Y axis."""
    tg, i = mp.tg, mp.names[bone]
    if bone not in bmap.refs and bmap.directions == "joints":
        child = mp.by_joint.get(SEGMENT_CHILD[joint])
        if child is not None:
            d = tg.t[child] - tg.t[i]
            if np.linalg.norm(d) > 1e-6 * np.linalg.norm(tg.tails[i] - tg.t[i]):  # not coincident heads
                return tg.Q @ d
    return tg.Q @ tg.L[mp.names[bmap.refs.get(bone, bone)]][:, 1]


def _rest_alignment(mp: _Mapping, bmap: BoneMap, rest_w: np.ndarray, M: np.ndarray) -> dict[str, np.ndarray]:
    """C_b (3, 3) per mapped bone: its rest direction turned onto the source segment's (faced by M)."""
    align: dict[str, np.ndarray] = {}
    for j, b in mp.pairs:
        if j in SEGMENT_CHILD:
            segment = M @ (rest_w[_J[SEGMENT_CHILD[j]]] - rest_w[_J[j]])
            align[b] = min_rotation(_rest_direction(mp, bmap, j, b), segment)
    for j, b in mp.pairs:
        if b in align:
            continue
        pj = JOINT_NAMES[PARENTS[_J[j]]]  # a leaf (head, hands, toes): keep its rest relation to the parent
        parent_bones = [bb for jj, bb in mp.pairs if jj == pj]
        align[b] = align[parent_bones[0]] if parent_bones else np.eye(3)
    return align


def _desired_rotations(mp: _Mapping, align: dict[str, np.ndarray], G_src: list[np.ndarray], Qs: np.ndarray,
                       M: np.ndarray) -> dict[int, np.ndarray]:
    """Armature-space rotation (N, 3, 3) per mapped bone: Qtᵀ (M D_j Mᵀ) C_b T_b with D_j = Qs G_j Qsᵀ,
    T_b = Qt L_b, folded into constants on either side of G_j (two small products per bone and frame)."""
    Qt = mp.tg.Q
    left = Qt.T @ M @ Qs
    desired: dict[int, np.ndarray] = {}
    for j, b in mp.pairs:
        i = mp.names[b]
        right = Qs.T @ M.T @ align[b] @ Qt @ mp.tg.L[i]
        desired[i] = _times(_before(left, G_src[_J[j]]), right)
    return desired


def _floors(P_src: np.ndarray, mp: _Mapping) -> tuple[float, float]:
    """World z of the source's standing feet and of the target's foot bones at rest (any mapped
    bone's where no foot is mapped)."""
    floor_s = float(np.percentile(P_src[:, [_J[j] for j in _FOOT_JOINTS], 2].min(axis=1), 5))
    feet = [mp.by_joint[j] for j in _FOOT_JOINTS if j in mp.by_joint] or [mp.names[b] for _, b in mp.pairs]
    floor_t = float(min(mp.tg.world(mp.tg.t[b])[2] for b in feet))
    return floor_s, floor_t


def _has_thighs(by_joint: dict[str, int]) -> bool:
    return "left_hip" in by_joint and "right_hip" in by_joint


def _hip_centre(heads, by_joint: dict[str, int]):
    """The thighs' heads' midpoint, else the pelvis bone's head; ``heads`` is indexed by bone
    ((B, 3) rest heads, or a dict of (N, 3) posed heads)."""
    if _has_thighs(by_joint):
        return 0.5 * (heads[by_joint["left_hip"]] + heads[by_joint["right_hip"]])
    return heads[by_joint["pelvis"]]


def _scale(opt: RetargetOptions, rest_w: np.ndarray, mp: _Mapping, hip_height_t: float,
           notes: list[str]) -> float:
    """Target / source leg length (or hip height above the floor), by ``opt.scale``."""
    if opt.scale == "none":
        return 1.0
    if opt.scale == "hip":
        hips_z = rest_w[[_J["left_hip"], _J["right_hip"]], 2].mean()
        src_h = float(hips_z - rest_w[[_J[j] for j in _FOOT_JOINTS], 2].min())
        return hip_height_t / src_h
    if opt.scale == "leg":
        tgt_leg = _leg_length_tgt(mp.tg, mp.by_joint)
        if tgt_leg is None:
            notes.append("no legs mapped: root motion is not scaled")
            return 1.0
        return tgt_leg / _leg_length_src(rest_w)
    raise ValueError(f"scale must be 'leg', 'hip' or 'none', not {opt.scale!r}")


def _root_goal(opt: RetargetOptions, tg: _Target, M: np.ndarray, k: float, P_src: np.ndarray,
               hips_t_rest: np.ndarray, floors: tuple[float, float]) -> np.ndarray:
    """(N, 3) where the target's hip midpoint goes, target armature space: the source's hip
    midpoint, faced by M and scaled by k about the floor."""
    floor_s, floor_t = floors
    hips_src = 0.5 * (P_src[:, _J["left_hip"]] + P_src[:, _J["right_hip"]])  # (N, 3) world
    anchor_s = np.array([hips_src[0, 0], hips_src[0, 1], floor_s])
    anchor_t = np.array([hips_t_rest[0], hips_t_rest[1], floor_t])
    rel = (hips_src - anchor_s) @ M.T
    if not opt.root_motion:
        rel[:, :2] = 0.0
    goal_w = anchor_t + k * rel
    return ((goal_w - tg.o) @ tg.Q) / tg.s


def _leg_goals(opt: RetargetOptions, contacts: np.ndarray, n: int, mp: _Mapping, R, H, notes: list[str]):
    """Per side whose leg is mapped: the planted frames (N,) bool, and where a foot is planted
    (thigh, shin, foot, IK frames (F,), ankle goals (F, 3))."""
    c = np.asarray(contacts, dtype=np.float64)
    if c.shape != (n, 4):
        raise ValueError(f"contacts must be (N, 4) = ({n}, 4), got {c.shape}")
    goals, contact_frames = {}, {}
    for side, col in _SIDES:
        found = [mp.by_joint.get(f"{side}_{x}") for x in ("hip", "knee", "ankle")]
        bones = [b for b in found if b is not None]
        if len(bones) < 3:
            notes.append(f"{side} foot IK skipped: thigh, shin and foot must be mapped")
            continue
        heel = c[:, col] >= opt.contact_threshold
        toe = c[:, col + 1] >= opt.contact_threshold
        contact_frames[side] = heel | toe
        goal = _ankle_goals(mp.tg, R, H, bones[2], mp.by_joint.get(f"{side}_foot"), heel, toe, opt.ik_blend)
        if goal is not None:
            goals[side] = (*bones, *goal)
    return goals, contact_frames


def _solve_legs(mp: _Mapping, desired: dict[int, np.ndarray], R, H, shift, goals: dict, n: int, blend: int):
    """Thigh and shin rotations that reach the leg goals, the hips lowered where a leg cannot.
    Returns the posed rotations and heads, and the root's shift (N, 3), all as the new desired give."""
    tg, root = mp.tg, mp.root
    desired = dict(desired)
    if root is not None:
        up = tg.Q.T @ np.array([0.0, 0.0, 1.0])  # world up, armature axes
        drop = _hip_drop(tg, H, goals, up, n, blend)
        if drop.any():
            shift = shift - drop[:, None] * up
            H = tg.shifted(H, root, -drop[:, None] * up)
    for th, sh, ft, f, target in goals.values():
        new_th, new_sh = _two_bone_ik(H[th][f], H[sh][f], H[ft][f], target, R[th][f], R[sh][f],
                                      R[th][f, :, 0])  # the thigh's X axis: the knee's usual hinge
        for bone, new in ((th, new_th), (sh, new_sh)):
            arr = np.array(np.broadcast_to(desired[bone], (n, 3, 3)))
            arr[f] = new
            desired[bone] = arr
    R, H = tg.fk(desired, n, root, shift)
    return R, H, shift


def _result(mp: _Mapping, R, H, shift, k: float, floors: tuple[float, float], contact_frames, notes) -> RetargetResult:
    """The keyed bones' channels: continuous quaternions and the root bone's location."""
    tg, names = mp.tg, mp.tg.rig.names
    keyed = list(dict.fromkeys(mp.names[b] for _, b in mp.pairs))
    quats = matrix_to_quaternion(np.stack([tg.basis(i, R) for i in keyed], axis=1))
    quats = continuous_quaternions(quats)
    root_loc = None if mp.root is None else tg.location(mp.root, R, shift)
    return RetargetResult(
        bones=[names[i] for i in keyed], quaternions=quats, root_bone=mp.root_name, root_location=root_loc,
        scale=float(k), floor_source=floors[0], floor_target=floors[1],
        heads={names[i]: H[i] for i in keyed}, world_rotations={names[i]: R[i] for i in keyed},
        contact_frames=contact_frames, notes=notes,
    )  # fmt: skip


def retarget(src: SourceMotion, rig: TargetRig, bmap: BoneMap, options: RetargetOptions | None = None,
             rig_name: str = "target") -> RetargetResult:
    """Rotations (and root location) for the target's mapped bones on every frame of ``src``."""
    opt = options or RetargetOptions()
    mp = _resolve(rig, bmap, rig_name)
    tg, n = mp.tg, src.num_frames
    P_src, G_src, Qs = _source_fk(src)  # world positions; armature-space rotation changes
    rest_w = _source_rest_world(src)
    M = _facing(rest_w, tg, mp.by_joint)
    desired = _desired_rotations(mp, _rest_alignment(mp, bmap, rest_w, M), G_src, Qs, M)

    notes: list[str] = []
    floors = _floors(P_src, mp)
    hips_t_rest = tg.world(_hip_centre(tg.t, mp.by_joint))
    if not _has_thighs(mp.by_joint):
        notes.append("no thighs mapped: the pelvis bone's head follows the source's hips")
    k = _scale(opt, rest_w, mp, float(hips_t_rest[2] - floors[1]), notes)
    goal = _root_goal(opt, tg, M, k, P_src, hips_t_rest, floors)

    R, H = tg.fk(desired, n)
    shift = None  # (N, 3) the root bone's move, target armature space
    if mp.root is not None:
        shift = goal - _hip_centre(H, mp.by_joint)
        H = tg.shifted(H, mp.root, shift)
    contact_frames: dict[str, np.ndarray] = {}
    if opt.foot_ik and src.contacts is not None:
        goals, contact_frames = _leg_goals(opt, src.contacts, n, mp, R, H, notes)
        if goals:
            R, H, shift = _solve_legs(mp, desired, R, H, shift, goals, n, opt.ik_blend)
    return _result(mp, R, H, shift, k, floors, contact_frames, notes)
