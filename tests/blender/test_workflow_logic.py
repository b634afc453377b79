"""The add-on's workflow logic without bpy: timing, takes, the capture cache, focal length, checks of
the preferences, progress over stages, the "no engine" diagnosis and the engine set-up runner."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest

from tar_blender.logic.setup import (
    READY_MARKER,
    TORCH_CPU_INDEX,
    SetupRun,
    Step,
    pip_reason,
    setup_steps,
    venv_ready,
)
from tar_blender.logic.workflow import (
    cache_key,
    cached_outputs,
    capture_folder,
    check_checkpoint,
    check_smpl_file,
    clip_name,
    engine_missing,
    focal_mm_to_pixels,
    fps_settings,
    frame_range,
    person_label,
    picked_person,
    plan_timing,
    preview_folder,
    preview_status,
    stage_progress,
    take_name,
    write_cache,
)

ROOT = Path(__file__).resolve().parents[2]


def test_timing_192_frames_at_1001_covers_exactly_the_clip():
    times = np.arange(192) / 30.0
    span = (times[0], times[-1])
    t = plan_timing([span], 30.0, 24.0, playhead=1001, scene_start=1, use_clip_timing=True)
    assert t.scene_fps == (30, 1.0) and t.start == 1001 and (t.frame_start, t.frame_end) == (1001, 1192)
    assert t.frames([times[-1]])[0] == pytest.approx(1192)
    # Keeping the scene's 24 fps: keys at real times, the range still covers them exactly.
    t = plan_timing([span], 30.0, 24.0, playhead=1, scene_start=1, use_clip_timing=False)
    assert t.scene_fps is None and t.last == pytest.approx(1 + 191 * 0.8) and t.frame_end == math.ceil(1 + 191 * 0.8)
    # Original time: clip time 0 at the scene's start frame, whatever the playhead.
    spans = [(times[10], times[-1]), (times[0], times[49])]
    t = plan_timing(spans, 30.0, 30.0, playhead=300, scene_start=5, use_clip_timing=False, at_playhead=False)
    assert t.start == 5 and t.first == 5 and t.last == pytest.approx(5 + 191)


def test_fps_settings_and_ranges():
    assert fps_settings(24.0) == (24, 1.0)
    fps, base = fps_settings(30000 / 1001)
    assert fps == 30 and fps / base == pytest.approx(29.97002997)
    assert frame_range(1.0, 191.00000000000003) == (1, 191)
    assert frame_range(1.5, 2.25) == (1, 3)
    assert frame_range(7.0, 7.0) == (7, 7)
    with pytest.raises(ValueError):
        fps_settings(0.0)


def test_take_and_clip_names():
    assert clip_name("/footage/Shot 12 (take 3).mov") == "Shot_12_take_3"
    assert take_name(clip_name("/a/walk.mp4"), 2) == "walk_p2"


def test_capture_cache_reuses_only_identical_captures(tmp_path):
    clip = tmp_path / "walk.mp4"
    clip.write_bytes(b"frames")
    settings = {"engine": "keypoints", "focal": 0.0, "max_people": 1}
    key = cache_key(clip, settings)
    assert key == cache_key(clip, dict(settings)) and key != cache_key(clip, {**settings, "max_people": 2})
    base = tmp_path / "mocap"
    folder = capture_folder(base, "walk", key)
    assert folder == base / "walk" and cached_outputs(folder, key) is None
    folder.mkdir(parents=True)
    (folder / "person_0.npz").write_bytes(b"x")
    write_cache(folder, key, [str(folder / "person_0.npz")], settings)
    assert cached_outputs(folder, key) == [str(folder / "person_0.npz")]
    # Other settings go to their own folder, the first capture's files stay.
    other = cache_key(clip, {**settings, "max_people": 2})
    assert capture_folder(base, "walk", other) == base / "walk" / f"run-{other[:8]}"
    assert cached_outputs(folder, other) is None
    # A changed clip is another capture; a deleted motion file is no cache.
    clip.write_bytes(b"other frames")
    assert cache_key(clip, settings) != key
    (folder / "person_0.npz").unlink()
    assert cached_outputs(folder, key) is None


def test_focal_millimetres_to_pixels():
    # 35 mm-equivalent: the diagonal field of view of a full-frame (36 x 24 mm) sensor.
    px = focal_mm_to_pixels(43.2666153, 1920, 1080)
    assert px == pytest.approx(math.hypot(1920, 1080), rel=1e-6)
    fov = 2 * math.degrees(math.atan(math.hypot(36, 24) / 2 / 50))
    px = focal_mm_to_pixels(50, 4000, 3000)
    assert 2 * math.degrees(math.atan(math.hypot(4000, 3000) / 2 / px)) == pytest.approx(fov)
    with pytest.raises(ValueError):
        focal_mm_to_pixels(0, 10, 10)


def test_preference_checks_name_the_reason(tmp_path):
    assert check_smpl_file("") is None
    assert "smpl-convert" in check_smpl_file(str(tmp_path / "SMPL_NEUTRAL.pkl"))
    assert "not found" in check_smpl_file(str(tmp_path / "missing.npz"))
    bad = tmp_path / "bad.npz"
    np.savez(bad, v_template=np.zeros(3))
    assert "lacks" in check_smpl_file(str(bad))
    assert check_smpl_file(str(ROOT / "tar_core" / "body_model" / "data" / "mannequin.npz")) is None
    assert check_checkpoint("") is None and "not found" in check_checkpoint(str(tmp_path / "x.pt"))


def test_stage_progress_never_sits_at_full_between_stages():
    assert stage_progress(None, 0, None) == (0.0, "Starting engine…")
    frac, label = stage_progress("tracking", 36, 72)
    assert frac == pytest.approx(0.25) and label == "tracking: 36/72"
    frac, label = stage_progress("tracking", 72, 72)
    assert frac == pytest.approx(0.5) and label.startswith("fitting")
    assert stage_progress("tracking", 72, 72, engine="tar")[1].startswith("tar")
    assert stage_progress("feet", 9, 9)[0] == 1.0


@pytest.mark.parametrize("engine, stages", [("keypoints", ["tracking", "fitting", "feet"]),
                                             ("tar", ["tracking", "fitting", "feet", "tar"]),
                                             ("tar", ["tracking", "tar"])])
def test_the_bar_only_moves_forward_through_an_engines_stages(engine, stages):
    """Every stage an engine reports fills its own part of the bar, in the order they run (the tar engine with
    a refining checkpoint fits the keypoints and their feet first)."""
    fracs = [stage_progress(s, done, 10, engine=engine)[0] for s in stages for done in range(1, 11)]
    assert all(b >= a for a, b in zip(fracs, fracs[1:], strict=False)), fracs
    assert fracs[-1] == 1.0


def test_engine_missing():
    assert engine_missing("engine exited with code 1: ModuleNotFoundError: No module named 'numpy'", 1)
    assert engine_missing("Cannot start the engine ([Errno 2] No such file or directory: 'x')", None)
    assert not engine_missing("no person found in the clip", 4)
    assert not engine_missing("clip.mp4: file not found", 3)


def test_setup_steps_take_the_cpu_torch_without_a_gpu(tmp_path):
    steps = setup_steps("/usr/bin/python3", tmp_path / "v", "req.txt", gpu=False)
    assert [s.label for s in steps][0] == "Creating the environment"
    if sys.platform != "darwin":
        assert TORCH_CPU_INDEX in steps[1].cmd and "(CPU build)" in steps[1].label
    assert TORCH_CPU_INDEX not in setup_steps("py", tmp_path / "v", "r", gpu=True)[1].cmd
    mirror = setup_steps("py", tmp_path / "v", "r", gpu=False, index_url="https://mirror/simple")
    assert all("https://mirror/simple" in s.cmd for s in mirror[1:]) and TORCH_CPU_INDEX not in mirror[1].cmd


def test_pip_reason_prefers_pips_error_lines():
    lines = ["Looking in indexes: x", "ERROR: Could not find a version that satisfies the requirement torch",
             "ERROR: No matching distribution found for torch"]
    assert pip_reason(lines).startswith("ERROR: Could not find") and "No matching" in pip_reason(lines)
    assert pip_reason(["a", "last words", ""]) == "last words"


def _py(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_setup_run_success_marks_the_environment_ready(tmp_path):
    venv = tmp_path / "venv"
    make = f"import os; os.makedirs({str(venv / 'bin')!r}); open({str(venv / 'bin' / 'python')!r}, 'w').close()"
    run = SetupRun([Step("make", _py(make)), Step("talk", _py("print('Collecting torch'); print('done')"))], venv)
    assert run.wait(30) and run.error is None
    assert venv_ready(venv) and (venv / READY_MARKER).is_file()
    assert run.status() == (1.0, "Engine ready") and "Collecting torch" in run.output


def test_setup_run_failure_removes_the_half_made_environment(tmp_path):
    venv = tmp_path / "venv"
    make = f"import os; os.makedirs({str(venv / 'bin')!r}); open({str(venv / 'bin' / 'python')!r}, 'w').close()"
    fail = _py("import sys; print('Collecting torch'); print('ERROR: 403 Forbidden for url'); sys.exit(1)")
    run = SetupRun([Step("make", _py(make)), Step("Installing torch", fail)], venv)
    assert run.wait(30)
    assert run.error == "Installing torch failed (exit 1): ERROR: 403 Forbidden for url"
    assert not venv.exists()
    # An unfinished environment left by a crash is removed before a new attempt.
    (venv / "bin").mkdir(parents=True)
    run = SetupRun([Step("noop", _py("pass"))], venv)
    run.wait(30)
    assert not (venv / "bin").exists()


def test_setup_run_cancel(tmp_path):
    run = SetupRun([Step("sleep", _py("import time; time.sleep(30)"))], tmp_path / "venv")
    import time

    time.sleep(0.5)
    run.cancel()
    assert run.wait(10) and run.error == "set-up cancelled"


def test_people_preview_folder_labels_and_the_picked_person(tmp_path):
    assert preview_folder(tmp_path / "mocap", "walk") == tmp_path / "mocap" / "walk" / "people-preview"
    assert preview_folder(tmp_path, "walk") != capture_folder(tmp_path, "walk", "k" * 64)  # never the motion files'
    people = [{"id": 0, "first_frame": 0, "last_frame": 95}, {"id": 4, "first_frame": 24, "last_frame": 60}]
    assert [person_label(p) for p in people] == ["Person 0: frames 0–95", "Person 4: from frame 24 to 60"]
    ids = [p["id"] for p in people]
    assert picked_person("4", ids) == 4 and picked_person(" 0 ", ids) == 0
    assert picked_person("", ids) is None and picked_person("2", ids) is None and picked_person("120,40", ids) is None
    assert preview_status([]) == "Preview: nobody found in the clip"
    assert preview_status(people[:1]) == "Preview: 1 person found"
    assert preview_status(people).startswith("Preview: 2 people found")
