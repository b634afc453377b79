"""Operators: they declare options and forward to ``importer.load`` or the engine runner."""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import bpy
from bpy.props import BoolProperty, CollectionProperty, EnumProperty, FloatProperty, StringProperty
from bpy_extras.io_utils import ImportHelper

from . import actions, importer
from .logic.engine import EngineRun, capture_command
from .logic.motion import MotionError
from .preferences import addon_prefs, engine_python, engine_root, engine_venv_dir

# The one capture that may run at a time (Blender operators are not re-entrant per scene).
_ACTIVE: dict = {"run": None, "cancel": False}


def _report_fn(op):
    return lambda level, msg: op.report({level}, msg)


class TAR_OT_import_motion(bpy.types.Operator, ImportHelper):
    """Import TAR motion files (.npz) as keyframed SMPL rigs"""

    bl_idname = "tar.import_motion"
    bl_label = "Import TAR Motion"
    bl_options = {"REGISTER", "UNDO", "PRESET"}

    filename_ext = ".npz"
    filter_glob: StringProperty(default="*.npz", options={"HIDDEN"})  # type: ignore
    files: CollectionProperty(type=bpy.types.OperatorFileListElement, options={"HIDDEN", "SKIP_SAVE"})  # type: ignore
    directory: StringProperty(subtype="DIR_PATH", options={"HIDDEN", "SKIP_SAVE"})  # type: ignore
    with_mesh: BoolProperty(name="Body Mesh", default=True)  # type: ignore
    with_camera: BoolProperty(name="Camera", default=True)  # type: ignore
    set_scene: EnumProperty(  # type: ignore
        name="Scene Timing",
        items=[("AUTO", "When Fresh", "Take fps and frame range if the scene has no rig yet"),
               ("YES", "Always", ""), ("NO", "Never", "")],
        default="AUTO",
    )
    video: StringProperty(name="Clip", subtype="FILE_PATH", description="Clip shown behind the camera")  # type: ignore
    smoothing: FloatProperty(name="Smoothing", default=0.0, min=0.0, soft_max=8.0,  # type: ignore
                             description="Zero-phase filter width in frames (Gaussian sigma) applied to a copy of "
                                         "the motion; the raw action is kept. 0 = off")

    def execute(self, context):
        paths = [str(Path(self.directory) / f.name) for f in self.files if f.name] or [self.filepath]
        prefs = addon_prefs(context)
        try:
            result = importer.load(context, paths, with_mesh=self.with_mesh, with_camera=self.with_camera,
                                   set_scene=self.set_scene, video=bpy.path.abspath(self.video) if self.video else None,
                                   smpl_path=bpy.path.abspath(prefs.smpl_path) if prefs and prefs.smpl_path else None,
                                   report=_report_fn(self))
        except (MotionError, FileNotFoundError, ValueError) as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        _smooth(result, self.smoothing)
        return {"FINISHED"}


def _smooth(result, strength: float) -> None:
    """Smoothed copies of freshly imported motions (the raw actions stay, with a fake user)."""
    if strength > 0:
        for arm in result.armatures:
            actions.smooth_copy(arm, strength)


def _capture_cmd(context, out_dir: str) -> list[str]:
    s = context.scene.tar_capture
    prefs = addon_prefs(context)
    checkpoint = bpy.path.abspath(prefs.checkpoint) if prefs and prefs.checkpoint else ""
    engine = {"AUTO": "auto", "KEYPOINTS": "keypoints", "TAR": "tar"}[s.engine]
    if engine == "keypoints":
        checkpoint = ""
    return capture_command(
        engine_python(context), bpy.path.abspath(s.clip), out_dir, engine=engine, checkpoint=checkpoint,
        body=bpy.path.abspath(prefs.smpl_path) if prefs and prefs.smpl_path else "",
        device=prefs.device if prefs else "auto", focal=s.focal, max_people=s.max_people,
        person=getattr(s, "person", ""),
    )


