"""The artist's workflow with the real ``bpy``: footage in sync with the keys, takes at the playhead
stacked on NLA tracks, motion files kept and reused, the engine stopped when the file closes,
cancel that keeps finished people, and the engine set-up's failures in pip's words."""

from __future__ import annotations

import os
import stat
import sys
import textwrap
import time
import types
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "data" / "sample" / "sample_walk.npz"
SAMPLE_CLIP = SAMPLE.with_suffix(".mp4")

bpy = pytest.importorskip("bpy")

import tar_blender  # noqa: E402
from tar_blender import actions, importer, operators, preferences  # noqa: E402
from tar_blender.logic.camera import CV_TO_WORLD  # noqa: E402
from tar_blender.logic.motion import read_motion  # noqa: E402
from tar_blender.logic.workflow import check_smpl_file, focal_mm_to_pixels  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def registered():
    tar_blender.register()
    yield
    tar_blender.unregister()


@pytest.fixture()
def factory_scene():
    """Blender's factory startup scene: Cube, Light, Camera, 24 fps, frames 1-250."""
    bpy.ops.wm.read_homefile(use_factory_startup=True)
    scene = bpy.context.scene
    assert {o.name for o in scene.objects} == {"Cube", "Light", "Camera"} and scene.render.fps == 24
    return scene


def _motion(path: Path, fps: float = 30.0, frames: int = 72, offset: float = 0.0) -> Path:
    """The sample's motion relabelled as an ``fps`` clip of ``frames`` rows (looped), starting at ``offset`` s."""
    with np.load(SAMPLE, allow_pickle=False) as z:
        a = {k: z[k] for k in z.files}
    idx = np.arange(frames) % len(a["poses"])
    for k in ("poses", "trans", "bbox_xyxy", "joints_cam", "joints_2d", "confidence"):
        a[k] = a[k][idx]
    a["frame_ids"] = np.arange(frames, dtype=np.int64)
    a["frame_times"] = offset + np.arange(frames) / fps
    a["mocap_framerate"] = a["mocap_frame_rate"] = np.array(fps)
    np.savez(path, **a)
    return path


def _pose_error(scene, arm, m, rows, frame_of) -> float:
    """Worst bone-head distance (m) to the file's joints over ``rows``, at the scene frames ``frame_of(row)``."""
    worst = 0.0
    for i in rows:
        f = frame_of(i)
        scene.frame_set(int(np.floor(f)), subframe=float(f - np.floor(f)))
        worst = max(worst, float(np.abs(importer.joints_world(arm) - m.joints_cam[i] @ CV_TO_WORLD.T).max()))
    return worst


def test_factory_scene_takes_the_clip_timing_and_the_footage_stays_in_sync(factory_scene, tmp_path):
    scene = factory_scene
    path = _motion(tmp_path / "walk30.npz", fps=30.0)
    m = read_motion(path)
    res = importer.load(bpy.context, [str(path)], video=str(SAMPLE_CLIP))
    arm = res.armatures[0]
    # Nothing was animated: the scene takes the clip's 30 fps and exactly its range.
    assert scene.render.fps / scene.render.fps_base == pytest.approx(30.0)
    assert (scene.frame_start, scene.frame_end) == (1, 72)
    # The bone pose at time t is the file's pose at t (scene frame 1 + 30 t).
    assert _pose_error(scene, arm, m, range(0, 72, 7), lambda i: 1 + m.frame_times[i] * 30) < 1e-4
    # The movie clip's first frame plays where the first key is.
    clip = res.camera.data.background_images[0].clip
    frames, _, _ = actions.read_curves(arm)[('pose.bones["pelvis"].rotation_quaternion', 0)]
    assert clip.frame_start == frames[0] == 1
    # One take: an action named after the clip, on its own NLA track, nothing active.
    ad = arm.animation_data
    assert ad.action is None and [t.name for t in ad.nla_tracks] == ["sample_walk_p0"]
    assert ad.nla_tracks[0].strips[0].action.name == "sample_walk_p0"
    # The user's camera and render size are left alone (not asked for).
    assert scene.camera.name == "Camera" and scene.render.resolution_x == 1920


def test_scene_fps_kept_keys_land_at_real_times(factory_scene, tmp_path):
    scene = factory_scene
    path = _motion(tmp_path / "walk30.npz", fps=30.0)
    m = read_motion(path)
    res = importer.load(bpy.context, [str(path)], set_scene="NO", video=str(SAMPLE_CLIP))
    assert scene.render.fps == 24 and (scene.frame_start, scene.frame_end) == (1, 250)
    # Keys at 1 + t x 24: every fifth row sits on a whole frame, the rest in between.
    err = _pose_error(scene, res.armatures[0], m, range(0, 72, 5), lambda i: 1 + m.frame_times[i] * 24)
    assert err < 1e-4


