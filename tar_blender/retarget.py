"""Retarget a captured SMPL-layout armature onto another armature: ``retarget_armature(...)``.

Thin bpy code. It reads the source's action and both rigs' rest matrices as arrays, lets
``logic.retarget`` compute every key, and writes them whole (``foreach_set``) into a new action
on the target, pushed onto an NLA track named after the take. Everything that can fail (the bone
map, missing bones, the source's curves) is checked before the scene is touched.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import bpy
import numpy as np

from . import actions, rig
from .logic.bone_maps import BoneMap, resolve_bone_map
from .logic.keys import Curve, _co
from .logic.motion import MotionError, read_motion
from .logic.retarget import RetargetOptions, RetargetResult, SourceMotion, TargetRig, retarget
from .logic.skeleton import JOINT_NAMES

__all__ = ["RetargetError", "Retargeted", "read_source", "read_target", "retarget_armature"]


class RetargetError(ValueError):
    pass


@dataclass
class Retargeted:
    result: RetargetResult
    bone_map: BoneMap
    action: object
    track: object
    strip: object
    take: str
    frames: np.ndarray
    notes: list[str]


def _matrix(m) -> np.ndarray:
    return np.array(m, dtype=np.float64)


def read_target(obj) -> TargetRig:
    bones = obj.data.bones
    n = len(bones)
    names = [b.name for b in bones]
    index = {name: i for i, name in enumerate(names)}
    parents = np.array([index[b.parent.name] if b.parent else -1 for b in bones], dtype=np.int64)
    mats = np.empty(16 * n, dtype=np.float32)
    bones.foreach_get("matrix_local", mats)
    tails = np.empty(3 * n, dtype=np.float32)
    bones.foreach_get("tail_local", tails)
    inherit = np.empty(n, dtype=bool)
    bones.foreach_get("use_inherit_rotation", inherit)
    rest = mats.astype(np.float64).reshape(n, 4, 4).transpose(0, 2, 1)  # foreach_get is column-major
    return TargetRig(names, parents, rest, tails.astype(np.float64).reshape(n, 3), _matrix(obj.matrix_world), inherit,
                     copies=_copies(obj, index))


def _copies(obj, index: dict[str, int]) -> dict[int, int]:
    """Bones that take another bone's whole transform: a Copy Transforms constraint (world to
    world, full influence, the last active one). Influences come from the evaluated rig, so the
    drivers' current values count (Rigify's IK/FK switch)."""
    evaluated = obj.evaluated_get(bpy.context.evaluated_depsgraph_get())
    out = {}
    for pb in evaluated.pose.bones:
        active = [c for c in pb.constraints if not c.mute and c.influence > 1e-6]
        if not active:
            continue
        c = active[-1]
        if (c.type == "COPY_TRANSFORMS" and c.influence >= 1.0 - 1e-6 and c.subtarget in index
                and c.target is not None and c.target.original == obj.original
                and c.owner_space == "WORLD" and c.target_space == "WORLD"
                and getattr(c, "mix_mode", "REPLACE") == "REPLACE" and c.head_tail == 0.0):
            out[index[pb.name]] = index[c.subtarget]
    return out


def _bone_path(name: str, prop: str) -> str:
    return f'pose.bones["{bpy.utils.escape_identifier(name)}"].{prop}'


def _contacts(obj, n: int, report) -> np.ndarray | None:
    stored = obj.get("tar_contacts")
    if stored is not None:
        c = np.asarray(stored, dtype=np.float64)
        if c.size == 4 * n:
            return c.reshape(n, 4)
    path = obj.get("tar_motion_file")
    if path and Path(path).is_file():
        try:
            m = read_motion(path)
        except MotionError as exc:
            report("WARNING", f"contacts not read: {exc}")
            return None
        if m.contacts is not None:
            if len(m.contacts) == n:
                return m.contacts
            report("WARNING", f"contacts ignored: {len(m.contacts)} rows for {n} keys")
    return None


def read_source(obj, report=None) -> tuple[SourceMotion, np.ndarray]:
    """The source armature's active action as a SourceMotion, and the key frames."""
    report = report or (lambda level, msg: None)
    if obj is None or obj.type != "ARMATURE":
        raise RetargetError("the source must be an armature (a TAR capture rig)")
    missing = [j for j in JOINT_NAMES if j not in obj.data.bones]
    if missing:
        raise RetargetError(f"source '{obj.name}' is not an SMPL-layout rig: it lacks {', '.join(missing)}")
    curves = actions.read_curves(obj)
    if not curves:
        raise RetargetError(f"source '{obj.name}' has no animation to retarget")
    frames = None
    for j in JOINT_NAMES:  # the key frames: those of the first rotation curve
        key = (_bone_path(j, "rotation_quaternion"), 0)
        if key in curves:
            frames = curves[key][0]
            break
    if frames is None:
        raise RetargetError(f"source '{obj.name}' has no bone rotation keys")

    def values(path: str, index: int, default: float) -> np.ndarray:
        c = curves.get((path, index))
        if c is None:
            return np.full(len(frames), default)
        if len(c[0]) == len(frames) and np.array_equal(c[0], frames):
            return c[1]
        return np.interp(frames, c[0], c[1])

    from .logic.rotations import quaternion_to_matrix

    n = len(frames)
    quats = np.empty((n, 24, 4))
    for j, name in enumerate(JOINT_NAMES):
        pb = obj.pose.bones[name]
        path = _bone_path(name, "rotation_quaternion")
        for c in range(4):
            quats[:, j, c] = values(path, c, pb.rotation_quaternion[c])
    loc_path = _bone_path("pelvis", "location")
    root_loc = np.stack([values(loc_path, c, obj.pose.bones["pelvis"].location[c]) for c in range(3)], axis=1)
    bones = obj.data.bones
    rest = np.array([list(bones[j].head_local) for j in JOINT_NAMES], dtype=np.float64)
    rest_rot = np.array([_matrix(bones[j].matrix_local)[:3, :3] for j in JOINT_NAMES])
    src = SourceMotion(rest=rest, basis=quaternion_to_matrix(quats), root_loc=root_loc,
                       matrix_world=_matrix(obj.matrix_world), rest_rot=rest_rot, contacts=_contacts(obj, n, report))
    return src, frames


