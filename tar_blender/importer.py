"""Import motion files into the scene: ``load(context, filepaths, ..., report=...)``.

Operators only declare options and forward here (as Blender's own importers do).
"""

from __future__ import annotations

from pathlib import Path

import bpy
import numpy as np

from . import rig
from .logic.camera import floor_matrix
from .logic.keys import CONTACT_NAMES, contact_curves, key_frames, motion_curves
from .logic.motion import MotionData, MotionError, check_import, read_motion
from .logic.skeleton import JOINT_NAMES, load_body_arrays
from .logic.workflow import Timing, clip_name, frame_range, plan_timing, take_name

__all__ = ["ImportResult", "load", "push_take", "same_layout", "scene_has_animation"]


class ImportResult:
    def __init__(self):
        self.armatures: list = []
        self.meshes: list = []
        self.camera: bpy.types.Object | None = None
        self.floor: bpy.types.Object | None = None  # puts the ground plane at z = 0 (files with a ground plane)
        self.motions: list[MotionData] = []
        self.timing: Timing | None = None


def scene_has_animation(scene) -> bool:
    """Whether anything in the scene is animated (then the scene's fps and range are the user's)."""
    for o in scene.objects:
        ad = o.animation_data
        if ad is not None and (ad.action is not None or len(ad.nla_tracks)):
            return True
    return False


def same_layout(obj) -> bool:
    """An armature with the SMPL joints as bones (a rig the capture can be applied to)."""
    return obj is not None and obj.type == "ARMATURE" and all(j in obj.data.bones for j in JOINT_NAMES)


def _unique_track(ad, name: str) -> str:
    have = {t.name for t in ad.nla_tracks}
    i, out = 1, name
    while out in have:
        out, i = f"{name}.{i:03d}", i + 1
    return out


def push_take(obj, action, take: str, frame_start: int, frame_end: int):
    """Put ``action`` as the one strip of a new NLA track named after the take, nothing held outside
    its range, so takes stack in time; the active action slot is left empty. Returns the strip."""
    ad = obj.animation_data or obj.animation_data_create()
    action.use_frame_range = True
    action.frame_start, action.frame_end = frame_start, max(frame_end, frame_start + 1)
    track = ad.nla_tracks.new()
    track.name = _unique_track(ad, take)
    strip = track.strips.new(take, frame_start, action)
    strip.extrapolation = "NOTHING"
    ad.action = None
    obj["tar_take"] = track.name
    obj["tar_action"] = action.name
    return strip


def load(context, filepaths, *, with_mesh: bool = True, with_camera: bool = True, set_scene: str = "AUTO",
         at_playhead: bool = True, start_frame: int | None = None, set_camera: str = "AUTO", target=None,
         take_clip: str | None = None, video: str | None = None, smpl_path: str | None = None,
         report=None) -> ImportResult:
    """Import motion files: per person a take on an armature (+ skinned mesh), one camera for the clip.

    Timing: keys at ``start + t x fps`` for the rows' real times ``t``; ``start`` is the playhead
    (``at_playhead``; ``start_frame`` stands for it, e.g. where it was when a capture began) or the
    scene's start frame. set_scene "AUTO" takes the clip's fps and frame
    range when nothing in the scene is animated; "YES", "NO". set_camera "AUTO" makes the clip's
    camera the scene camera (and sets the render size) only when the scene has none; "YES", "NO".
    target: an armature with the SMPL layout that receives the (first) person as a new take instead
    of a new rig. Each take is an action ``<clip>_p<id>`` on its own NLA track.
    Raises MotionError / FileNotFoundError / ValueError before touching the scene if any file is bad,
    so nothing half-imported remains.
    """
    report = report or (lambda level, msg: None)
    scene = context.scene
    motions, bodies = _read(filepaths, target, smpl_path)
    timing = _apply_timing(scene, motions, set_scene, at_playhead, start_frame, report)
    clip = take_clip or clip_name(video or motions[0].provenance.get("video_path") or motions[0].path)
    result = ImportResult()
    coll = None
    if target is None or len(motions) > 1 or with_camera:
        coll = bpy.data.collections.new(f"TAR {clip}")
        scene.collection.children.link(coll)
    for i, m in enumerate(motions):
        take = take_name(clip, m.track_id)
        arm, rest = _person_rig(coll, m, bodies[m.body_model], target if i == 0 else None, take, with_mesh, result,
                                report)
        first = _key_take(arm, m, rest, take, timing)
        result.armatures.append(arm)
        result.motions.append(m)
        report("INFO", f"imported {Path(m.path).name} as take {take}: {m.num_frames} frames from frame "
                       f"{first:g}, {m.body_model} body, engine {m.engine}")
    if with_camera and coll is not None:
        result.camera = _camera(coll, scene, motions[0], clip, video, set_camera, timing)
    if coll is not None:
        _floor(coll, motions, result)
    result.timing = timing
    scene.frame_set(scene.frame_current)
    return result


def _read(filepaths, target, smpl_path):
    """Every file read and checked, and the body arrays they need, before anything in the scene changes."""
    motions = [read_motion(p) for p in filepaths]
    if not motions:
        raise MotionError("", "file", "no motion files given")
    if target is not None and not same_layout(target):
        raise ValueError(f"'{target.name}' is not a rig with the SMPL layout: choose a TAR capture rig")
    bodies = {}
    for m in motions:
        if m.body_model not in bodies:
            bodies[m.body_model] = load_body_arrays(m.body_model, smpl_path)
    return motions, bodies


