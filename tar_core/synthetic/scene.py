"""Draw a ground-truth clip with Blender Cycles on the CPU (``bpy``, Blender as a Python module).

Geometry arrives in the OpenCV camera frame and is placed in Blender's world by the motion-file
convention: camera at the origin looking along +Y with +Z up, camera point (x, y, z) -> world
(x, z, -y). The camera's intrinsics equal K exactly (half-pixel principal-point convention).
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from tar_blender.logic.camera import CAMERA_EULER, camera_settings
from tar_core.body_model import BodyModel
from tar_core.synthetic.groundtruth import GroundTruth, occluder_mesh

__all__ = ["CV_TO_BLENDER", "render_frames"]

CV_TO_BLENDER = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])

# Material slots by the SMPL joint that moves a face most.
_SKIN_JOINTS = {12, 15, 20, 21, 22, 23}
_SHIRT_JOINTS = {3, 6, 9, 13, 14, 16, 17}
_TROUSER_JOINTS = {0, 1, 2, 4, 5}
_SHOE_JOINTS = {7, 8, 10, 11}
_SLOTS = ("skin", "shirt", "trousers", "shoes", "hair")


def _import_bpy():
    if "BLENDER_USER_RESOURCES" not in os.environ:  # keep Blender out of ~/.config
        os.environ["BLENDER_USER_RESOURCES"] = tempfile.mkdtemp(prefix="tar-blender-")
    import bpy

    return bpy


def face_materials(body: BodyModel, long_sleeves: bool) -> np.ndarray:
    """(F,) material slot per face from its dominant skinning joint; hair on the upper head."""
    d = body.data
    part = d.weights.argmax(1)[d.faces].T  # (3, F)
    face_part = np.array([np.bincount(col, minlength=24).argmax() for col in part.T])
    slot = np.full(len(face_part), _SLOTS.index("shirt"))
    slot[np.isin(face_part, list(_SKIN_JOINTS))] = _SLOTS.index("skin")
    slot[np.isin(face_part, list(_TROUSER_JOINTS))] = _SLOTS.index("trousers")
    slot[np.isin(face_part, list(_SHOE_JOINTS))] = _SLOTS.index("shoes")
    forearm = np.isin(face_part, [18, 19])
    slot[forearm] = _SLOTS.index("shirt" if long_sleeves else "skin")
    # Hair cap: head faces above the eyes, or above the head joint towards the back.
    rest = d.v_template[d.faces].mean(1)  # (F, 3) face centres in the T-pose
    head_joint = d.J_regressor[15] @ d.v_template
    eye_y = d.v_template[d.extra_vertex_ids["leye"], 1] if d.extra_vertex_ids else head_joint[1] + 0.07
    hair = (face_part == 15) & ((rest[:, 1] > eye_y + 0.035) | ((rest[:, 1] > head_joint[1]) &
                                                                 (rest[:, 2] < head_joint[2] - 0.03)))
    slot[hair] = _SLOTS.index("hair")
    return slot


def _principled(bpy, name: str, rgb, roughness: float, subsurface: float = 0.0):
    mat = bpy.data.materials.new(name)
    if mat.node_tree is None:  # Blender < 5 creates materials without nodes
        mat.use_nodes = True
    bsdf = next(n for n in mat.node_tree.nodes if n.type == "BSDF_PRINCIPLED")
    bsdf.inputs["Base Color"].default_value = (*rgb, 1.0)
    bsdf.inputs["Roughness"].default_value = roughness
    if subsurface and "Subsurface Weight" in bsdf.inputs:
        bsdf.inputs["Subsurface Weight"].default_value = subsurface
        bsdf.inputs["Subsurface Radius"].default_value = (0.01, 0.005, 0.003)
    return mat, bsdf


def _checker_floor(bpy, name: str, rgb):
    mat, bsdf = _principled(bpy, name, rgb, 0.8)
    nodes, links = mat.node_tree.nodes, mat.node_tree.links
    coords = nodes.new("ShaderNodeTexCoord")
    checker = nodes.new("ShaderNodeTexChecker")
    checker.inputs["Scale"].default_value = 2.0  # 0.5 m tiles in object (= world) coordinates
    checker.inputs["Color1"].default_value = (*rgb, 1.0)
    checker.inputs["Color2"].default_value = (*(0.55 * np.asarray(rgb)), 1.0)
    links.new(coords.outputs["Object"], checker.inputs["Vector"])
    links.new(checker.outputs["Color"], bsdf.inputs["Base Color"])
    return mat


_TEXTURE_NODES = {"noise": "ShaderNodeTexNoise", "voronoi": "ShaderNodeTexVoronoi", "wave": "ShaderNodeTexWave",
                  "brick": "ShaderNodeTexBrick", "magic": "ShaderNodeTexMagic",
                  "checker": "ShaderNodeTexChecker"}  # fmt: skip


def _textured(bpy, name: str, surface: dict):
    """A material with a seeded procedural texture (``groundtruth._surface``) in object coordinates."""
    c1, c2 = (*surface["colour1"], 1.0), (*surface["colour2"], 1.0)
    mat, bsdf = _principled(bpy, name, surface["colour1"], surface["roughness"])
    nodes, links = mat.node_tree.nodes, mat.node_tree.links
    coords = nodes.new("ShaderNodeTexCoord")
    tex = nodes.new(_TEXTURE_NODES[surface["texture"]])
    tex.inputs["Scale"].default_value = surface["scale"]
    if "Detail" in tex.inputs:
        tex.inputs["Detail"].default_value = surface["detail"]
    if "Distortion" in tex.inputs:
        tex.inputs["Distortion"].default_value = surface["distortion"]
    links.new(coords.outputs["Object"], tex.inputs["Vector"])
    if "Color1" in tex.inputs:  # checker, brick: two colours of their own
        tex.inputs["Color1"].default_value = c1
        tex.inputs["Color2"].default_value = c2
        if "Mortar" in tex.inputs:
            tex.inputs["Mortar"].default_value = (*(0.4 * np.asarray(surface["colour2"])), 1.0)
        links.new(tex.outputs["Color"], bsdf.inputs["Base Color"])
    else:  # a scalar pattern through a two-colour ramp
        ramp = nodes.new("ShaderNodeValToRGB")
        ramp.color_ramp.elements[0].color = c1
        ramp.color_ramp.elements[1].color = c2
        fac = tex.outputs["Fac"] if "Fac" in tex.outputs else tex.outputs["Distance"]
        links.new(fac, ramp.inputs["Fac"])
        links.new(ramp.outputs["Color"], bsdf.inputs["Base Color"])
    return mat


def _mesh_object(bpy, scene, name: str, verts_cv: np.ndarray, faces, mat):
    mesh = bpy.data.meshes.new(name)
    mesh.from_pydata((verts_cv @ CV_TO_BLENDER.T).tolist(), [], [tuple(f) for f in faces])
    mesh.update()
    mesh.materials.append(mat)
    obj = bpy.data.objects.new(name, mesh)
    scene.collection.objects.link(obj)
    return obj


def _sun_rotation(gt: GroundTruth, bd: dict):
    """Quaternion turning the sun (shining along its -Z) to come from the camera's side, ``sun_angle``
    about the world vertical, at ``sun_elevation`` above the floor."""
    from mathutils import Vector

    R = gt.R_wc
    fwd = R[2] * np.array([1.0, 0.0, 1.0])  # the camera's viewing direction, level
    fwd /= np.linalg.norm(fwd)
    a, el = gt.look["sun_angle"], bd["sun_elevation"]
    fwd = np.array([np.cos(a) * fwd[0] + np.sin(a) * fwd[2], 0.0, -np.sin(a) * fwd[0] + np.cos(a) * fwd[2]])
    travel_w = np.cos(el) * fwd - np.sin(el) * np.array([0.0, 1.0, 0.0])
    return Vector(tuple(CV_TO_BLENDER @ (R @ travel_w))).to_track_quat("-Z", "Y")


def _quad(bpy, scene, name: str, corners_cv: np.ndarray, mat):
    mesh = bpy.data.meshes.new(name)
    mesh.from_pydata([tuple(CV_TO_BLENDER @ c) for c in corners_cv], [], [(0, 1, 2, 3)])
    mesh.update()
    mesh.materials.append(mat)
    obj = bpy.data.objects.new(name, mesh)
    scene.collection.objects.link(obj)
    return obj


def _setup_camera(bpy, scene, K: np.ndarray, width: int, height: int):
    """The scene camera reproducing K, by the add-on's own K -> Blender formulas (one implementation)."""
    s = camera_settings(K, width, height)
    data = bpy.data.cameras.new("camera")
    data.sensor_fit, data.sensor_width, data.lens = s["sensor_fit"], s["sensor_width"], s["lens"]
    data.shift_x, data.shift_y = s["shift_x"], s["shift_y"]
    data.clip_start, data.clip_end = 0.05, 200.0
    cam = bpy.data.objects.new("camera", data)
    cam.rotation_euler = CAMERA_EULER  # looks along +Y, +Z up
    scene.collection.objects.link(cam)
    scene.camera = cam
    scene.render.resolution_x, scene.render.resolution_y = s["resolution"]
    scene.render.resolution_percentage = 100
    scene.render.pixel_aspect_x, scene.render.pixel_aspect_y = s["pixel_aspect"]
    return cam