def test_start_frame_1001_and_an_exact_integer_range(tmp_path):
    bpy.ops.wm.read_homefile(use_empty=True)
    scene = bpy.context.scene
    scene.frame_start, scene.frame_end = 1001, 1250
    scene.frame_current = 1001
    path = _motion(tmp_path / "long.npz", fps=30.0, frames=192)
    res = importer.load(bpy.context, [str(path)], video=str(SAMPLE_CLIP))
    assert (scene.frame_start, scene.frame_end) == (1001, 1192)  # 191 / 30 s later, not a frame more
    clip = res.camera.data.background_images[0].clip
    frames, _, _ = actions.read_curves(res.armatures[0])[('pose.bones["pelvis"].location', 0)]
    assert clip.frame_start == 1001 and frames[0] == 1001 and frames[-1] == pytest.approx(1192)
    # The scene had no camera: the clip's becomes the scene camera, the render takes its size.
    assert scene.camera == res.camera and scene.render.resolution_x == 384


def test_two_takes_stack_as_nla_strips_on_the_selected_rig(factory_scene, tmp_path):
    scene = factory_scene
    path = _motion(tmp_path / "walk30.npz", fps=30.0)
    m = read_motion(path)
    first = importer.load(bpy.context, [str(path)], with_mesh=False)
    arm = first.armatures[0]
    bpy.context.view_layer.objects.active = arm
    scene.frame_current = 200
    assert bpy.ops.tar.import_motion(filepath=str(path), apply_to_selected=True, with_camera=False) == {"FINISHED"}
    assert [o.name for o in scene.objects if o.type == "ARMATURE"] == [arm.name]  # no second rig
    tracks = arm.animation_data.nla_tracks
    assert [t.name for t in tracks] == ["walk30_p0", "walk30_p0.001"]
    assert [t.strips[0].frame_start for t in tracks] == [1, 200]
    assert arm.animation_data.action is None
    assert (scene.frame_start, scene.frame_end) == (1, 72)  # the animated scene keeps its range
    assert _pose_error(scene, arm, m, range(0, 72, 9), lambda i: 1 + m.frame_times[i] * 30) < 1e-4
    assert _pose_error(scene, arm, m, range(0, 72, 9), lambda i: 200 + m.frame_times[i] * 30) < 1e-4
    # "Original time" puts a take at the scene's start frame whatever the playhead.
    scene.frame_current = 500
    res = importer.load(bpy.context, [str(path)], at_playhead=False, with_mesh=False, with_camera=False)
    assert res.timing is not None and res.timing.start == 1
    # A rig without the SMPL layout is refused before anything changes.
    bpy.context.view_layer.objects.active = bpy.data.objects["Cube"]
    with pytest.raises(RuntimeError, match="SMPL layout"):
        bpy.ops.tar.import_motion(filepath=str(path), apply_to_selected=True)


# --------------------------------------------------------------------------------------------
# Captures (fake engines stand in for ``python -m tar_core capture``)
# --------------------------------------------------------------------------------------------


def _fake_engine(tmp_path: Path, behaviour: str) -> Path:
    script = tmp_path / f"fake_{behaviour}"
    script.write_text(textwrap.dedent(f"""\
        #!{sys.executable}
        import json, shutil, signal, sys, time
        behaviour = {behaviour!r}
        if behaviour == "no-numpy":
            print("Traceback (most recent call last):", file=sys.stderr)
            print("ModuleNotFoundError: No module named 'numpy'", file=sys.stderr)
            sys.exit(1)
        args = sys.argv[1:]
        out = args[args.index("-o") + 1]
        def emit(**e):
            print(json.dumps(e), flush=True)
        def stop(*_):
            time.sleep(0.3)  # flushing takes a moment
            emit(event="error", message="cancelled by user")
            sys.exit(130)
        signal.signal(signal.SIGINT, stop)
        if "--list-people" in args:  # the people preview: two people, the second from frame 24
            import struct, zlib
            def chunk(kind, data):
                return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
            png = (b"\\x89PNG\\r\\n\\x1a\\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0))
                   + chunk(b"IDAT", zlib.compress(b"\\x00\\xff\\x00\\x00")) + chunk(b"IEND", b""))
            open(out + "/people.png", "wb").write(png)
            people = [{{"id": 0, "first_frame": 0, "last_frame": 71, "frames": 72, "first_box": [1, 2, 3, 4]}},
                      {{"id": 3, "first_frame": 24, "last_frame": 71, "frames": 48, "first_box": [5, 6, 7, 8]}}]
            json.dump({{"people": people, "preview": "people.png"}}, open(out + "/people.json", "w"))
            for i in range(72):
                emit(event="progress", stage="tracking", done=i + 1, total=72)
            emit(event="people", people=people, out_dir=out)
            emit(event="done", completed=True, people=0)
            sys.exit(0)
        emit(event="start", frames=72)
        for i in range(72):
            emit(event="progress", stage="tracking", done=i + 1, total=72)
        shutil.copy({str(SAMPLE)!r}, out + "/person_0.npz")
        emit(event="output", path=out + "/person_0.npz")
        if behaviour == "slow":
            time.sleep(60)
        emit(event="progress", stage="fitting", done=72, total=72)
        emit(event="done", completed=True)
        """))
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return script