class CaptureJob:
    """One capture: start the engine, ``step`` it (poll progress, import when it ends), cancel.

    The modal operator calls ``step`` on timer events; the blocking path loops over it; tests drive
    it step by step.
    """

    def __init__(self, context, report):
        self.report = report
        s = context.scene.tar_capture
        self.clip = bpy.path.abspath(s.clip)
        if not s.clip or not Path(self.clip).is_file():
            raise FileNotFoundError(f"Clip not found: {self.clip or '(none chosen)'}")
        self.out_dir = bpy.path.abspath(s.output_dir) if s.output_dir else tempfile.mkdtemp(prefix="tar-capture-")
        try:
            self.run = EngineRun(_capture_cmd(context, self.out_dir), engine_path=engine_root())
        except OSError as exc:
            raise OSError(f"Cannot start the engine ({exc}); set it up in the add-on preferences") from None
        _ACTIVE.update(run=self.run, cancel=False)
        s.running, s.progress, s.status = True, 0.0, "Starting engine…"

    def step(self, context) -> str:
        """Poll once: 'RUNNING', or the final 'FINISHED' / 'CANCELLED' (after importing / reporting)."""
        run, s = self.run, context.scene.tar_capture
        if _ACTIVE["cancel"] and not run.cancelled:
            s.status = "Cancelling…"
            run.cancel()
        run.poll()
        p = run.last_progress
        if p:
            total = max(int(p.get("total") or 0), 1)
            s.progress = min(1.0, float(p.get("done", 0)) / total)
            s.status = f"{p.get('stage', 'working')}: {p.get('done', 0)}/{p.get('total', '?')}"
        if run.running:
            return "RUNNING"
        run.wait()
        return self._finish(context)

    def _finish(self, context) -> str:
        run, s = self.run, context.scene.tar_capture
        _ACTIVE.update(run=None, cancel=False)
        s.running, s.progress = False, 0.0
        failure = run.failure_message()
        if failure:
            s.status = failure
            self.report("WARNING" if run.cancelled else "ERROR", f"TAR capture: {failure}")
            return "CANCELLED"
        outputs = run.outputs or sorted(str(p) for p in Path(self.out_dir).glob("person_*.npz"))
        if not outputs:
            s.status = "The engine wrote no motion file"
            self.report("ERROR", s.status)
            return "CANCELLED"
        prefs = addon_prefs(context)
        try:
            result = importer.load(context, outputs, with_mesh=s.with_mesh, video=self.clip,
                                   smpl_path=bpy.path.abspath(prefs.smpl_path) if prefs and prefs.smpl_path else None,
                                   report=self.report)
        except (MotionError, FileNotFoundError, ValueError) as exc:
            s.status = str(exc)
            self.report("ERROR", f"TAR capture: {exc}")
            return "CANCELLED"
        _smooth(result, s.smoothing)
        s.status = f"Imported {len(outputs)} person(s)"
        return "FINISHED"


class TAR_OT_capture(bpy.types.Operator):
    """Run the engine on the clip and import the people it finds (Esc cancels)"""

    bl_idname = "tar.capture"
    bl_label = "Capture from Video"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context):
        return _ACTIVE["run"] is None

    def _job(self, context):
        try:
            return CaptureJob(context, lambda level, msg: self.report({level}, msg))
        except OSError as exc:  # FileNotFoundError included
            self.report({"ERROR"}, str(exc))
            return None

    def execute(self, context):
        """Blocking path (background mode, scripts)."""
        job = self._job(context)
        if job is None:
            return {"CANCELLED"}
        while (state := job.step(context)) == "RUNNING":
            time.sleep(0.1)
        return {state}

    def invoke(self, context, event):
        if bpy.app.background:
            return self.execute(context)
        self.job = self._job(context)
        if self.job is None:
            return {"CANCELLED"}
        wm = context.window_manager
        self._timer = wm.event_timer_add(0.1, window=context.window)
        wm.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def modal(self, context, event):
        if event.type == "ESC":
            _ACTIVE["cancel"] = True
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        state = self.job.step(context)
        for area in context.screen.areas if context.screen else []:
            if area.type == "VIEW_3D":
                area.tag_redraw()
        if state == "RUNNING":
            return {"PASS_THROUGH"}
        context.window_manager.event_timer_remove(self._timer)
        return {state}