def _setup_render(bpy, spec, backdrop: bool, threads: int = 0, fast_denoise: bool = False):
    """An empty scene rendering with Cycles on the CPU to PNG (RGBA on transparent film without backdrop);
    ``threads`` > 0 fixes Cycles' thread count (0: one per core, Blender's default); ``fast_denoise``: OIDN's
    fast quality without prefiltering (a third of the CPU time per 256 x 256 frame at 4 samples)."""
    bpy.ops.wm.read_homefile(use_empty=True)
    scene = bpy.context.scene
    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    if threads > 0:
        scene.render.threads_mode = "FIXED"
        scene.render.threads = threads
    scene.cycles.samples = spec.samples
    scene.cycles.use_denoising = True
    if fast_denoise:
        scene.cycles.denoising_quality = "FAST"
        scene.cycles.denoising_prefilter = "NONE"
    scene.cycles.max_bounces = 4
    scene.render.use_persistent_data = True
    scene.render.film_transparent = not backdrop
    scene.view_settings.view_transform = "Standard"
    scene.render.image_settings.file_format = "PNG"
    scene.render.image_settings.color_mode = "RGB" if backdrop else "RGBA"
    return scene


def _add_lights(bpy, scene, gt: GroundTruth, look: dict, bd: dict | None) -> None:
    """Sky colour and a sun from above on the camera's side (seeded left/right, or the textured spec's)."""
    world = bpy.data.worlds.new("world")
    scene.world = world
    if world.node_tree is None:
        world.use_nodes = True
    bg = next(n for n in world.node_tree.nodes if n.type == "BACKGROUND")
    bg.inputs["Color"].default_value = (*bd["world_colour"], 1.0) if bd else (0.55, 0.6, 0.68, 1.0)
    bg.inputs["Strength"].default_value = bd["world_strength"] if bd else 0.6
    sun = bpy.data.objects.new("sun", bpy.data.lights.new("sun", "SUN"))
    sun.data.energy = look["sun_strength"]
    sun.data.angle = 0.2
    sun.rotation_euler = (math.radians(35), 0.0, look["sun_angle"])
    if bd:
        sun.rotation_mode = "QUATERNION"
        sun.rotation_quaternion = _sun_rotation(gt, bd)
        sun.data.color = bd["sun_colour"]
    scene.collection.objects.link(sun)


