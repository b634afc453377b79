"""``python -m tar_core capture``: the tar engine end to end on the rendered sample clip, progress
events, cancel, and a distinct exit code with a clear message for every bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np

from tar_core.errors import EXIT_CODES
from tar_core.geometry import camera
from tar_core.motion_file import read_motion

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "data" / "sample" / "sample_walk.mp4"
SAMPLE_GT = ROOT / "data" / "sample" / "sample_walk.npz"


def run_cli(*args, timeout=600, **kw):
    return subprocess.run([sys.executable, "-m", "tar_core", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, **kw)


def events(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def test_tar_engine_writes_a_motion_file_per_person(tiny_checkpoint, tmp_path):
    out = tmp_path / "out dir ü"
    res = run_cli("capture", SAMPLE, "-o", out, "--checkpoint", tiny_checkpoint, "--progress", "jsonl")
    assert res.returncode == 0, res.stderr
    ev = events(res.stdout)
    kinds = [e["event"] for e in ev]
    assert kinds[0] == "start" and kinds[-1] == "done" and "output" in kinds
    stages = {e["stage"] for e in ev if e["event"] == "progress"}
    assert {"tracking", "tar"} <= stages
    m = read_motion(out / "person_0.npz")
    gt = read_motion(SAMPLE_GT)
    assert m.engine == "tar" and m.body_model == "mannequin"
    # One row per frame where the person is visible (the whole sample), at the clip's timestamps.
    assert m.num_frames == gt.num_frames
    np.testing.assert_array_equal(m.frame_ids, np.arange(gt.num_frames))
    np.testing.assert_allclose(m.frame_times, gt.frame_times, atol=2e-3)
    np.testing.assert_allclose(m.joints_2d, camera.project(m.joints_cam, m.camera_intrinsics), atol=1e-2)
    # Low-passed at 4 Hz, the network's own per-frame output kept beside it.
    assert m.poses_raw is not None and m.poses_raw.shape == m.poses.shape and not np.allclose(m.poses_raw, m.poses)
    W, H = m.image_size
    assert (W, H) == (384, 288)
    np.testing.assert_allclose(m.camera_intrinsics[0, 0], np.hypot(W, H), rtol=1e-6)
    # The boxes follow the rendered person (the detector, not the untrained network, is checked here).
    gt_box_centre = 0.5 * (gt.bbox_xyxy[:, :2] + gt.bbox_xyxy[:, 2:])
    box_centre = 0.5 * (m.bbox_xyxy[:, :2] + m.bbox_xyxy[:, 2:])
    assert np.median(np.linalg.norm(box_centre - gt_box_centre, axis=1)) < 15
    summary = json.loads((out / "summary.json").read_text())
    assert summary["completed"] is True and summary["engine"] == "tar"
    assert summary["people"][0]["rows"] == gt.num_frames and summary["checkpoint"]["variant"] == "tar-tiny"
    assert summary["video"]["width"] == 384 and "tracking" in summary["timings_s"]
    assert m.provenance_dict["checkpoint_sha256"] == summary["checkpoint"]["sha256"]


def _boxes_file(tmp_path: Path) -> Path:
    """Two people by the user's boxes: #7 only in frames 0-9, #3 in every frame."""
    gt = read_motion(SAMPLE_GT)
    boxes = {}
    for i, b in enumerate(gt.bbox_xyxy):
        entries = [{"box": b.tolist(), "id": 3}]
        if i < 10:
            entries.append([*(b + np.array([-5, -5, 5, 5])).tolist(), 7])
        boxes[str(i)] = entries
    path = tmp_path / "boxes.json"
    path.write_text(json.dumps(boxes))
    return path