def _apply_timing(scene, motions: list[MotionData], set_scene: str, at_playhead: bool, start_frame: int | None,
                  report) -> Timing:
    """Where the keys go (``start + t x fps``), checked to fit Blender; the clip's fps and range taken when asked."""
    use_clip = set_scene == "YES" or (set_scene == "AUTO" and not scene_has_animation(scene))
    playhead = scene.frame_current if start_frame is None else start_frame
    spans = [(float(m.frame_times[0]), float(m.frame_times[-1])) for m in motions]
    timing = plan_timing(spans, motions[0].fps, scene.render.fps / scene.render.fps_base,
                         playhead=playhead, scene_start=scene.frame_start, use_clip_timing=use_clip,
                         at_playhead=at_playhead)
    check_import(motions, timing.fps, timing.start)  # before the scene changes: Blender must be able to hold it
    if timing.scene_fps is not None:
        scene.render.fps, scene.render.fps_base = timing.scene_fps
        scene.frame_start, scene.frame_end = timing.frame_start, timing.frame_end
    elif abs(timing.fps - motions[0].fps) > 1e-3:
        why = "the scene is animated, so it keeps its timing" if set_scene == "AUTO" else "Scene Timing: Keep"
        report("WARNING", f"the scene runs at {timing.fps:g} fps, the clip at {motions[0].fps:g} ({why}): the keys "
                          "keep real time, but the footage plays one clip frame per scene frame; choose Scene "
                          "Timing: Clip's to take the clip's fps")
    return timing


def _person_rig(coll, m: MotionData, body, target, take: str, with_mesh: bool, result: ImportResult, report):
    """The armature that receives the take: ``target`` (the user's SMPL-layout rig) or a new rig (+ mesh).
    Returns it and its rest joints (24, 3)."""
    if target is not None:
        rest = np.array([list(target.data.bones[j].head_local) for j in JOINT_NAMES], dtype=np.float64)
        if np.abs(rest - body.rest_joints(m.betas)).max() > 0.01:
            report("INFO", f"{target.name} has another body shape than {take}: its own bone lengths are kept")
        return target, rest
    assert coll is not None
    name = f"{m.body_model.upper()}_{m.track_id}"
    rest = body.rest_joints(m.betas)
    arm = rig.build_armature(coll, name, rest)
    if with_mesh:
        result.meshes.append(rig.build_body_mesh(coll, f"{name}_body", body, m.betas, arm))
    return arm, rest


def _key_take(arm, m: MotionData, rest: np.ndarray, take: str, timing: Timing) -> float:
    """The person's motion (and foot contacts) as the action of a new NLA take; returns its first frame."""
    arm["tar_motion_file"] = _stored_path(m.path)
    arm["tar_engine"] = m.engine
    arm["tar_body_model"] = m.body_model
    if m.contacts is not None:  # foot contacts for retargeting (left heel, left toe, right heel, right toe)
        arm["tar_contacts"] = m.contacts.astype(np.float64).ravel().tolist()
    elif "tar_contacts" in arm:
        del arm["tar_contacts"]
    frames = key_frames(m.frame_times, timing.fps, timing.start)
    curves = motion_curves(m.poses, m.trans, frames, rest[0])
    if m.contacts is not None:  # animated custom properties, 0..1 per foot point
        for k, point in enumerate(CONTACT_NAMES):
            arm[f"tar_contact_{point}"] = float(m.contacts[0, k])
        curves += contact_curves(m.contacts, frames)
    action = rig.write_curves(arm, take, curves)
    lo, hi = frame_range(float(frames[0]), float(frames[-1]))
    push_take(arm, action, take, lo, hi)
    return float(frames[0])


def _camera(coll, scene, m0: MotionData, clip: str, video: str | None, set_camera: str, timing: Timing):
    """The clip's camera with the footage behind it; the scene camera (and render size) only when asked."""
    footage = video or m0.provenance.get("video_path")
    if footage and not Path(footage).is_file():
        footage = None
    make_active = set_camera == "YES" or (set_camera == "AUTO" and scene.camera is None)
    camera = rig.build_camera(coll, f"{clip}_camera", m0.K, *m0.image_size, scene, footage,
                              clip_start=round(timing.start), set_render=make_active)
    if make_active:
        scene.camera = camera
    return camera


def _floor(coll, motions, result: ImportResult) -> None:
    """With a ground plane in the files, an empty ``TAR_floor`` carries camera and new rigs so the floor is z = 0."""
    ground = next((m.ground_plane for m in motions if m.ground_plane is not None), None)
    if ground is None:
        return
    floor = bpy.data.objects.new("TAR_floor", None)
    coll.objects.link(floor)
    floor.matrix_world = [list(r) for r in floor_matrix(ground)]
    for obj in (*result.armatures, result.camera):
        if obj is not None and obj.users_collection and coll in obj.users_collection:
            obj.parent = floor
    result.floor = floor


def _stored_path(path: str) -> str:
    """A motion file's path as the rig keeps it: relative (``//…``) when it lies next to the saved .blend."""
    if bpy.data.filepath:
        try:
            return bpy.path.relpath(path)
        except ValueError:  # another drive (Windows)
            return path
    return path


def joints_world(arm) -> np.ndarray:
    """(24, 3) world positions of the bone heads at the current frame (for checks and tests)."""
    M = np.array(arm.matrix_world)
    heads = np.array([list(arm.pose.bones[n].head) for n in JOINT_NAMES])
    return heads @ M[:3, :3].T + M[:3, 3]