def _capture_settings(tmp_path: Path, monkeypatch, behaviour: str):
    monkeypatch.setenv("TAR_PYTHON", str(_fake_engine(tmp_path, behaviour)))
    s = bpy.context.scene.tar_capture
    s.clip, s.output_dir = str(SAMPLE_CLIP), str(tmp_path / "mocap")
    return s


def _drive(job, limit: float = 30.0) -> str:
    t = time.monotonic()
    while (state := job.step(bpy.context)) == "RUNNING":
        assert time.monotonic() - t < limit
        time.sleep(0.02)
    return state


def test_capture_files_next_to_the_output_and_reused(tmp_path, monkeypatch):
    bpy.ops.wm.read_homefile(use_empty=True)
    s = _capture_settings(tmp_path, monkeypatch, "ok")
    reports: list = []
    job = operators.CaptureJob(bpy.context, lambda level, msg: reports.append((level, msg)))
    assert job.run is not None and job.out_dir == tmp_path / "mocap" / "sample_walk"
    assert _drive(job) == "FINISHED", reports
    assert (job.out_dir / "person_0.npz").is_file() and (job.out_dir / "tar_capture.json").is_file()
    assert "Imported 1" in s.status
    # The same clip with the same settings: no engine run, the same files imported as a second take.
    monkeypatch.setenv("TAR_PYTHON", "/nonexistent/python")  # would fail if it ran
    job = operators.CaptureJob(bpy.context, lambda level, msg: reports.append((level, msg)))
    assert job.run is None and _drive(job) == "FINISHED" and "reused" in s.status
    # Other settings: the engine runs again, into its own folder.
    s.max_people = 3
    monkeypatch.setenv("TAR_PYTHON", str(_fake_engine(tmp_path, "ok")))
    job = operators.CaptureJob(bpy.context, lambda level, msg: reports.append((level, msg)))
    assert job.run is not None and job.out_dir.parent == tmp_path / "mocap" / "sample_walk"
    assert _drive(job) == "FINISHED"
    s.max_people = 1
    # The motion's cut-off is a setting of the engine's result too, and reaches its command line.
    s.motion_hz = 2.5
    job = operators.CaptureJob(bpy.context, lambda level, msg: reports.append((level, msg)))
    assert job.run is not None and job.run.cmd[job.run.cmd.index("--smooth-hz") + 1] == "2.5"
    assert _drive(job) == "FINISHED"
    s.motion_hz = 4.0


def test_preview_people_fills_the_list_and_a_pick_reaches_the_capture(tmp_path, monkeypatch):
    bpy.ops.wm.read_homefile(use_empty=True)
    s = _capture_settings(tmp_path, monkeypatch, "ok")
    reports: list = []
    job = operators.PreviewJob(bpy.context, lambda level, msg: reports.append((level, msg)))
    assert job.run is not None and "--list-people" in job.run.cmd
    assert not bpy.ops.tar.capture.poll() and not bpy.ops.tar.preview_people.poll()  # one engine run at a time
    assert _drive(job) == "FINISHED", reports
    assert job.out_dir == tmp_path / "mocap" / "sample_walk" / "people-preview"
    assert [(p.person_id, p.label) for p in s.people] == [(0, "Person 0: frames 0–71"),
                                                          (3, "Person 3: from frame 24 to 71")]
    assert s.preview_clip == s.clip and s.status.startswith("Preview: 2 people found")
    assert bpy.data.images["people.png"].size[:] == (1, 1)
    # The panel lists them; a pick fills the Person field, and the capture asks the engine for that person.
    panel = types.SimpleNamespace(layout=_RecordingLayout())
    tar_blender.panel.TAR_PT_capture.draw(panel, bpy.context)  # pyright: ignore[reportArgumentType]
    assert [t for t in panel.layout.operators if t[0] == "tar.pick_person"] == [
        ("tar.pick_person", "All People", True), ("tar.pick_person", "Person 0: frames 0–71", False),
        ("tar.pick_person", "Person 3: from frame 24 to 71", False)]
    assert bpy.ops.tar.pick_person(person_id=3) == {"FINISHED"} and s.person == "3"
    job = operators.CaptureJob(bpy.context, lambda level, msg: reports.append((level, msg)))
    assert job.run is not None and job.run.cmd[-2:] == ["--person", "3"]
    assert _drive(job) == "FINISHED", reports
    assert bpy.ops.tar.pick_person(person_id=-1) == {"FINISHED"} and s.person == ""
    # Another clip: the old list is not offered.
    s.clip = str(tmp_path / "other.mp4")
    panel = types.SimpleNamespace(layout=_RecordingLayout())
    tar_blender.panel.TAR_PT_capture.draw(panel, bpy.context)  # pyright: ignore[reportArgumentType]
    assert not [t for t in panel.layout.operators if t[0] == "tar.pick_person"]
    s.people.clear()


