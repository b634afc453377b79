"""Contacts of the keypoints engine on a rendered walk whose feet are truly planted (``--planted-feet``):
the capture's ``contacts`` against the frames where the true feet stand still."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import run_cli

from tar_core.motion_file import read_motion

STILL = 0.004  # metres per frame: a true foot joint moving less than this stands


@pytest.mark.slow
def test_contacts_on_a_render_with_known_planted_frames(tmp_path):
    clip = tmp_path / "walk.mp4"
    res = run_cli("render-clip", "--motion", "walk", "--planted-feet", "--frames", "40", "--size", "640x480",
                  "--samples", "2", "--seed", "5", "-o", clip, timeout=1200)
    assert res.returncode == 0, res.stderr
    res = run_cli("capture", clip, "-o", tmp_path / "out", "--focal", "800")
    assert res.returncode == 0, res.stderr
    m = read_motion(tmp_path / "out" / "person_0.npz")
    gt = read_motion(clip.with_suffix(".npz"))
    idx = np.searchsorted(gt.frame_ids, m.frame_ids)
    feet = gt.joints_cam[idx][:, [10, 11]]  # the true left and right foot joints
    still = np.linalg.norm(np.diff(feet, axis=0), axis=-1) < STILL  # (N-1, 2), between frames i and i+1
    truth = np.concatenate([still, still[-1:]]) | np.concatenate([still[:1], still])
    found = m.contacts.reshape(len(m.contacts), 2, 2).max(-1) > 0.5  # (N, 2): heel or toe planted, per foot
    assert truth.mean() > 0.2  # the walk does stand on its feet
    precision = (found & truth).sum() / max(found.sum(), 1)
    recall = (found & truth).sum() / truth.sum()
    # Measured on this render: precision 0.95, recall 0.62 (renders of one seed differ a little between
    # runs); 0.92 / 0.95 on a 48-frame render of seed 21. Before the ground was kept square to the line of
    # footprints, a body that leans while walking tilted it, feet far along the path read raised, and recall
    # here was 0.32-0.47. What is still missed: the last stance, at the clip's end.
    assert precision > 0.8 and recall > 0.45, (precision, recall)