def _add_body(bpy, scene, gt: GroundTruth, body: BodyModel, look: dict):
    """The body mesh at frame 0 with material slots by body part; returns the mesh (its vertices move)."""
    mesh = bpy.data.meshes.new("body")
    verts0 = gt.verts_cam[0] @ CV_TO_BLENDER.T
    mesh.from_pydata(verts0.tolist(), [], body.faces.tolist())
    mesh.update()
    if hasattr(mesh, "shade_smooth"):
        mesh.shade_smooth()
    for slot in _SLOTS:
        if slot == "skin":
            mat, _ = _principled(bpy, slot, look["skin"], 0.5, subsurface=0.15)
        else:
            mat, _ = _principled(bpy, slot, look[slot], {"hair": 0.6, "shoes": 0.4}.get(slot, 0.85))
        mesh.materials.append(mat)
    mesh.polygons.foreach_set("material_index", face_materials(body, look["long_sleeves"]).astype(np.int32))
    scene.collection.objects.link(bpy.data.objects.new("body", mesh))
    return mesh


def _add_floor_and_wall(bpy, scene, gt: GroundTruth, look: dict, bd: dict | None) -> None:
    """The floor (world y = 0) and a wall behind the person, built in the world and moved to the camera frame."""
    R, C = gt.R_wc, gt.cam_center
    centre = gt.verts_cam.reshape(-1, 3).mean(0)
    cz = C + R.T @ centre  # person's centre in the world
    half = 15.0
    floor_w = np.array([[cz[0] - half, 0, cz[2] - half], [cz[0] + half, 0, cz[2] - half],
                        [cz[0] + half, 0, cz[2] + half], [cz[0] - half, 0, cz[2] + half]])
    back = cz[2] - 3.0 if C[2] > cz[2] else cz[2] + 3.0
    wall_w = np.array([[cz[0] - half, 0, back], [cz[0] + half, 0, back],
                       [cz[0] + half, 6.0, back], [cz[0] - half, 6.0, back]])
    if bd:
        floor_mat, wall_mat = _textured(bpy, "floor", bd["floor"]), _textured(bpy, "wall", bd["wall"])
    else:
        floor_mat = _checker_floor(bpy, "floor", look["floor"])
        wall_mat = _principled(bpy, "wall", look["wall"], 0.9)[0]
    _quad(bpy, scene, "floor", (floor_w - C) @ R.T, floor_mat)
    _quad(bpy, scene, "wall", (wall_w - C) @ R.T, wall_mat)