class _RecordingLayout:
    """A stand-in for a panel's layout that records the operator buttons drawn (idname, text, pressed)."""

    def __init__(self, root=None):
        self.operators = root.operators if root is not None else []
        self.enabled = True

    def operator(self, idname, text="", depress=False, **_kw):
        self.operators.append((idname, text, depress))
        return types.SimpleNamespace()

    def column(self, **_kw):
        return _RecordingLayout(self)

    row = box = column

    def prop(self, *_a, **_kw):
        pass

    label = separator = progress = prop


def test_unsaved_file_keeps_motion_files_out_of_temp(tmp_path, monkeypatch):
    bpy.ops.wm.read_homefile(use_empty=True)
    s = _capture_settings(tmp_path, monkeypatch, "ok")
    s.output_dir = ""
    base, _why = preferences.motion_base_dir(bpy.context)
    # The add-on's user data folder (Blender's user resources), not a temporary capture folder.
    assert base.is_relative_to(Path(bpy.utils.resource_path("USER"))), base
    assert "tar-capture" not in str(base)
    blend = tmp_path / "shot.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(blend))
    try:
        base, _why = preferences.motion_base_dir(bpy.context)
        assert base == tmp_path / "mocap"
        job = operators.CaptureJob(bpy.context, lambda level, msg: None)
        assert _drive(job) == "FINISHED"
        arm = next(o for o in bpy.context.scene.objects if o.type == "ARMATURE")
        assert arm["tar_motion_file"] == "//mocap/sample_walk/person_0.npz"
    finally:
        bpy.ops.wm.read_homefile(use_empty=True)


def test_cancel_returns_at_once_and_keeps_finished_people(tmp_path, monkeypatch):
    bpy.ops.wm.read_homefile(use_empty=True)
    s = _capture_settings(tmp_path, monkeypatch, "slow")
    job = operators.CaptureJob(bpy.context, lambda level, msg: None)
    assert job.run is not None
    t = time.monotonic()
    while not job.run.outputs:  # person 0 is finished, the engine is still busy
        assert job.step(bpy.context) == "RUNNING" and time.monotonic() - t < 20
        time.sleep(0.02)
    assert 0 < s.progress < 1 and "fitting" in s.status  # tracking done reads as the next stage starting
    assert bpy.ops.tar.cancel_capture() == {"FINISHED"}
    t = time.monotonic()
    assert job.step(bpy.context) == "RUNNING"  # SIGINT sent; the step did not wait for the engine
    assert time.monotonic() - t < 0.2
    assert _drive(job) == "FINISHED"
    assert "kept 1" in s.status and any(o.type == "ARMATURE" for o in bpy.context.scene.objects)


def test_file_new_during_a_capture_stops_the_engine(tmp_path, monkeypatch):
    bpy.ops.wm.read_homefile(use_empty=True)
    _capture_settings(tmp_path, monkeypatch, "slow")
    job = operators.CaptureJob(bpy.context, lambda level, msg: None)
    assert job.run is not None
    proc = job.run.proc
    time.sleep(0.3)
    assert proc.poll() is None and not bpy.ops.tar.capture.poll()
    bpy.ops.wm.read_homefile(use_empty=True)  # File -> New: the load_pre handler runs
    proc.wait(timeout=5)
    assert proc.returncode is not None
    assert operators._ACTIVE["run"] is None and bpy.ops.tar.capture.poll()
    assert job.step(bpy.context) == "CANCELLED" and len(bpy.context.scene.objects) == 0


