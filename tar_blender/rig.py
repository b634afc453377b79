"""Build the SMPL rig, body mesh, camera and keys in Blender: thin code that moves whole arrays."""

from __future__ import annotations

import math

import bpy
import numpy as np

from .logic.camera import CAMERA_EULER, camera_settings
from .logic.keys import Curve
from .logic.skeleton import JOINT_NAMES, PARENTS, BodyArrays

__all__ = ["build_armature", "build_body_mesh", "build_camera", "write_curves"]

BONE_LENGTH = 0.08
_LINEAR = 1  # fcurve keyframe interpolation enum value for 'LINEAR'


def build_armature(collection, name: str, rest_joints: np.ndarray):
    """An armature whose bones sit at the SMPL rest joints (SMPL frame), each pointing along +Y
    with roll 0, so every bone's rest rotation is the identity and SMPL's local rotations are the
    pose bones' quaternions as they are. The object stands the y-up rig upright (+90 deg about X)."""
    arm = bpy.data.armatures.new(name)
    obj = bpy.data.objects.new(name, arm)
    collection.objects.link(obj)
    obj.rotation_euler = (math.pi / 2, 0.0, 0.0)
    view_layer = bpy.context.view_layer
    prev_active = view_layer.objects.active
    view_layer.objects.active = obj
    bpy.ops.object.mode_set(mode="EDIT")
    try:
        bones = []
        for j, joint in enumerate(JOINT_NAMES):
            eb = arm.edit_bones.new(joint)
            head = rest_joints[j]
            eb.head = head
            eb.tail = (head[0], head[1] + BONE_LENGTH, head[2])
            eb.roll = 0.0
            if PARENTS[j] >= 0:
                eb.parent = bones[PARENTS[j]]
            bones.append(eb)
    finally:
        bpy.ops.object.mode_set(mode="OBJECT")
        view_layer.objects.active = prev_active
    assert obj.pose is not None  # an armature object has a pose
    for pb in obj.pose.bones:
        pb.rotation_mode = "QUATERNION"
    return obj


def build_body_mesh(collection, name: str, body: BodyArrays, betas: np.ndarray, armature):
    """The shaped rest mesh, skinned to the armature (vertex groups named after the joints)."""
    mesh = bpy.data.meshes.new(name)
    verts = body.rest_vertices(betas).astype(np.float32)
    faces = body.faces.astype(np.int32)
    mesh.vertices.add(len(verts))
    mesh.vertices.foreach_set("co", verts.ravel())
    mesh.loops.add(faces.size)
    mesh.loops.foreach_set("vertex_index", faces.ravel())
    mesh.polygons.add(len(faces))
    mesh.polygons.foreach_set("loop_start", np.arange(0, faces.size, 3, dtype=np.int32))
    mesh.polygons.foreach_set("loop_total", np.full(len(faces), 3, dtype=np.int32))
    mesh.update(calc_edges=True)
    mesh.validate()
    if hasattr(mesh, "shade_smooth"):
        mesh.shade_smooth()
    obj = bpy.data.objects.new(name, mesh)
    collection.objects.link(obj)
    obj.parent = armature
    for j, joint in enumerate(JOINT_NAMES):
        group = obj.vertex_groups.new(name=joint)
        col = body.weights[:, j]
        for w in np.unique(np.round(col[col > 1e-6], 6)):  # one call per distinct weight, not per vertex
            group.add(np.flatnonzero(np.abs(col - w) < 5e-7).tolist(), float(w), "REPLACE")
    mod = obj.modifiers.new("Armature", "ARMATURE")
    assert isinstance(mod, bpy.types.ArmatureModifier)
    mod.object = armature
    return obj


def build_camera(collection, name: str, K: np.ndarray, width: int, height: int, scene, video: str | None = None,
                 *, clip_start: int = 1, set_render: bool = True):
    """A camera reproducing K at the origin looking along +Y (+Z up), the clip as its background,
    its first frame at scene frame ``clip_start``. ``set_render``: the scene's render size and pixel
    aspect become the clip's (the camera matches K only at that size)."""
    s = camera_settings(K, width, height)
    data = bpy.data.cameras.new(name)
    data.sensor_fit = s["sensor_fit"]
    data.sensor_width = s["sensor_width"]
    data.lens = s["lens"]
    data.shift_x, data.shift_y = s["shift_x"], s["shift_y"]
    data.clip_start, data.clip_end = 0.05, 500.0
    obj = bpy.data.objects.new(name, data)
    collection.objects.link(obj)
    obj.rotation_euler = CAMERA_EULER
    obj["tar_resolution"] = list(s["resolution"])
    if set_render:
        scene.render.resolution_x, scene.render.resolution_y = s["resolution"]
        scene.render.resolution_percentage = 100
        scene.render.pixel_aspect_x, scene.render.pixel_aspect_y = s["pixel_aspect"]
    if video:
        try:
            clip = bpy.data.movieclips.load(video, check_existing=False)  # own start frame per take
            clip.frame_start = int(clip_start)
            bg = data.background_images.new()
            bg.source = "MOVIE_CLIP"
            bg.clip = clip
            bg.alpha = 1.0
            bg.frame_method = "FIT"
            data.show_background_images = True
        except RuntimeError:  # unreadable clip: the camera is still right, without footage
            pass
    return obj


def write_curves(obj, action_name: str, curves: list[Curve]):
    """Create the object's action and fill every fcurve in one bulk write each.

    The keys come sorted and LINEAR, which never reads handles: no ``fc.update()`` (its handle
    pass was half of an 18,000-frame import). Any later edit in Blender recomputes them."""
    ad = obj.animation_data or obj.animation_data_create()
    action = bpy.data.actions.new(action_name)
    ad.action = action
    ensure = getattr(action, "fcurve_ensure_for_datablock", None)  # Blender 4.4+ (layered actions)
    for c in curves:
        if ensure is not None:
            fc = ensure(obj, c.data_path, index=c.index, group_name=c.group)
        else:  # Blender 4.2 / 4.3
            fc = action.fcurves.new(c.data_path, index=c.index, action_group=c.group)  # pyright: ignore[reportAttributeAccessIssue]
        n = len(c.co) // 2
        fc.keyframe_points.add(n)
        fc.keyframe_points.foreach_set("co", c.co)
        fc.keyframe_points.foreach_set("interpolation", np.full(n, _LINEAR, dtype=np.uint8))  # uint8: raw, 30x faster
    return action
