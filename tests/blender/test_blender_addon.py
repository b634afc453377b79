"""The Blender add-on with the real ``bpy`` module: exact import, operators, capture job, batch
script, and the installable extension zip."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "data" / "sample" / "sample_walk.npz"

bpy = pytest.importorskip("bpy")  # the dev extra installs it; conftest keeps it out of ~/.config

from mathutils import Vector  # noqa: E402

import tar_blender  # noqa: E402
from tar_blender import importer  # noqa: E402
from tar_blender.logic.camera import CV_TO_WORLD  # noqa: E402
from tar_blender.logic.motion import read_motion  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def registered():
    tar_blender.register()
    yield
    tar_blender.unregister()


@pytest.fixture()
def empty_scene():
    bpy.ops.wm.read_homefile(use_empty=True)
    return bpy.context.scene


def test_import_is_exact_for_every_frame(empty_scene):
    """Bone heads = joints_cam mapped to the world (1e-4 m); through the Blender camera = joints_2d (0.5 px)."""
    from bpy_extras.object_utils import world_to_camera_view

    res = importer.load(bpy.context, [str(SAMPLE)])
    scene, arm, m = empty_scene, res.armatures[0], res.motions[0]
    assert scene.render.fps == 24 and scene.frame_start == 1 and scene.frame_end == 72
    W, H = m.image_size
    assert (scene.render.resolution_x, scene.render.resolution_y) == (W, H)
    worst_m = worst_px = 0.0
    for i in range(m.num_frames):
        scene.frame_set(int(round(scene.frame_start + m.frame_times[i] * m.fps)))
        world = importer.joints_world(arm)
        worst_m = max(worst_m, np.abs(world - m.joints_cam[i] @ CV_TO_WORLD.T).max())
        for j in range(24):
            ndc = world_to_camera_view(scene, res.camera, Vector(world[j]))
            u, v = ndc.x * W - 0.5, (1.0 - ndc.y) * H - 0.5  # OpenCV pixel centres
            worst_px = max(worst_px, abs(u - m.joints_2d[i, j, 0]), abs(v - m.joints_2d[i, j, 1]))
    assert worst_m < 1e-4, worst_m
    assert worst_px < 0.5, worst_px
    # Rig: 24 bones named after the SMPL joints, a skinned mesh, 99 bulk-written fcurves.
    assert [b.name for b in arm.data.bones][:1] == ["pelvis"] and len(arm.data.bones) == 24
    body = res.meshes[0]
    assert body.parent is arm and body.modifiers[0].object is arm and len(body.vertex_groups) == 24


def test_mesh_follows_the_rig(empty_scene):
    res = importer.load(bpy.context, [str(SAMPLE)])
    arm, body = res.armatures[0], res.meshes[0]
    scene = empty_scene
    scene.frame_set(40)
    deps = bpy.context.evaluated_depsgraph_get()
    mesh = body.evaluated_get(deps).to_mesh()
    co = np.empty(len(mesh.vertices) * 3, dtype=np.float32)
    mesh.vertices.foreach_get("co", co)
    world = co.reshape(-1, 3) @ np.array(body.matrix_world)[:3, :3].T + np.array(body.matrix_world)[:3, 3]
    joints = importer.joints_world(arm)
    # The posed mesh surrounds its skeleton: every joint has skin within 12 cm, the mesh spans the body.
    d = np.linalg.norm(world[None] - joints[:, None], axis=-1).min(1)
    assert d.max() < 0.12
    assert np.ptp(world[:, 2]) > 1.3  # standing height in the world (z up)


def test_import_operator_several_files_and_scene_timing(empty_scene, tmp_path):
    a, b = tmp_path / "person_0.npz", tmp_path / "person_1.npz"
    shutil.copy(SAMPLE, a)
    with np.load(SAMPLE, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["track_id"] = np.array(1)
    np.savez(b, **arrays)
    r = bpy.ops.tar.import_motion(directory=str(tmp_path), files=[{"name": a.name}, {"name": b.name}])
    assert r == {"FINISHED"}
    arms = [o for o in empty_scene.objects if o.type == "ARMATURE"]
    assert sorted(o.name for o in arms) == ["MANNEQUIN_0", "MANNEQUIN_1"]
    # A second import into a non-fresh scene leaves the scene's timing alone under AUTO.
    empty_scene.render.fps = 50
    assert bpy.ops.tar.import_motion(filepath=str(a)) == {"FINISHED"}
    assert empty_scene.render.fps == 50


def test_bad_file_is_reported_and_nothing_is_imported(empty_scene, tmp_path):
    bad = tmp_path / "bad.npz"
    with np.load(SAMPLE, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files if k != "betas"}
    np.savez(bad, **arrays)
    with pytest.raises(RuntimeError, match="betas: missing"):  # an ERROR report raises in bpy.ops
        bpy.ops.tar.import_motion(directory=str(tmp_path), files=[{"name": bad.name}])
    assert len(empty_scene.objects) == 0 and len(bpy.data.armatures) == 0


def _fake_python(tmp_path: Path, behaviour: str) -> Path:
    """An executable standing in for the engine's interpreter: ``FAKE -m tar_core capture CLIP -o OUT ...``."""
    script = tmp_path / "fake_python"
    script.write_text(textwrap.dedent(f"""\
        #!{sys.executable}
        import json, shutil, signal, sys, time
        args = sys.argv[1:]
        out = args[args.index("-o") + 1]
        def emit(**e):
            print(json.dumps(e), flush=True)
        def stop(*_):
            emit(event="error", message="cancelled by user")
            sys.exit(130)
        signal.signal(signal.SIGINT, stop)
        emit(event="start", frames=20)
        print("engine log line that is not JSON", flush=True)
        behaviour = {behaviour!r}
        for i in range(20):
            emit(event="progress", stage="tracking", done=i + 1, total=20)
            time.sleep(0.05 if behaviour != "slow" else 0.5)
        if behaviour == "error":
            emit(event="error", message="no person found in the clip")
            sys.exit(4)
        shutil.copy({str(SAMPLE)!r}, out + "/person_0.npz")
        emit(event="output", path=out + "/person_0.npz")
        emit(event="done", completed=True)
        """))
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return script


