"""Scene settings and live capture state shown by the panel."""

from __future__ import annotations

import bpy
from bpy.props import (
    BoolProperty,
    CollectionProperty,
    EnumProperty,
    FloatProperty,
    IntProperty,
    PointerProperty,
    StringProperty,
)

SCENE_TIMING = [
    ("AUTO", "Clip's When Unanimated", "Take the clip's fps and frame range when nothing in the scene is animated"),
    ("YES", "Clip's", "The scene takes the clip's fps and frame range"),
    ("NO", "Keep Scene's", "Keep the scene's fps and range (keys still land at the clip's real times)"),
]


def at_playhead_property():
    """The import option shared by the capture panel and the import operator."""
    return BoolProperty(name="At Playhead", default=True,
                        description="The clip's first frame at the playhead (off: at the scene's start frame)")


def use_camera_property():
    """The import option shared by the capture panel and the import operator."""
    return BoolProperty(name="Use Clip Camera", default=False,
                        description="Make the clip's camera the scene camera and set the render size "
                                    "(always done when the scene has no camera)")


class TAR_PreviewPerson(bpy.types.PropertyGroup):
    """One person of the people preview (``Preview People``)."""

    person_id: IntProperty(name="Id", default=0, min=0)  # type: ignore
    label: StringProperty(name="Label", default="")  # type: ignore


class TAR_CaptureSettings(bpy.types.PropertyGroup):
    clip: StringProperty(name="Clip", description="Video file to capture", subtype="FILE_PATH")  # type: ignore
    engine: EnumProperty(  # type: ignore
        name="Engine",
        items=[
            ("AUTO", "Automatic", "TAR when a checkpoint is set in the preferences, else keypoints"),
            ("KEYPOINTS", "Keypoints", "MediaPipe landmarks fitted with the body model (no checkpoint needed)"),
            ("TAR", "TAR", "The TAR network: the checkpoint set in the preferences, else the built-in demo "
                           "checkpoint (trained on synthetic renders only)"),
        ],
        default="AUTO",
    )
    max_people: IntProperty(name="Max People", description="0 = everyone found", default=1, min=0, max=16)  # type: ignore
    focal_mode: EnumProperty(  # type: ignore
        name="Focal Length", items=[("AUTO", "Auto", "The engine's default: a field of view of about 53° diagonal"),
                                    ("MM", "Millimetres", "The lens, as a 35 mm-equivalent focal length")],
        default="AUTO",
    )
    focal_mm: FloatProperty(name="Focal Length (35 mm eq.)", default=35.0, min=1.0, soft_min=8.0,  # type: ignore
                            soft_max=300.0, subtype="DISTANCE_CAMERA", unit="CAMERA",
                            description="35 mm-equivalent focal length of the camera that filmed the clip")
    person: StringProperty(name="Person", default="",  # type: ignore
                           description="Empty: all people. Else one person: an id from the people preview "
                                       "(people.png in the output folder) or X,Y, a point on them in the first frame")
    motion_hz: FloatProperty(name="Motion Cut-off (Hz)", default=4.0, min=0.5, max=30.0,  # type: ignore
                             description="Keypoints engine: the motion's zero-phase low-pass, in Hz of real time. "
                                         "Lower is smoother; higher keeps faster moves (sport, dance)")
    with_mesh: BoolProperty(name="Body Mesh", default=True)  # type: ignore
    smoothing: FloatProperty(name="Smoothing", default=0.0, min=0.0, soft_max=8.0,  # type: ignore
                             description="Zero-phase filter width in frames (Gaussian sigma) applied to a copy of "
                                         "the motion; the raw action is kept. 0 = off")
    scene_timing: EnumProperty(name="Scene Timing", items=SCENE_TIMING, default="AUTO")  # type: ignore
    at_playhead: at_playhead_property()  # type: ignore
    use_camera: use_camera_property()  # type: ignore
    apply_to_selected: BoolProperty(name="Apply to Selected Rig", default=False,  # type: ignore
                                    description="Add the first person as a new take on the selected TAR rig")
    reuse: BoolProperty(name="Reuse Earlier Capture", default=True,  # type: ignore
                        description="Import the motion files of an earlier capture of the same clip with the same "
                                    "settings instead of running the engine again")
    output_dir: StringProperty(  # type: ignore
        name="Output", subtype="DIR_PATH",
        description="Motion files go to <this folder>/<clip>/ (empty: //mocap/<clip>/ next to the saved .blend)",
    )
    # The last people preview of the clip: who to pick from, and where its people.png is.
    people: CollectionProperty(type=TAR_PreviewPerson)  # type: ignore
    preview_clip: StringProperty(default="")  # type: ignore
    # Live state of a running capture.
    running: BoolProperty(default=False, options={"SKIP_SAVE"})  # type: ignore
    progress: FloatProperty(default=0.0, min=0.0, max=1.0, subtype="FACTOR", options={"SKIP_SAVE"})  # type: ignore
    status: StringProperty(default="", options={"SKIP_SAVE"})  # type: ignore


def _is_armature(self, obj):
    return obj.type == "ARMATURE"


BONE_MAPS = [
    ("rigify", "Rigify", "Generated Rigify rig (FK controls), else the metarig or the DEF- bones"),
    ("mixamo", "Mixamo", "mixamorig: bone names (any mixamorigN: prefix)"),
    ("smpl", "SMPL / SMPL-X", "SMPL joint names (pelvis, left_hip, …; or Pelvis, L_Hip, …)"),
    ("auto", "Auto", "Match common bone names; what cannot be matched is reported"),
    ("FILE", "Bone Map File", "A JSON bone map (see docs/retargeting.md)"),
]


class TAR_RetargetSettings(bpy.types.PropertyGroup):
    source: PointerProperty(name="Source", type=bpy.types.Object, poll=_is_armature,  # type: ignore
                            description="The captured rig (empty: the active object)")
    target: PointerProperty(name="Target", type=bpy.types.Object, poll=_is_armature,  # type: ignore
                            description="The armature that receives the motion")
    bone_map: EnumProperty(name="Bone Map", items=BONE_MAPS, default="rigify")  # type: ignore
    map_file: StringProperty(name="Map File", subtype="FILE_PATH")  # type: ignore
    take: StringProperty(name="Take", description="NLA track name (empty: the motion file's name)")  # type: ignore
    foot_ik: BoolProperty(name="Foot Contacts (IK)", default=True,  # type: ignore
                          description="Keep planted feet in place where the motion file has contacts")
    root_motion: BoolProperty(name="Root Motion", default=True,  # type: ignore
                              description="Move the character through the scene (off: in place, height only)")
    scale: EnumProperty(  # type: ignore
        name="Scale Root By",
        items=[("leg", "Leg Length", ""), ("hip", "Hip Height", ""), ("none", "None", "")],
        default="leg",
    )


def register():
    bpy.utils.register_class(TAR_PreviewPerson)
    bpy.utils.register_class(TAR_CaptureSettings)
    setattr(bpy.types.Scene, "tar_capture", PointerProperty(type=TAR_CaptureSettings))  # noqa: B010 (typed stubs)
    bpy.utils.register_class(TAR_RetargetSettings)
    setattr(bpy.types.Scene, "tar_retarget", PointerProperty(type=TAR_RetargetSettings))  # noqa: B010


def unregister():
    delattr(bpy.types.Scene, "tar_retarget")
    bpy.utils.unregister_class(TAR_RetargetSettings)
    delattr(bpy.types.Scene, "tar_capture")
    bpy.utils.unregister_class(TAR_CaptureSettings)
    bpy.utils.unregister_class(TAR_PreviewPerson)
