"""Add-on preferences: the engine's interpreter, optional SMPL file and TAR checkpoint, device."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import bpy
from bpy.props import EnumProperty, StringProperty

from .logic.setup import venv_python, venv_ready
from .logic.workflow import check_checkpoint, check_python, check_smpl_file

PACKAGE: str = __package__ or "tar_blender"


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
        return Path(bpy.utils.extension_path_user(PACKAGE or "", path="engine-venv", create=create))
    except (ValueError, AttributeError):  # not installed as an extension (development checkout)
        return engine_root() / ".engine-venv"


def engine_python(context=None) -> str:
    """Interpreter for the engine: $TAR_PYTHON, the preference, the set-up venv, else this Python."""
    if os.environ.get("TAR_PYTHON"):
        return os.environ["TAR_PYTHON"]
    prefs = addon_prefs(context)
    if prefs and prefs.python_path:
        return bpy.path.abspath(prefs.python_path)
    venv = engine_venv_dir()
    return str(venv_python(venv)) if venv_ready(venv) else sys.executable


def engine_configured(context=None) -> bool:
    """An engine interpreter was chosen ($TAR_PYTHON, the preference) or set up (a finished venv)."""
    prefs = addon_prefs(context)
    return bool(os.environ.get("TAR_PYTHON") or (prefs and prefs.python_path) or venv_ready(engine_venv_dir()))


def motion_base_dir(context=None) -> tuple[Path, str]:
    """Where capture folders go, and why: the user's folder, ``//mocap`` next to the saved .blend,
    else the add-on's user data folder (never a temporary one)."""
    context = context or bpy.context
    s = context.scene.tar_capture
    if s.output_dir:
        return Path(bpy.path.abspath(s.output_dir)), "the Output folder"
    if bpy.data.filepath:
        return Path(bpy.path.abspath("//mocap")), "next to the .blend"
    try:
        base = Path(bpy.utils.extension_path_user(PACKAGE or "", path="mocap", create=True))
    except (ValueError, AttributeError):  # not installed as an extension (development checkout)
        base = Path(bpy.utils.user_resource("DATAFILES", path="tar_mocap/mocap", create=True))
    return base, "the add-on's user folder (save the .blend to keep motion files next to it)"


# Engine set-up and check (operators run them): their state, drawn here and in the panel.
_SETUP: dict = {"run": None, "check": None, "check_events": [], "message": "", "error": False}


def draw_engine_status(layout, context) -> None:
    """The engine row of the preferences and the panel: set-up progress, the last message, buttons."""
    run = _SETUP["run"]
    box = layout.box()
    if run is not None and not run.finished:
        frac, text = run.status()
        if hasattr(box, "progress"):
            box.progress(factor=frac, type="BAR", text=text)
        else:
            box.label(text=text)
        box.operator("tar.cancel_setup", icon="CANCEL")
        return
    if _SETUP["message"]:
        row = box.row()
        row.alert = bool(_SETUP["error"])
        row.label(text=_SETUP["message"], icon="ERROR" if _SETUP["error"] else "INFO")
    if not engine_configured(context):
        box.label(text="No engine yet: Set up engine installs it (about 1 GB from the internet)", icon="ERROR")
    else:
        box.label(text=f"Engine: {engine_python(context)}")
    row = box.row()
    row.operator("tar.setup_engine", icon="CONSOLE")
    row.operator("tar.check_engine", icon="CHECKMARK")


# Preferences are checked when they are set: a bad value is refused at once, with the reason.
_REVERTING: set[str] = set()


def _validator(prop: str, check):
    def update(self, context):
        if prop in _REVERTING:
            return
        value = getattr(self, prop)
        reason = check(bpy.path.abspath(value)) if value else None
        setattr(self, f"{prop}_error", reason or "")
        if reason:
            _REVERTING.add(prop)
            try:
                setattr(self, prop, "")
            finally:
                _REVERTING.discard(prop)
            print(f"TAR Mocap: {reason}")
            wm = context.window_manager if context and not bpy.app.background else None
            if wm is not None and getattr(context, "window", None) is not None:
                wm.popup_menu(lambda menu, _c: menu.layout.label(text=reason), title="Refused", icon="ERROR")
    return update


class TAR_AddonPreferences(bpy.types.AddonPreferences):
    bl_idname = PACKAGE

    python_path: StringProperty(  # type: ignore
        name="Engine Python", subtype="FILE_PATH", update=_validator("python_path", check_python),
        description="Python interpreter with torch for the engine (TAR_PYTHON overrides; empty: the set-up venv)",
    )
    smpl_path: StringProperty(  # type: ignore
        name="SMPL Model", subtype="FILE_PATH", update=_validator("smpl_path", check_smpl_file),
        description="Your licensed SMPL file (.npz; convert a .pkl with the engine). Empty: the built-in mannequin",
    )
    checkpoint: StringProperty(  # type: ignore
        name="TAR Checkpoint", subtype="FILE_PATH", update=_validator("checkpoint", check_checkpoint),
        description="Empty: the keypoints engine is used",
    )
    device: EnumProperty(  # type: ignore
        name="Device", items=[("auto", "Automatic", ""), ("cpu", "CPU", ""), ("cuda", "CUDA GPU", "")], default="auto"
    )
    pip_index_url: StringProperty(  # type: ignore
        name="Package Index", description="Set up engine installs from this index (a mirror) instead of PyPI "
                                          "and the PyTorch CPU index. Empty: the public ones",
    )
    python_path_error: StringProperty()  # type: ignore
    smpl_path_error: StringProperty()  # type: ignore
    checkpoint_error: StringProperty()  # type: ignore

    def draw(self, context):
        layout = self.layout

        assert layout is not None  # always set while drawing
        layout.prop(self, "python_path")
        _error(layout, self.python_path_error)
        draw_engine_status(layout, context)
        layout.prop(self, "pip_index_url")
        layout.prop(self, "smpl_path")
        _error(layout, self.smpl_path_error)
        layout.prop(self, "checkpoint")
        _error(layout, self.checkpoint_error)
        layout.prop(self, "device")
        if not self.smpl_path:
            layout.label(text="No SMPL file: the built-in license-free mannequin body is used.", icon="INFO")


def _error(layout, text: str) -> None:
    if text:
        row = layout.row()
        row.alert = True
        row.label(text=text, icon="ERROR")


def register():
    bpy.utils.register_class(TAR_AddonPreferences)


def unregister():
    bpy.utils.unregister_class(TAR_AddonPreferences)