def _add_occluders(bpy, scene, gt: GroundTruth, look: dict) -> list:
    """Objects between the camera and the person; returns (object, velocity in Blender coordinates) pairs."""
    occluders = []
    for k, o in enumerate(look.get("occluders", [])):
        verts_w, faces = occluder_mesh(o)
        mat = (_textured(bpy, f"occluder{k}", {**o["surface"], "colour1": o["colour"]}) if o["surface"]
               else _principled(bpy, f"occluder{k}", o["colour"], 0.7)[0])  # fmt: skip
        obj = _mesh_object(bpy, scene, f"occluder{k}", (verts_w - gt.cam_center) @ gt.R_wc.T, faces, mat)
        occluders.append((obj, CV_TO_BLENDER @ (gt.R_wc @ np.asarray(o["velocity"]))))
    return occluders


def render_frames(gt: GroundTruth, body: BodyModel, backdrop: bool = True,
                  progress: Callable[[int, int], None] | None = None, threads: int = 0,
                  fast_denoise: bool = False) -> Iterator[np.ndarray]:
    """Render every frame; yields (H, W, 3) uint8 BGR images (BGRA when ``backdrop`` is False:
    transparent film, no floor, wall or occluders, so alpha is the body's silhouette). ``threads`` > 0: Cycles
    renders with that many threads (0: one per core); ``fast_denoise``: cheaper denoising (``_setup_render``).

    ``look["backdrop"]`` (a "textured" spec) gives the wall and floor procedural textures and sets the sky
    and the sun's colour and elevation; ``look["occluders"]`` are drawn between the camera and the person.
    """
    import cv2

    bpy = _import_bpy()
    spec, look = gt.spec, gt.look
    bd = look.get("backdrop") if backdrop else None
    scene = _setup_render(bpy, spec, backdrop, threads, fast_denoise)
    _add_lights(bpy, scene, gt, look, bd)
    _setup_camera(bpy, scene, gt.K, spec.width, spec.height)
    mesh = _add_body(bpy, scene, gt, body, look)
    occluders = []
    if backdrop:
        _add_floor_and_wall(bpy, scene, gt, look, bd)
        occluders = _add_occluders(bpy, scene, gt, look)
    with tempfile.TemporaryDirectory(prefix="tar-render-") as tmp:
        still = str(Path(tmp) / "frame.png")
        scene.render.filepath = still
        n = len(gt.verts_cam)
        for i in range(n):
            mesh.vertices.foreach_set("co", (gt.verts_cam[i] @ CV_TO_BLENDER.T).astype(np.float32).ravel())
            mesh.update()
            for obj, velocity in occluders:
                obj.location = tuple(velocity * (i / spec.fps))
            bpy.ops.render.render(write_still=True)
            img = cv2.imread(still, cv2.IMREAD_UNCHANGED)
            if img is None:
                raise RuntimeError(f"Blender wrote no image for frame {i}")
            if progress:
                progress(i + 1, n)
            yield img
