"""Scene settings and live capture state shown by the panel."""

from __future__ import annotations

import bpy
from bpy.props import BoolProperty, EnumProperty, FloatProperty, IntProperty, PointerProperty, StringProperty


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
    focal: FloatProperty(name="Focal Length (px)", description="0 = sqrt(width^2 + height^2)",  # type: ignore
                         default=0.0, min=0.0, soft_max=10000.0)
    with_mesh: BoolProperty(name="Body Mesh", default=True)  # type: ignore
    output_dir: StringProperty(name="Output", description="Where motion files go (empty: a temporary folder)",  # type: ignore
                               subtype="DIR_PATH")
    # Live state of a running capture.
    running: BoolProperty(default=False, options={"SKIP_SAVE"})  # type: ignore
    progress: FloatProperty(default=0.0, min=0.0, max=1.0, subtype="FACTOR", options={"SKIP_SAVE"})  # type: ignore
    status: StringProperty(default="", options={"SKIP_SAVE"})  # type: ignore


def register():
    bpy.utils.register_class(TAR_CaptureSettings)
    bpy.types.Scene.tar_capture = PointerProperty(type=TAR_CaptureSettings)


def unregister():
    del bpy.types.Scene.tar_capture
    bpy.utils.unregister_class(TAR_CaptureSettings)