def _start_job(tmp_path, behaviour, monkeypatch):
    from tar_blender.operators import CaptureJob

    monkeypatch.setenv("TAR_PYTHON", str(_fake_python(tmp_path, behaviour)))
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"\0")  # the fake engine does not read it
    s = bpy.context.scene.tar_capture
    s.clip, s.output_dir = str(clip), str(tmp_path)
    reports = []
    return CaptureJob(bpy.context, lambda level, msg: reports.append((level, msg))), reports


def test_capture_job_step_by_step_imports_the_result(empty_scene, tmp_path, monkeypatch):
    import time

    job, reports = _start_job(tmp_path, "ok", monkeypatch)
    s = empty_scene.tar_capture
    assert s.running
    seen_progress = []
    state = "RUNNING"
    for _ in range(300):
        state = job.step(bpy.context)
        seen_progress.append(s.progress)
        if state != "RUNNING":
            break
        time.sleep(0.02)
    assert state == "FINISHED", reports
    assert any(0 < p < 1 for p in seen_progress)  # the bar moved while the engine ran
    assert not s.running and "Imported 1" in s.status
    assert [o.name for o in empty_scene.objects if o.type == "ARMATURE"] == ["MANNEQUIN_0"]


def test_capture_job_reports_engine_errors_and_cancel(empty_scene, tmp_path, monkeypatch):
    import time

    from tar_blender.operators import _ACTIVE

    (tmp_path / "a").mkdir()
    job, reports = _start_job(tmp_path / "a", "error", monkeypatch)
    while (state := job.step(bpy.context)) == "RUNNING":
        time.sleep(0.02)
    assert state == "CANCELLED" and ("ERROR", "TAR capture: no person found in the clip") in reports
    assert len(empty_scene.objects) == 0

    (tmp_path / "b").mkdir()
    job, reports = _start_job(tmp_path / "b", "slow", monkeypatch)
    for _ in range(10):
        assert job.step(bpy.context) == "RUNNING"
        time.sleep(0.05)
    assert bpy.ops.tar.cancel_capture() == {"FINISHED"}
    t = time.perf_counter()
    while (state := job.step(bpy.context)) == "RUNNING":
        time.sleep(0.02)
    assert time.perf_counter() - t < 5
    assert state == "CANCELLED" and reports[-1][0] == "WARNING" and "cancelled" in reports[-1][1]
    assert _ACTIVE["run"] is None and len(empty_scene.objects) == 0


def test_capture_operator_blocking_in_background(empty_scene, tmp_path, monkeypatch):
    monkeypatch.setenv("TAR_PYTHON", str(_fake_python(tmp_path, "ok")))
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"\0")
    s = empty_scene.tar_capture
    s.clip, s.output_dir = str(clip), str(tmp_path)
    assert bpy.app.background
    assert bpy.ops.tar.capture() == {"FINISHED"}
    assert any(o.type == "ARMATURE" for o in empty_scene.objects)
    s.clip = str(tmp_path / "missing.mp4")
    with pytest.raises(RuntimeError, match="Clip not found"):
        bpy.ops.tar.capture()


