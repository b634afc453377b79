"""The TAR Mocap tab in the 3D View's sidebar."""

from __future__ import annotations

import bpy

from .logic.workflow import picked_person
from .operators import _ACTIVE
from .preferences import _SETUP, addon_prefs, draw_engine_status, engine_configured


class _Sidebar:
    """Where the add-on's panels live: the 3D View's sidebar, tab TAR Mocap."""

    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "TAR Mocap"


class TAR_PT_capture(_Sidebar, bpy.types.Panel):
    bl_label = "Capture from Video"
    bl_idname = "TAR_PT_capture"

    def draw(self, context):
        layout = self.layout
        assert layout is not None  # always set while drawing
        s = context.scene.tar_capture
        layout.prop(s, "clip")
        layout.prop(s, "engine")
        col = layout.column(align=True)
        col.prop(s, "max_people")
        row = col.row(align=True)
        row.prop(s, "focal_mode", text="Focal")
        if s.focal_mode == "MM":
            row.prop(s, "focal_mm", text="")
        col.prop(s, "person", text="Person (empty: all)")
        row = col.row()
        row.enabled = _ACTIVE["run"] is None
        row.operator("tar.preview_people", icon="VIEWZOOM")
        if s.people and s.preview_clip == s.clip:
            _draw_people(col.box(), s)
        if s.engine != "TAR":
            col.prop(s, "motion_hz")
        col.prop(s, "with_mesh")
        col.prop(s, "smoothing")
        col = layout.column(align=True)
        col.prop(s, "scene_timing", text="Timing")
        col.prop(s, "at_playhead")
        col.prop(s, "use_camera")
        col.prop(s, "apply_to_selected")
        col.prop(s, "reuse")
        layout.prop(s, "output_dir")
        if _ACTIVE["run"] is not None:
            if hasattr(layout, "progress"):
                layout.progress(factor=s.progress, type="BAR", text=s.status or "Working…")
            else:
                layout.label(text=s.status)
            layout.operator("tar.cancel_capture", icon="CANCEL")
        else:
            layout.operator("tar.capture", icon="REC")
            if s.status:
                layout.label(text=s.status)
        if not engine_configured(context) or _SETUP["run"] is not None or _SETUP["message"]:
            draw_engine_status(layout, context)
        prefs = addon_prefs(context)
        if prefs is not None and not prefs.smpl_path:
            layout.label(text="Body: built-in mannequin", icon="INFO")
        if s.engine == "TAR" and (prefs is None or not prefs.checkpoint):
            layout.label(text="TAR: built-in demo checkpoint (synthetic)", icon="INFO")
        layout.separator()
        layout.operator("tar.import_motion", icon="IMPORT")


def _draw_people(layout, s) -> None:
    """The preview's people, one button each (pressed: the one the Person field names), and All People."""
    picked = picked_person(s.person, [p.person_id for p in s.people])
    layout.operator("tar.pick_person", text="All People", depress=not s.person.strip()).person_id = -1
    for p in s.people:
        layout.operator("tar.pick_person", text=p.label, depress=picked == p.person_id).person_id = p.person_id


class TAR_PT_retarget(_Sidebar, bpy.types.Panel):
    bl_label = "Retarget to…"
    bl_idname = "TAR_PT_retarget"

    def draw(self, context):
        layout = self.layout
        assert layout is not None  # always set while drawing
        s = context.scene.tar_retarget
        layout.prop(s, "source")
        layout.prop(s, "target")
        layout.prop(s, "bone_map")
        if s.bone_map == "FILE":
            layout.prop(s, "map_file")
        col = layout.column(align=True)
        col.prop(s, "root_motion")
        col.prop(s, "scale")
        col.prop(s, "foot_ik")
        layout.prop(s, "take")
        row = layout.row()
        row.enabled = s.target is not None
        row.operator("tar.retarget", icon="ARMATURE_DATA")
        layout.operator("tar.smooth_motion", icon="SMOOTHCURVE")


def register():
    bpy.utils.register_class(TAR_PT_capture)
    bpy.utils.register_class(TAR_PT_retarget)


def unregister():
    bpy.utils.unregister_class(TAR_PT_retarget)
    bpy.utils.unregister_class(TAR_PT_capture)