class TAR_OT_cancel_capture(bpy.types.Operator):
    """Stop the running capture; people already finished are kept"""

    bl_idname = "tar.cancel_capture"
    bl_label = "Cancel"

    @classmethod
    def poll(cls, context):
        return _ACTIVE["run"] is not None

    def execute(self, context):
        _ACTIVE["cancel"] = True
        return {"FINISHED"}


class TAR_OT_setup_engine(bpy.types.Operator):
    """Create a Python environment for the engine and install its requirements (needs the network)"""

    bl_idname = "tar.setup_engine"
    bl_label = "Set up engine"

    def execute(self, context):
        venv = engine_venv_dir(create=True)
        req = engine_root() / "tar_core" / "requirements.txt"
        py = venv / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")
        steps = [[sys.executable, "-m", "venv", str(venv)],
                 [str(py), "-m", "pip", "install", "torch==2.13.0"],
                 [str(py), "-m", "pip", "install", "-r", str(req)]]
        for cmd in steps:
            self.report({"INFO"}, " ".join(cmd))
            run = EngineRun(cmd)
            rc = run.wait()
            for line in list(run.stderr_tail)[-5:]:
                print(line)
            if rc != 0:
                self.report({"ERROR"}, f"engine set-up failed at: {' '.join(cmd[:4])} (exit {rc})")
                return {"CANCELLED"}
        self.report({"INFO"}, f"Engine ready: {py}")
        return {"FINISHED"}


class TAR_OT_retarget(bpy.types.Operator):
    """Bake the captured motion onto the target armature, as an NLA track named after the take"""

    bl_idname = "tar.retarget"
    bl_label = "Retarget"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        from . import retarget
        from .logic.bone_maps import BoneMapError
        from .logic.retarget import RetargetOptions

        s = context.scene.tar_retarget
        source = s.source or context.active_object
        choice = bpy.path.abspath(s.map_file) if s.bone_map == "FILE" else s.bone_map
        if s.bone_map == "FILE" and not s.map_file:
            self.report({"ERROR"}, "choose a bone map file")
            return {"CANCELLED"}
        options = RetargetOptions(root_motion=s.root_motion, scale=s.scale, foot_ik=s.foot_ik)
        try:
            retarget.retarget_armature(context, source, s.target, choice, take=s.take or None, options=options,
                                       report=_report_fn(self))
        except (BoneMapError, retarget.RetargetError, ValueError) as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        return {"FINISHED"}


class TAR_OT_smooth_motion(bpy.types.Operator):
    """Smooth the active rig's motion into a copy (the raw action is kept)"""

    bl_idname = "tar.smooth_motion"
    bl_label = "Smooth Motion"
    bl_options = {"REGISTER", "UNDO"}

    strength: FloatProperty(name="Smoothing", default=2.0, min=0.0, soft_max=8.0,  # type: ignore
                            description="Zero-phase filter width in frames (Gaussian sigma)")

    @classmethod
    def poll(cls, context):
        obj = context.active_object
        return obj is not None and obj.animation_data is not None and obj.animation_data.action is not None

    def execute(self, context):
        obj = context.active_object
        raw = bpy.data.actions.get(obj.get("tar_raw_action", ""))
        if raw is not None:  # smooth the raw motion again, not the last smoothed copy
            obj.animation_data.action = raw
        actions.smooth_copy(obj, self.strength)
        return {"FINISHED"}


def menu_import(self, context):
    self.layout.operator(TAR_OT_import_motion.bl_idname, text="TAR Motion (.npz)")


CLASSES = (TAR_OT_import_motion, TAR_OT_capture, TAR_OT_cancel_capture, TAR_OT_setup_engine, TAR_OT_retarget,
           TAR_OT_smooth_motion)


def register():
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    bpy.types.TOPBAR_MT_file_import.append(menu_import)


def unregister():
    bpy.types.TOPBAR_MT_file_import.remove(menu_import)
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