def test_no_engine_points_to_set_up(tmp_path, monkeypatch):
    bpy.ops.wm.read_homefile(use_empty=True)
    s = _capture_settings(tmp_path, monkeypatch, "no-numpy")
    s.status = "an old failure"
    with pytest.raises(RuntimeError, match="Set up engine"):
        bpy.ops.tar.capture()
    assert "No module named 'numpy'" in s.status and "Set up engine" in s.status
    monkeypatch.setenv("TAR_PYTHON", str(tmp_path / "no-python"))
    s.reuse = False
    with pytest.raises(RuntimeError, match="Set up engine"):
        bpy.ops.tar.capture()
    s.reuse = True
    # Errors before the engine starts replace the last status.
    s.clip = str(tmp_path / "missing.mp4")
    with pytest.raises(RuntimeError, match="Clip not found"):
        bpy.ops.tar.capture()
    assert s.status.startswith("Clip not found")


def test_focal_length_in_millimetres_reaches_the_engine_in_pixels(tmp_path, monkeypatch):
    bpy.ops.wm.read_homefile(use_empty=True)
    s = _capture_settings(tmp_path, monkeypatch, "ok")
    s.focal_mode, s.focal_mm = "MM", 50.0
    try:
        settings = operators._engine_settings(bpy.context, str(SAMPLE_CLIP))
    finally:
        s.focal_mode = "AUTO"
    assert settings["focal"] == pytest.approx(focal_mm_to_pixels(50.0, 384, 288), abs=1e-3)
    assert len(bpy.data.movieclips) == 0  # the size probe leaves nothing behind


def test_smpl_pkl_preference_is_refused_when_set(tmp_path):
    pkl = tmp_path / "SMPL_NEUTRAL.pkl"
    pkl.write_bytes(b"\x80")
    update = preferences._validator("smpl_path", check_smpl_file)
    prefs = types.SimpleNamespace(smpl_path=str(pkl), smpl_path_error="")
    update(prefs, bpy.context)
    assert prefs.smpl_path == "" and "smpl-convert" in prefs.smpl_path_error


def test_setup_failure_shows_pips_reason_and_leaves_no_environment(tmp_path, monkeypatch):
    venv = tmp_path / "engine-venv"
    # Only the refusing index: no local wheel folders or extra indexes from this machine's pip set-up.
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    for var in ("PIP_FIND_LINKS", "PIP_EXTRA_INDEX_URL", "PIP_INDEX_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(operators, "engine_venv_dir", lambda create=False: venv)
    monkeypatch.setattr(operators, "addon_prefs", lambda context=None: types.SimpleNamespace(
        pip_index_url="file:///nonexistent/index"))
    system = bpy.context.preferences.system
    online = system.use_online_access
    try:
        system.use_online_access = False
        with pytest.raises(RuntimeError, match="online access is off"):
            bpy.ops.tar.setup_engine()
        system.use_online_access = True
        with pytest.raises(RuntimeError) as e:
            bpy.ops.tar.setup_engine()
    finally:
        system.use_online_access = online
    msg = str(e.value)
    assert "Installing torch" in msg and "ERROR:" in msg and "torch==2.13.0" in msg, msg
    assert not venv.exists()  # the half-made environment is gone
    assert operators._SETUP["error"] and "failed" in operators._SETUP["message"]


def test_check_engine_reports_what_is_missing(tmp_path, monkeypatch):
    fake = tmp_path / "python_without_numpy"
    fake.write_text(f"#!{sys.executable}\nimport sys\n"
                    "print(\"ModuleNotFoundError: No module named 'numpy'\", file=sys.stderr)\nsys.exit(1)\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("TAR_PYTHON", str(fake))
    with pytest.raises(RuntimeError, match="Set up engine"):
        bpy.ops.tar.check_engine()
    assert operators._SETUP["error"] and "No module named 'numpy'" in operators._SETUP["message"]
    # An interpreter that answers: its packages are listed, what it lacks is named.
    answer = tmp_path / "python_partial"
    answer.write_text(f"#!{sys.executable}\nimport json\nprint(json.dumps({{'event': 'check', 'version': '3.11.7', "
                      "'packages': {'numpy': '1.26.4', 'torch': None}, 'missing': ['torch (ModuleNotFoundError)'], "
                      "'cuda': None}))\n")
    answer.chmod(answer.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("TAR_PYTHON", str(answer))
    with pytest.raises(RuntimeError, match="missing torch"):
        bpy.ops.tar.check_engine()
    assert "numpy 1.26.4" in operators._SETUP["message"] and "Set up engine" in operators._SETUP["message"]
