"""Import motion files into the scene: ``load(context, filepaths, ..., report=...)``.

Operators only declare options and forward here (as Blender's own importers do).
"""

from __future__ import annotations

import math
from pathlib import Path

import bpy
import numpy as np

from . import rig
from .logic.keys import key_frames, motion_curves
from .logic.motion import MotionData, MotionError, check_import, read_motion
from .logic.skeleton import load_body_arrays

__all__ = ["load", "ImportResult"]


class ImportResult:
    def __init__(self):
        self.armatures: list = []
        self.meshes: list = []
        self.camera = None
        self.motions: list[MotionData] = []


def _scene_is_fresh(scene) -> bool:
    return not any(o.type in {"ARMATURE", "MESH"} for o in scene.objects)


def load(context, filepaths, *, with_mesh: bool = True, with_camera: bool = True, set_scene: str = "AUTO",
         video: str | None = None, smpl_path: str | None = None, report=None) -> ImportResult:
    """Import motion files: per person an armature (+ skinned mesh), one camera for the clip.

    set_scene: "AUTO" takes the clip's fps and frame range when the scene is fresh; "YES", "NO".
    Raises MotionError / FileNotFoundError / ValueError before touching the scene if any file is bad,
    so nothing half-imported remains.
    """
    report = report or (lambda level, msg: None)
    scene = context.scene
    motions = [read_motion(p) for p in filepaths]  # everything is read and checked first
    if not motions:
        raise MotionError("", "file", "no motion files given")
    set_fps = set_scene == "YES" or (set_scene == "AUTO" and _scene_is_fresh(scene))
    check_import(motions, motions[0].fps if set_fps else scene.render.fps / scene.render.fps_base, scene.frame_start)
    bodies = {}
    for m in motions:
        if m.body_model not in bodies:
            bodies[m.body_model] = load_body_arrays(m.body_model, smpl_path)
    if set_fps:
        fps = motions[0].fps
        scene.render.fps = max(1, round(fps))
        scene.render.fps_base = scene.render.fps / fps
        last = max(float(key_frames(m.frame_times, fps, scene.frame_start)[-1]) for m in motions)
        scene.frame_end = max(scene.frame_start, math.ceil(last))
    fps = scene.render.fps / scene.render.fps_base

    result = ImportResult()
    stem = Path(motions[0].path).stem
    coll = bpy.data.collections.new(f"TAR {stem}")
    scene.collection.children.link(coll)
    for m in motions:
        body = bodies[m.body_model]
        name = f"{m.body_model.upper()}_{m.track_id}"
        rest = body.rest_joints(m.betas)
        arm = rig.build_armature(coll, name, rest)
        arm["tar_motion_file"] = m.path
        arm["tar_engine"] = m.engine
        arm["tar_body_model"] = m.body_model
        frames = key_frames(m.frame_times, fps, scene.frame_start)
        rig.write_curves(arm, f"{name}_motion", motion_curves(m.poses, m.trans, frames, rest[0]))
        result.armatures.append(arm)
        if with_mesh:
            result.meshes.append(rig.build_body_mesh(coll, f"{name}_body", body, m.betas, arm))
        result.motions.append(m)
        report("INFO", f"imported {Path(m.path).name}: {m.num_frames} frames, {m.body_model} body, engine {m.engine}")
    if with_camera:
        m0 = motions[0]
        clip = video or m0.provenance.get("video_path")
        if clip and not Path(clip).is_file():
            clip = None
        result.camera = rig.build_camera(coll, "TAR_camera", m0.K, *m0.image_size, scene, clip)
        scene.camera = result.camera
    scene.frame_set(scene.frame_current)
    return result


def joints_world(arm) -> np.ndarray:
    """(24, 3) world positions of the bone heads at the current frame (for checks and tests)."""
    from .logic.skeleton import JOINT_NAMES

    M = np.array(arm.matrix_world)
    heads = np.array([list(arm.pose.bones[n].head) for n in JOINT_NAMES])
    return heads @ M[:3, :3].T + M[:3, 3]
