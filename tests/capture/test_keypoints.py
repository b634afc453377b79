"""The keypoints engine (MediaPipe landmarks fitted with the body model) on rendered clips with
exact ground truth."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import read_video

from tar_core.errors import EXIT_CODES
from tar_core.motion_file import read_motion

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "data" / "sample" / "sample_walk.mp4"
GT = ROOT / "data" / "sample" / "sample_walk.npz"
LIMBS = [16, 17, 18, 19, 20, 21, 1, 2, 4, 5, 7, 8]  # shoulders, elbows, wrists, hips, knees, ankles


def capture(clip: Path, out: Path, *extra) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tar_core", "capture", str(clip), "-o", str(out), *extra],
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def sample_fit(tmp_path_factory):
    out = tmp_path_factory.mktemp("kp")
    res = capture(SAMPLE, out)  # no checkpoint: the keypoints engine is the default
    assert res.returncode == 0, res.stderr
    return read_motion(out / "person_0.npz"), json.loads((out / "summary.json").read_text())


def test_default_engine_is_keypoints_and_2d_joints_land_on_the_ground_truth(sample_fit):
    m, summary = sample_fit
    gt = read_motion(GT)
    assert m.engine == "keypoints" and summary["engine"] == "keypoints" and m.body_model == "mannequin"
    assert m.num_frames == gt.num_frames
    err = np.linalg.norm(m.joints_2d[:, LIMBS] - gt.joints_2d[:, LIMBS], axis=-1)
    assert np.median(err) < 4.0 and err.mean() < 6.0, (np.median(err), err.mean())
    # Root-aligned 3D shape of the motion is right to within a human hand.
    a = m.joints_cam - m.joints_cam[:, [1, 2]].mean(1, keepdims=True)
    b = gt.joints_cam - gt.joints_cam[:, [1, 2]].mean(1, keepdims=True)
    assert np.linalg.norm(a - b, axis=-1)[:, LIMBS].mean() < 0.15
    assert ((m.confidence > 0.5) & (m.confidence <= 1)).all()


def test_elbows_and_knees_bend_only_the_human_way(sample_fit):
    m, _ = sample_fit
    aa = m.poses.reshape(-1, 24, 3)
    # Left elbow flexes about -y, right about +y (SMPL T-pose axes); knees about +x.
    assert aa[:, 18, 1].max() < 0.05 and aa[:, 19, 1].min() > -0.05
    assert aa[:, 4, 0].min() > -0.05 and aa[:, 5, 0].min() > -0.05


@pytest.mark.parametrize("seconds", [1.0, 0.25])
def test_person_leaving_keeps_one_track_with_a_gap_or_a_bridge(tmp_path, seconds):
    frames, fps = read_video(SAMPLE)
    gone = range(30, 30 + int(round(seconds * fps)))  # the person is not in these frames
    clip = tmp_path / "leaves.mp4"
    w = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"mp4v"), fps, (frames[0].shape[1], frames[0].shape[0]))
    for i, img in enumerate(frames):
        w.write(np.full_like(img, 150) if i in gone else img)
    w.release()
    res = capture(clip, tmp_path / "out")
    assert res.returncode == 0, res.stderr
    files = sorted((tmp_path / "out").glob("person_*.npz"))
    assert len(files) == 1
    m = read_motion(files[0])
    kept = set(m.frame_ids.tolist())
    assert 0 in kept and len(frames) - 1 in kept
    if seconds >= 1.0:  # a long absence is left out (a gap), not invented
        assert not kept & set(gone)
    else:  # a short one is bridged, with low confidence
        assert set(gone) <= kept
        bridged = np.isin(m.frame_ids, list(gone))
        assert (m.confidence[bridged] < 0.5).all() and (m.confidence[~bridged] > 0.5).mean() > 0.9


def test_nobody_in_the_clip_is_reported(tmp_path):
    clip = tmp_path / "nobody.mp4"
    w = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"mp4v"), 24.0, (192, 144))
    for i in range(12):
        w.write(np.full((144, 192, 3), 60 + 5 * i, np.uint8))
    w.release()
    res = capture(clip, tmp_path / "out")
    assert res.returncode == EXIT_CODES["no_person"] and "no person" in res.stderr