def test_addon_never_imports_torch_or_the_engine():
    code = ("import sys, bpy, tar_blender; tar_blender.register(); import tar_blender.importer, tar_blender.rig, "
            "tar_blender.operators; bad = [m for m in sys.modules if m == 'torch' or m.startswith('tar_core')]; "
            "print(bad); sys.exit(1 if bad else 0)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert res.returncode == 0, res.stdout + res.stderr


def test_batch_script_imports_and_exports(tmp_path):
    out = tmp_path / "scene é.blend"
    res = subprocess.run([sys.executable, str(ROOT / "scripts" / "batch.py"), "--", "--motion", str(SAMPLE),
                          "--out", str(out), "--fbx", str(tmp_path / "a.fbx"), "--bvh", str(tmp_path / "a.bvh")],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert out.is_file() and (tmp_path / "a.fbx").stat().st_size > 10_000
    bvh = (tmp_path / "a.bvh").read_text()
    assert bvh.startswith("HIERARCHY") and "Frames: 72" in bvh and "JOINT left_hip" in bvh
    bad = subprocess.run([sys.executable, str(ROOT / "scripts" / "batch.py"), "--", "--motion",
                          str(tmp_path / "nope.npz"), "--out", str(tmp_path / "x.blend")],
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode != 0 and "nope.npz" in bad.stderr and not (tmp_path / "x.blend").exists()


@pytest.mark.slow
def test_extension_zip_builds_validates_installs_and_runs(tmp_path, empty_scene):
    res = subprocess.run([sys.executable, str(ROOT / "scripts" / "build_addon.py"), "--out-dir", str(tmp_path)],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    (zip_path,) = tmp_path.glob("tar_mocap-*.zip")
    import zipfile

    names = zipfile.ZipFile(zip_path).namelist()
    assert "blender_manifest.toml" in names and "__init__.py" in names
    assert "tar_core/body_model/data/mannequin.npz" in names and "tar_core/body_model/data/NOTICE" in names
    assert [n for n in names if n.endswith(".pt")] == ["tar_core/weights/tar-blazepose-synthetic.pt"]  # the demo
    assert "tar_core/weights/MODEL_CARD.md" in names
    # Install into the bpy module (its own user resources: see conftest) and run its importer.
    tar_blender.unregister()  # the development copy registers the same operator names
    try:
        r = bpy.ops.extensions.package_install_files(filepath=str(zip_path), repo="user_default",
                                                     enable_on_install=True)
        assert r == {"FINISHED"}
        assert "bl_ext.user_default.tar_mocap" in bpy.context.preferences.addons
        assert bpy.ops.tar.import_motion(filepath=str(SAMPLE)) == {"FINISHED"}
        assert any(o.type == "ARMATURE" for o in bpy.context.scene.objects)
        # Capture the sample clip end to end with the engine shipped inside the zip (keypoints).
        bpy.ops.wm.read_homefile(use_empty=True)
        s = bpy.context.scene.tar_capture
        s.clip, s.output_dir = str(SAMPLE.with_suffix(".mp4")), str(tmp_path / "capture")
        os.environ["TAR_PYTHON"] = sys.executable  # has torch; tar_core comes from the installed add-on
        try:
            assert bpy.ops.tar.capture() == {"FINISHED"}
        finally:
            del os.environ["TAR_PYTHON"]
        summary = (tmp_path / "capture" / "sample_walk" / "summary.json").read_text()
        assert '"completed": true' in summary and "extensions" in summary  # engine code from the zip
        arm = next(o for o in bpy.context.scene.objects if o.type == "ARMATURE")
        assert arm["tar_engine"] == "keypoints" and bpy.context.scene.frame_end == 72
        # The TAR engine without a checkpoint in the preferences runs the demo checkpoint shipped in the zip.
        bpy.ops.wm.read_homefile(use_empty=True)
        s = bpy.context.scene.tar_capture
        s.clip, s.output_dir, s.engine = str(SAMPLE.with_suffix(".mp4")), str(tmp_path / "capture tar"), "TAR"
        os.environ["TAR_PYTHON"] = sys.executable
        try:
            assert bpy.ops.tar.capture() == {"FINISHED"}
        finally:
            del os.environ["TAR_PYTHON"]
        summary = json.loads((tmp_path / "capture tar" / "sample_walk" / "summary.json").read_text())
        assert summary["checkpoint"]["builtin_demo"] and "extensions" in summary["checkpoint"]["path"]
        assert summary["checkpoint"]["provenance"]["data"] == "synthetic"
        arm = next(o for o in bpy.context.scene.objects if o.type == "ARMATURE")
        assert arm["tar_engine"] == "tar" and bpy.context.scene.frame_end == 72
        bpy.ops.preferences.addon_disable(module="bl_ext.user_default.tar_mocap")
    finally:
        tar_blender.register()
    assert read_motion(SAMPLE).num_frames == 72
