"""Add-on preferences: the engine's interpreter, optional SMPL file and TAR checkpoint, device."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import bpy
from bpy.props import EnumProperty, StringProperty

PACKAGE = __package__


def addon_prefs(context=None):
    context = context or bpy.context
    addon = context.preferences.addons.get(PACKAGE)
    return addon.preferences if addon else None


def engine_root() -> Path:
    """The folder that holds ``tar_core`` (the add-on folder when installed, the repo in development)."""
    here = Path(__file__).resolve().parent
    return here if (here / "tar_core").is_dir() else here.parent


def engine_venv_dir(create: bool = False) -> Path:
    try:
        return Path(bpy.utils.extension_path_user(PACKAGE, path="engine-venv", create=create))
    except (ValueError, AttributeError):  # not installed as an extension (development checkout)
        return engine_root() / ".engine-venv"


def engine_python(context=None) -> str:
    """Interpreter for the engine: $TAR_PYTHON, the preference, the set-up venv, else this Python."""
    if os.environ.get("TAR_PYTHON"):
        return os.environ["TAR_PYTHON"]
    prefs = addon_prefs(context)
    if prefs and prefs.python_path:
        return bpy.path.abspath(prefs.python_path)
    venv_py = engine_venv_dir() / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    return str(venv_py) if venv_py.is_file() else sys.executable


class TAR_AddonPreferences(bpy.types.AddonPreferences):
    bl_idname = PACKAGE

    python_path: StringProperty(  # type: ignore
        name="Engine Python", subtype="FILE_PATH",
        description="Python interpreter with torch for the engine (TAR_PYTHON overrides; empty: the set-up venv)",
    )
    smpl_path: StringProperty(  # type: ignore
        name="SMPL Model", subtype="FILE_PATH",
        description="Your licensed SMPL file (.npz; convert a .pkl with the engine). Empty: the built-in mannequin",
    )
    checkpoint: StringProperty(  # type: ignore
        name="TAR Checkpoint", subtype="FILE_PATH", description="Empty: the keypoints engine is used",
    )
    device: EnumProperty(  # type: ignore
        name="Device", items=[("auto", "Automatic", ""), ("cpu", "CPU", ""), ("cuda", "CUDA GPU", "")], default="auto"
    )

    def draw(self, context):
        layout = self.layout
        layout.prop(self, "python_path")
        row = layout.row()
        row.label(text=f"Engine: {engine_python(context)}")
        row.operator("tar.setup_engine", icon="CONSOLE")
        layout.prop(self, "smpl_path")
        layout.prop(self, "checkpoint")
        layout.prop(self, "device")
        if not self.smpl_path:
            layout.label(text="No SMPL file: the built-in license-free mannequin body is used.", icon="INFO")


def register():
    bpy.utils.register_class(TAR_AddonPreferences)


def unregister():
    bpy.utils.unregister_class(TAR_AddonPreferences)