def take_name(source) -> str:
    path = source.get("tar_motion_file")
    if path:
        return Path(path).stem
    ad = source.animation_data
    return ad.action.name if ad and ad.action else source.name


def _unique_track_name(ad, name: str) -> str:
    have = {t.name for t in ad.nla_tracks}
    if name not in have:
        return name
    i = 1
    while f"{name}.{i:03d}" in have:
        i += 1
    return f"{name}.{i:03d}"


def _check_target(source, target) -> None:
    if target is None or target.type != "ARMATURE":
        raise RetargetError("the target must be an armature")
    if target == source:
        raise RetargetError("the source and the target are the same armature")


def _target_bone_map(target, bone_map: str | BoneMap) -> tuple[BoneMap, list[str]]:
    """The bone map and its notes, checked against the target's bones (missing bones raise)."""
    names = [b.name for b in target.data.bones]
    if isinstance(bone_map, BoneMap):
        bone_map.check_rig(names, target.name)
        return bone_map, []
    parents = [names.index(b.parent.name) if b.parent else -1 for b in target.data.bones]
    return resolve_bone_map(bone_map, names, parents, rig_name=target.name)


def _apply_settings(context, target, bmap: BoneMap) -> None:
    """The map's pose-bone custom properties; the rig is re-evaluated, as they switch constraints."""
    pose = target.pose.bones
    for bone, props in bmap.settings.items():
        for key, value in props.items():
            pose[bone][key] = value
    if bmap.settings:
        target.update_tag()
        context.view_layer.update()


def _result_curves(result: RetargetResult, frames: np.ndarray) -> list[Curve]:
    """The keyed bones' quaternion channels and the root bone's location channels."""
    curves = []
    for i, name in enumerate(result.bones):
        path = _bone_path(name, "rotation_quaternion")
        curves += [Curve(path, c, name, _co(frames, result.quaternions[:, i, c])) for c in range(4)]
    if result.root_bone is not None and result.root_location is not None:
        path = _bone_path(result.root_bone, "location")
        curves += [Curve(path, c, result.root_bone, _co(frames, result.root_location[:, c])) for c in range(3)]
    return curves


def _push_take(target, take: str, frames: np.ndarray, curves: list[Curve]):
    """A new action with the curves, as a strip on a new NLA track; the active action stays as it was."""
    ad = target.animation_data or target.animation_data_create()
    previous = ad.action
    previous_slot = getattr(ad, "action_slot", None)
    action = rig.write_curves(target, f"{take}_{target.name}", curves)
    start, end = math.floor(float(frames[0])), math.ceil(float(frames[-1]))
    action.use_frame_range = True
    action.frame_start, action.frame_end = start, max(end, start + 1)
    track = ad.nla_tracks.new()
    track.name = _unique_track_name(ad, take)
    strip = track.strips.new(take, start, action)
    ad.action = previous
    if previous is not None and previous_slot is not None and hasattr(ad, "action_slot"):
        ad.action_slot = previous_slot
    return action, track, strip


def retarget_armature(context, source, target, bone_map: str | BoneMap = "auto", *, take: str | None = None,
                      options: RetargetOptions | None = None, report=None) -> Retargeted:
    """Bake the source's motion onto ``target`` as an action in a new NLA track named ``take``.

    bone_map: "rigify", "mixamo", "smpl", "auto", a built-in map name, a .json path, or a BoneMap.
    Raises RetargetError / BoneMapError (missing bones listed in one message) before any change.
    """
    report = report or (lambda level, msg: None)
    _check_target(source, target)
    context.view_layer.update()  # world matrices of objects just added (appended rigs) are current
    bmap, notes = _target_bone_map(target, bone_map)
    src, frames = read_source(source, report)
    take = take or take_name(source)

    # From here on the scene changes: the map's rig settings first (they switch constraints).
    _apply_settings(context, target, bmap)
    tgt = read_target(target)
    result = retarget(src, tgt, bmap, options, rig_name=target.name)
    notes = notes + result.notes
    overridden = [n for n in result.bones if tgt.names.index(n) in tgt.copies]
    if overridden:
        notes.append(f"constraints drive these bones, their keys will not show: {', '.join(overridden)}")
    for name in result.bones:
        target.pose.bones[name].rotation_mode = "QUATERNION"
    action, track, strip = _push_take(target, take, frames, _result_curves(result, frames))
    target["tar_retarget_map"] = bmap.name
    context.scene.frame_set(context.scene.frame_current)
    for note in notes:
        report("INFO", note)
    report("INFO", f"retargeted {len(frames)} frames of '{source.name}' onto '{target.name}' "
                   f"({len(result.bones)} bones, map {bmap.name}, scale {result.scale:.3f}), NLA track '{track.name}'")
    return Retargeted(result=result, bone_map=bmap, action=action, track=track, strip=strip, take=take,
                      frames=frames, notes=notes)
