"""Operators: they declare options and forward to ``importer.load`` or the engine runner."""

from __future__ import annotations

import atexit
import subprocess
import sys
import time
from pathlib import Path
from typing import cast

import bpy
from bpy.app.handlers import persistent
from bpy.props import BoolProperty, CollectionProperty, EnumProperty, FloatProperty, IntProperty, StringProperty
from bpy_extras.io_utils import ImportHelper

from . import actions, importer
from .logic.engine import EngineRun, capture_command, people_preview
from .logic.motion import MotionError
from .logic.setup import CHECK_SCRIPT, SetupRun, has_nvidia_gpu, setup_steps, venv_python, venv_ready
from .logic.workflow import (
    NO_ENGINE_HINT,
    cache_key,
    cached_outputs,
    capture_folder,
    check_smpl_file,
    clip_name,
    engine_missing,
    focal_mm_to_pixels,
    person_label,
    preview_folder,
    preview_status,
    stage_progress,
    write_cache,
)
from .preferences import _SETUP, addon_prefs, engine_python, engine_root, engine_venv_dir, motion_base_dir
from .properties import SCENE_TIMING, at_playhead_property, use_camera_property

# The one capture that may run at a time (Blender operators are not re-entrant per scene).
_ACTIVE: dict = {"run": None, "job": None, "cancel": False}


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
        name="Scene Timing", items=SCENE_TIMING, default="AUTO",
    )
    at_playhead: at_playhead_property()  # type: ignore
    use_camera: use_camera_property()  # type: ignore
    apply_to_selected: BoolProperty(name="Apply to Selected Rig", default=False,  # type: ignore
                                    description="Add the motion as a new take on the selected TAR rig "
                                                "instead of building a new rig")
    video: StringProperty(name="Clip", subtype="FILE_PATH", description="Clip shown behind the camera")  # type: ignore
    smoothing: FloatProperty(name="Smoothing", default=0.0, min=0.0, soft_max=8.0,  # type: ignore
                             description="Zero-phase filter width in frames (Gaussian sigma) applied to a copy of "
                                         "the motion; the raw action is kept. 0 = off")

    def execute(self, context):
        paths = [str(Path(self.directory) / f.name) for f in self.files if f.name] or [
            self.filepath]  # pyright: ignore[reportAttributeAccessIssue] (ImportHelper's property)
        prefs = addon_prefs(context)
        try:
            target = context.active_object if self.apply_to_selected else None
            if self.apply_to_selected and not importer.same_layout(target):
                raise ValueError("Apply to Selected Rig: select a TAR capture rig (an armature with the SMPL layout)")
            result = importer.load(context, paths, with_mesh=self.with_mesh, with_camera=self.with_camera,
                                   set_scene=self.set_scene, at_playhead=self.at_playhead, target=target,
                                   set_camera="YES" if self.use_camera else "AUTO",
                                   video=bpy.path.abspath(self.video) if self.video else None,
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


def _engine_settings(context, clip: str) -> dict:
    """Everything the engine's result depends on besides the clip (the cache key's other half)."""
    s = context.scene.tar_capture
    prefs = addon_prefs(context)
    engine = {"AUTO": "auto", "KEYPOINTS": "keypoints", "TAR": "tar"}[s.engine]
    checkpoint = bpy.path.abspath(prefs.checkpoint) if prefs and prefs.checkpoint and engine != "keypoints" else ""
    focal = 0.0
    if s.focal_mode == "MM":
        width, height = _clip_size(clip)
        focal = round(focal_mm_to_pixels(s.focal_mm, width, height), 3)
    return {"engine": engine, "checkpoint": checkpoint,
            "body": bpy.path.abspath(prefs.smpl_path) if prefs and prefs.smpl_path else "",
            "device": prefs.device if prefs else "auto", "focal": focal, "max_people": s.max_people,
            "person": s.person.strip(), "smooth_hz": round(s.motion_hz, 3)}


def _clip_size(clip: str) -> tuple[int, int]:
    """The clip's width and height as Blender reads them (for a focal length given in millimetres)."""
    try:
        movie = bpy.data.movieclips.load(clip, check_existing=True)
    except RuntimeError:
        raise ValueError(f"cannot read the size of {Path(clip).name}: use Focal Length Auto") from None
    width, height = (int(v) for v in movie.size)  # pyright: ignore[reportGeneralTypeIssues]
    if movie.users == 0:
        bpy.data.movieclips.remove(movie)
    if width <= 0 or height <= 0:
        raise ValueError(f"cannot read the size of {Path(clip).name}: use Focal Length Auto")
    return width, height


def _no_engine(message: str) -> str:
    return f"{message}. {NO_ENGINE_HINT}"


CANCEL_GRACE_S = 5.0  # after SIGINT the engine gets this long to flush finished people, then SIGKILL


class _EngineJob:
    """What a capture and a people preview share: following the engine's progress, and cancel (SIGINT at
    once, SIGKILL after ``CANCEL_GRACE_S``) without blocking."""

    run: EngineRun | None
    started: float
    engine = "keypoints"  # whose stage names the progress label follows
    _interrupted_at: float | None = None

    def _advance(self, context) -> bool:
        """One poll of the running engine; True while it runs."""
        run, s = self.run, context.scene.tar_capture
        assert run is not None
        if _ACTIVE["cancel"] and not run.cancelled:
            s.status = "Cancelling: keeping the people already finished…"
            run.interrupt()
            self._interrupted_at = time.monotonic()
        elif self._interrupted_at is not None and time.monotonic() - self._interrupted_at > CANCEL_GRACE_S:
            run.kill()
        run.poll()
        if not run.running:
            return False
        if not run.cancelled:
            p = run.last_progress or {}
            frac, label = stage_progress(p.get("stage"), p.get("done", 0), p.get("total"), self.engine)
            s.progress = frac
            s.status = f"{label} ({time.monotonic() - self.started:.0f} s)"
        return True


class CaptureJob(_EngineJob):
    """One capture: start the engine (or reuse an identical earlier capture), ``step`` it (poll
    progress, import when it ends), cancel without blocking.

    The modal operator calls ``step`` on timer events; the blocking path loops over it; tests drive
    it step by step. A file load abandons the job (``stop_engine``): the engine is killed and the
    job never touches the new file.
    """

    def __init__(self, context, report):
        self.report = report
        scene = context.scene
        s = scene.tar_capture
        self.clip = bpy.path.abspath(s.clip)
        if not s.clip or not Path(self.clip).is_file():
            raise FileNotFoundError(f"Clip not found: {self.clip or '(none chosen)'}")
        prefs = addon_prefs(context)
        reason = check_smpl_file(bpy.path.abspath(prefs.smpl_path)) if prefs and prefs.smpl_path else None
        if reason:
            raise ValueError(reason)
        self.target = None
        if s.apply_to_selected:
            obj = context.active_object
            if not importer.same_layout(obj):
                raise ValueError("Apply to Selected Rig: select a TAR capture rig (an armature with the SMPL layout)")
            self.target = obj.name
        self.playhead = scene.frame_current
        self.name = clip_name(self.clip)
        self.settings = _engine_settings(context, self.clip)
        engine = self.settings["engine"]  # "auto" runs TAR when a checkpoint is set (the engine's own rule)
        self.engine = "tar" if engine == "tar" or (engine == "auto" and self.settings["checkpoint"]) else "keypoints"
        self.key = cache_key(self.clip, self.settings)
        base, why = motion_base_dir(context)
        self.out_dir = capture_folder(base, self.name, self.key)
        self.where = why
        self.started = time.monotonic()
        self.abandoned = False
        self._interrupted_at: float | None = None
        self.run: EngineRun | None = None
        self.cached = cached_outputs(self.out_dir, self.key) if s.reuse else None
        if self.cached is None:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            cmd = capture_command(engine_python(context), self.clip, str(self.out_dir), **self.settings)
            try:
                self.run = EngineRun(cmd, engine_path=engine_root(), log_path=self.out_dir / "engine.log")
            except OSError as exc:
                raise OSError(_no_engine(f"Cannot start the engine ({exc})")) from None
        _ACTIVE.update(run=self.run, job=self, cancel=False)
        s.running, s.progress = True, 0.0
        s.status = "Reusing the earlier capture…" if self.cached else "Starting engine…"

    def step(self, context) -> str:
        """Poll once: 'RUNNING', or the final 'FINISHED' / 'CANCELLED' (after importing / reporting)."""
        if self.abandoned:
            return "CANCELLED"
        if self.run is None:  # a cached capture: import at once
            return self._finish(context)
        if self._advance(context):
            return "RUNNING"
        self.run.wait()
        return self._finish(context)

    def _finish(self, context) -> str:
        run, s = self.run, context.scene.tar_capture
        _ACTIVE.update(run=None, job=None, cancel=False)
        s.running, s.progress = False, 0.0
        if run is None:
            outputs = self.cached or []
        else:
            failure = run.failure_message()
            outputs = [p for p in run.outputs if Path(p).is_file()]
            if failure and not (run.cancelled and outputs):
                if not run.cancelled and engine_missing(failure, run.returncode):
                    failure = _no_engine(failure)
                s.status = failure
                self.report("WARNING" if run.cancelled else "ERROR", f"TAR capture: {failure}")
                return "CANCELLED"
            if not failure:
                outputs = outputs or sorted(str(p) for p in self.out_dir.glob("person_*.npz"))
                if outputs:
                    write_cache(self.out_dir, self.key, outputs, self.settings)
        if not outputs:
            s.status = "The engine wrote no motion file"
            self.report("ERROR", s.status)
            return "CANCELLED"
        prefs = addon_prefs(context)
        target = bpy.data.objects.get(self.target) if self.target else None
        try:
            result = importer.load(context, outputs, with_mesh=s.with_mesh, video=self.clip,
                                   set_scene=s.scene_timing, at_playhead=s.at_playhead, start_frame=self.playhead,
                                   set_camera="YES" if s.use_camera else "AUTO", target=target, take_clip=self.name,
                                   smpl_path=bpy.path.abspath(prefs.smpl_path) if prefs and prefs.smpl_path else None,
                                   report=self.report)
        except (MotionError, FileNotFoundError, ValueError) as exc:
            s.status = str(exc)
            self.report("ERROR", f"TAR capture: {exc}")
            return "CANCELLED"
        _smooth(result, s.smoothing)
        kept = f"Cancelled: kept {len(outputs)} finished person(s)" if run is not None and run.cancelled else (
            f"Imported {len(outputs)} person(s)" + (" (reused the earlier capture)" if run is None else ""))
        s.status = kept
        self.report("INFO", f"{kept}; motion files in {self.out_dir} ({self.where})")
        return "FINISHED"


class PreviewJob(_EngineJob):
    """The people preview: the engine's ``capture --list-people`` on the clip (tracking only) into the clip's
    preview folder; when it ends, the panel's people list is filled from its ``people.json`` and its
    ``people.png`` is loaded as an image, so the user can pick one person (``tar.pick_person``)."""

    def __init__(self, context, report):
        self.report = report
        s = context.scene.tar_capture
        self.clip = bpy.path.abspath(s.clip)
        if not s.clip or not Path(self.clip).is_file():
            raise FileNotFoundError(f"Clip not found: {self.clip or '(none chosen)'}")
        base, _why = motion_base_dir(context)
        self.out_dir = preview_folder(base, clip_name(self.clip))
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.started = time.monotonic()
        self.abandoned = False
        prefs = addon_prefs(context)
        cmd = capture_command(engine_python(context), self.clip, str(self.out_dir), engine="keypoints",
                              device=prefs.device if prefs else "auto", list_people=True)
        try:
            self.run = EngineRun(cmd, engine_path=engine_root(), log_path=self.out_dir / "engine.log")
        except OSError as exc:
            raise OSError(_no_engine(f"Cannot start the engine ({exc})")) from None
        _ACTIVE.update(run=self.run, job=self, cancel=False)
        s.running, s.progress, s.status = True, 0.0, "Finding people…"

    def step(self, context) -> str:
        """Poll once: 'RUNNING', or the final 'FINISHED' / 'CANCELLED'."""
        if self.abandoned:
            return "CANCELLED"
        if self._advance(context):
            return "RUNNING"
        assert self.run is not None
        self.run.wait()
        return self._finish(context)

    def _finish(self, context) -> str:
        run, s = self.run, context.scene.tar_capture
        assert run is not None
        _ACTIVE.update(run=None, job=None, cancel=False)
        s.running, s.progress = False, 0.0
        failure = run.failure_message()
        if failure:
            if not run.cancelled and engine_missing(failure, run.returncode):
                failure = _no_engine(failure)
            s.status = failure
            self.report("WARNING" if run.cancelled else "ERROR", f"TAR people preview: {failure}")
            return "CANCELLED"
        people = people_preview(str(self.out_dir))
        s.people.clear()
        for p in people:
            item = s.people.add()
            item.person_id, item.label = int(p["id"]), person_label(p)
        s.preview_clip = s.clip
        image = _load_preview_image(self.out_dir / "people.png")
        s.status = preview_status(people)
        where = f"; the first frame with their numbers is the image '{image}'" if image else ""
        self.report("INFO", f"{s.status}{where} ({self.out_dir})")
        return "FINISHED"


def _load_preview_image(path: Path) -> str | None:
    """Load (or reload) the preview's people.png as an image; its name, or None when there is none."""
    if not path.is_file():
        return None
    image = bpy.data.images.load(str(path), check_existing=True)
    image.reload()
    return image.name


def stop_engine() -> bool:
    """Stop a running capture now (the file it belongs to is closing); True if one was running."""
    job, run = _ACTIVE.get("job"), _ACTIVE.get("run")
    if job is not None:
        job.abandoned = True
    _ACTIVE.update(run=None, job=None, cancel=False)
    if run is None or not run.running:
        return False
    run.kill()
    try:
        run.proc.wait(timeout=2)
    except subprocess.TimeoutExpired:
        pass
    return True


@persistent
def _on_load_pre(*_args) -> None:
    if stop_engine():
        print("TAR Mocap: the capture's engine was stopped (another file is loading)")


def _on_exit() -> None:
    stop_engine()
    run = _SETUP.get("run")
    if run is not None and not run.finished:
        run.cancel()


class _JobOperator:
    """An operator that runs one engine job (``JOB``): modal with a timer in the UI (Esc cancels), blocking in
    background mode and scripts."""

    JOB: type = CaptureJob

    @classmethod
    def poll(cls, context):
        return _ACTIVE["run"] is None and _ACTIVE.get("job") is None

    def _job(self, context):
        context.scene.tar_capture.status = ""  # a new run: nothing of the last one stays on the panel
        report = cast(bpy.types.Operator, self).report  # the mixin always comes with an Operator
        try:
            return self.JOB(context, lambda level, msg: report({level}, msg))
        except (OSError, ValueError) as exc:  # FileNotFoundError included
            context.scene.tar_capture.status = str(exc)
            report({"ERROR"}, str(exc))
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
        if self.job is None:
            return {"CANCELLED"}
        state = self.job.step(context)
        _redraw(context)
        if state == "RUNNING":
            return {"PASS_THROUGH"}
        context.window_manager.event_timer_remove(self._timer)
        return {state}


class TAR_OT_capture(_JobOperator, bpy.types.Operator):
    """Run the engine on the clip and import the people it finds (Esc cancels)"""

    bl_idname = "tar.capture"
    bl_label = "Capture from Video"
    bl_options = {"REGISTER", "UNDO"}
    JOB = CaptureJob


class TAR_OT_preview_people(_JobOperator, bpy.types.Operator):
    """Find the people in the clip (tracking only, no motion) and list them to pick one (Esc cancels)"""

    bl_idname = "tar.preview_people"
    bl_label = "Preview People"
    JOB = PreviewJob


class TAR_OT_pick_person(bpy.types.Operator):
    """Capture only this person of the preview (-1: all people)"""

    bl_idname = "tar.pick_person"
    bl_label = "Pick Person"
    bl_options = {"REGISTER", "UNDO"}

    person_id: IntProperty(name="Person", default=-1, min=-1)  # type: ignore

    def execute(self, context):
        context.scene.tar_capture.person = "" if self.person_id < 0 else str(self.person_id)
        return {"FINISHED"}


def _redraw(context=None) -> None:
    wm = (context or bpy.context).window_manager
    for window in wm.windows if wm else []:
        for area in window.screen.areas if window.screen else []:
            if area.type in {"VIEW_3D", "PREFERENCES"}:
                area.tag_redraw()


class TAR_OT_cancel_capture(bpy.types.Operator):
    """Stop the running capture; people already finished are kept"""

    bl_idname = "tar.cancel_capture"
    bl_label = "Cancel"

    @classmethod
    def poll(cls, context):
        return _ACTIVE["run"] is not None

    def execute(self, context):
        _ACTIVE["cancel"] = True  # the job's next step sends SIGINT and returns at once
        return {"FINISHED"}


# --------------------------------------------------------------------------------------------
# Engine set-up and check: background work the panel follows through a timer.
# --------------------------------------------------------------------------------------------

def _setup_finished(run: SetupRun) -> None:
    _SETUP["run"] = None
    if run.error:
        _SETUP.update(message=f"Engine set-up failed: {run.error}", error=True)
    else:
        _SETUP.update(message=f"Engine ready: {venv_python(run.venv)}", error=False)
    print(f"TAR Mocap: {_SETUP['message']}")


def _poll_setup() -> float | None:
    run = _SETUP["run"]
    _redraw()
    if run is None:
        return None
    if run.finished:
        _setup_finished(run)
        _redraw()
        return None
    return 0.5


class TAR_OT_setup_engine(bpy.types.Operator):
    """Create a Python environment for the engine and install torch and its packages in the background
    (downloads about 1 GB; needs online access)"""

    bl_idname = "tar.setup_engine"
    bl_label = "Set up engine"

    allow_online: BoolProperty(name="Allow online access", default=False, options={"SKIP_SAVE"},  # type: ignore
                               description="Turn on Preferences → System → Network → Allow Online Access")

    @classmethod
    def poll(cls, context):
        run = _SETUP["run"]
        return run is None or run.finished

    def invoke(self, context, event):
        if not bpy.app.online_access:
            return context.window_manager.invoke_props_dialog(self, width=420)
        return self.execute(context)

    def draw(self, context):
        assert self.layout is not None
        col = self.layout.column()
        col.label(text="Setting up the engine downloads torch and its packages (about 1 GB).")
        col.label(text="Blender's online access is off.")
        col.prop(self, "allow_online")

    def execute(self, context):
        if not bpy.app.online_access:
            if not self.allow_online:
                msg = ("Set up engine needs the internet and online access is off: allow it (Preferences → System → "
                       "Network → Allow Online Access) and run Set up engine again")
                _SETUP.update(message=msg, error=True)
                self.report({"ERROR"}, msg)
                return {"CANCELLED"}
            context.preferences.system.use_online_access = True
        prefs = addon_prefs(context)
        venv = engine_venv_dir(create=False)
        steps = setup_steps(sys.executable, venv, engine_root() / "tar_core" / "requirements.txt",
                            gpu=has_nvidia_gpu(), index_url=prefs.pip_index_url if prefs else "")
        venv.parent.mkdir(parents=True, exist_ok=True)
        run = SetupRun(steps, venv)
        _SETUP.update(run=run, message="", error=False)
        if bpy.app.background:  # scripts and tests: wait, and report the outcome
            run.wait()
            _setup_finished(run)
            self.report({"ERROR" if run.error else "INFO"}, _SETUP["message"])
            return {"CANCELLED" if run.error else "FINISHED"}
        bpy.app.timers.register(_poll_setup, first_interval=0.5)
        self.report({"INFO"}, "Setting up the engine in the background: progress in the TAR Mocap panel")
        return {"FINISHED"}


class TAR_OT_cancel_setup(bpy.types.Operator):
    """Stop the engine set-up (the unfinished environment is removed)"""

    bl_idname = "tar.cancel_setup"
    bl_label = "Cancel set-up"

    def execute(self, context):
        run = _SETUP["run"]
        if run is not None:
            run.cancel()
        return {"FINISHED"}


def _check_result(run: EngineRun, events: list[dict]) -> tuple[str, bool]:
    """One line on what the engine's interpreter has, and whether it can capture."""
    info = next((e for e in events if e.get("event") == "check"), None)
    if info is None:
        failure = run.failure_message() or "no answer"
        return _no_engine(f"{run.cmd[0]} cannot run ({failure})"), True
    pk = info.get("packages", {})
    have = ", ".join(f"{k} {v}" for k, v in pk.items() if v)
    missing = info.get("missing", [])
    cuda = {True: "CUDA GPU", False: "CPU only", None: "no torch"}[info.get("cuda")]
    text = f"Python {info.get('version')} ({cuda}): {have}"
    if missing:
        return _no_engine(f"{text}; missing {'; '.join(missing)}"), True
    return text, False


def _poll_check() -> float | None:
    run = _SETUP["check"]
    if run is None:
        return None
    events = _SETUP["check_events"]
    events += run.poll()
    if run.running:
        return 0.25
    run.wait()
    events += run.poll()
    msg, bad = _check_result(run, events)
    _SETUP.update(check=None, check_events=[], message=msg, error=bad)
    _redraw()
    return None


class TAR_OT_check_engine(bpy.types.Operator):
    """Report what the engine's Python has installed (torch, GPU, the engine's packages)"""

    bl_idname = "tar.check_engine"
    bl_label = "Check engine"

    @classmethod
    def poll(cls, context):
        return _SETUP["check"] is None

    def execute(self, context):
        py = engine_python(context)
        venv = engine_venv_dir()
        note = ""
        if venv.exists() and not venv_ready(venv):
            note = f" (an unfinished environment at {venv} is ignored: run Set up engine)"
        try:
            run = EngineRun([py, "-c", CHECK_SCRIPT], engine_path=engine_root())
        except OSError as exc:
            msg = _no_engine(f"{py} cannot run ({exc})") + note
            _SETUP.update(message=msg, error=True)
            self.report({"ERROR"}, msg)
            return {"CANCELLED"}
        _SETUP.update(check=run, check_events=[], message="Checking the engine…", error=False)
        if bpy.app.background:
            while _poll_check() is not None:
                time.sleep(0.1)
            if note:
                _SETUP["message"] += note
            self.report({"ERROR" if _SETUP["error"] else "INFO"}, _SETUP["message"])
            return {"CANCELLED" if _SETUP["error"] else "FINISHED"}
        bpy.app.timers.register(_poll_check, first_interval=0.25)
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
        return obj is not None and actions.current_action(obj) is not None

    def execute(self, context):
        obj = context.active_object
        if obj is None:
            return {"CANCELLED"}
        raw = bpy.data.actions.get(obj.get("tar_raw_action", ""))
        if raw is not None:  # smooth the raw motion again, not the last smoothed copy
            actions.set_current_action(obj, raw)
        actions.smooth_copy(obj, self.strength)
        return {"FINISHED"}


def menu_import(self, context):
    self.layout.operator(TAR_OT_import_motion.bl_idname, text="TAR Motion (.npz)")


CLASSES = (TAR_OT_import_motion, TAR_OT_capture, TAR_OT_preview_people, TAR_OT_pick_person, TAR_OT_cancel_capture,
           TAR_OT_setup_engine, TAR_OT_cancel_setup, TAR_OT_check_engine, TAR_OT_retarget, TAR_OT_smooth_motion)


def register():
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    bpy.types.TOPBAR_MT_file_import.append(menu_import)  # pyright: ignore[reportArgumentType] (stub: no self)
    bpy.app.handlers.load_pre.append(_on_load_pre)
    atexit.register(_on_exit)


def unregister():
    _on_exit()
    atexit.unregister(_on_exit)
    if _on_load_pre in bpy.app.handlers.load_pre:
        bpy.app.handlers.load_pre.remove(_on_load_pre)
    bpy.types.TOPBAR_MT_file_import.remove(menu_import)  # pyright: ignore[reportArgumentType]
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