def test_cancel_keeps_finished_people_and_says_so(tiny_checkpoint, tmp_path):
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "tar_core", "capture", str(SAMPLE), "-o", str(out),
                             "--checkpoint", str(tiny_checkpoint), "--boxes", str(_boxes_file(tmp_path)),
                             "--progress", "jsonl"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen = []
    for line in proc.stdout:
        if line.startswith("{"):
            seen.append(json.loads(line))
            if seen[-1]["event"] == "output":  # person #7 is finished: interrupt now
                proc.send_signal(signal.SIGINT)
                break
    rest, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert events(rest)[-1]["event"] == "error"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["completed"] is False
    assert [p["track_id"] for p in summary["people"]] == [7]
    m = read_motion(out / "person_7.npz")
    assert m.num_frames == 10
    assert not (out / "person_3.npz").exists()
    assert not [p for p in os.listdir(out) if p.startswith(".")]  # no temporary files left


def _blank_clip(path: Path, frames: int = 12) -> Path:
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25.0, (160, 120))
    for i in range(frames):
        img = np.full((120, 160, 3), 40 + 10 * i, np.uint8)
        cv2.rectangle(img, (20, 20), (60, 60), (200, 180, 50), -1)
        w.write(img)
    w.release()
    return path


def test_tar_engine_without_checkpoint_runs_the_builtin_demo(tiny_checkpoint, tmp_path):
    out = tmp_path / "out"
    res = run_cli("capture", SAMPLE, "-o", out, "--engine", "tar",
                  env={**os.environ, "TAR_DEMO_CHECKPOINT": str(tiny_checkpoint)})
    assert res.returncode == 0, res.stderr
    assert "built-in demo checkpoint" in res.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["checkpoint"]["builtin_demo"] is True and summary["engine"] == "tar"
    assert Path(summary["checkpoint"]["path"]) == Path(tiny_checkpoint)
    assert any("demo" in n for n in summary["notes"])
    assert read_motion(out / "person_0.npz").num_frames == read_motion(SAMPLE_GT).num_frames


def test_bad_inputs_get_distinct_exit_codes_and_messages(tiny_checkpoint, tmp_path):
    out = tmp_path / "out"
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"this is not a video" * 100)
    empty_avi = tmp_path / "zero frames.avi"
    writer = cv2.VideoWriter(str(empty_avi), cv2.VideoWriter_fourcc(*"XVID"), 25.0, (64, 48))
    writer.release()  # an AVI container with no frame in it
    cases = [
        (["capture", tmp_path / "missing.mp4", "-o", out, "--checkpoint", tiny_checkpoint], "video", "missing.mp4"),
        (["capture", garbage, "-o", out, "--checkpoint", tiny_checkpoint], "video", "garbage.mp4"),
        (["capture", empty_avi, "-o", out, "--checkpoint", tiny_checkpoint], "no_frames", "no frames"),
        (["capture", _blank_clip(tmp_path / "empty scene.mp4"), "-o", out, "--checkpoint", tiny_checkpoint],
         "no_person", "no person"),
        (["capture", SAMPLE, "-o", out, "--checkpoint", tmp_path / "nope.pt"], "checkpoint", "nope.pt"),
        (["capture", SAMPLE, "-o", out, "--checkpoint", tiny_checkpoint, "--body", tmp_path / "SMPL.pkl"],
         "body_model", "SMPL.pkl"),
        (["capture", SAMPLE, "-o", garbage / "sub", "--checkpoint", tiny_checkpoint], "output", "not writable"),
    ]
    codes = set()
    for args, kind, needle in cases:
        res = run_cli(*args)
        assert res.returncode == EXIT_CODES[kind], (args, res.returncode, res.stderr)
        assert needle in res.stderr, (args, res.stderr)
        codes.add(res.returncode)
    assert len(codes) == 6  # missing and unreadable video share one code; every other kind has its own
    # The tar engine without --checkpoint runs the built-in demo; when that file is gone it refuses (never random).
    res = run_cli("capture", SAMPLE, "-o", out, "--engine", "tar",
                  env={**os.environ, "TAR_DEMO_CHECKPOINT": str(tmp_path / "no demo.pt")})
    assert res.returncode == EXIT_CODES["checkpoint"] and "demo checkpoint is missing" in res.stderr, res.stderr
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(Path(tiny_checkpoint).read_bytes()[:2000])
    res = run_cli("capture", SAMPLE, "-o", out, "--checkpoint", corrupt)
    assert res.returncode == EXIT_CODES["checkpoint"] and "corrupt" in res.stderr
