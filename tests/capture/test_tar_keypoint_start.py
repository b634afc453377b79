"""The tar engine with a refinement that starts from the keypoints engine's fit (``rrm_init="keypoints"``): the
fit runs first in the capture's camera and each frame's RRM starts from it. Untrained, the refiner's updates are
small (its output layers start near zero), so the result must sit on the keypoints engine's own motion; an
untrained model that starts from its regressor lands nowhere near it. A refiner's estimate is then met half way by
the fit and aligned to the landmarks (``keypoints.align``), which from the fit itself gives the fit back."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from tar_core.body_model import load_body_model
from tar_core.capture.pipeline import CaptureOptions, capture
from tar_core.motion_file import read_motion
from tar_core.network.checkpoints import save_checkpoint
from tar_core.network.config import get_variant
from tar_core.network.tar import TAR
from tar_core.util.progress import Progress

FOCAL = 480.0  # the sample clip's (384 x 288) image diagonal, given to both engines alike


def _capture(clip: Path, out: Path, **kw):
    with open(os.devnull, "w") as quiet:
        opts = CaptureOptions(clip=str(clip), output=str(out), focal=FOCAL, max_people=1, **kw)
        capture(opts, Progress(stream=quiet))
    return read_motion(out / "person_0.npz")


@pytest.fixture(scope="module")
def keypoints_motion(sample_clip, tmp_path_factory):
    return _capture(sample_clip, tmp_path_factory.mktemp("kp"), engine="keypoints")


@pytest.mark.parametrize("rrm_init, align", [("keypoints", True), ("keypoints", False), ("regressor", True)])
def test_an_untrained_refiner_keeps_the_keypoints_fit(sample_clip, keypoints_motion, tmp_path, rrm_init, align):
    torch.manual_seed(0)
    variant = "tar-blazepose-kp-init" if rrm_init == "keypoints" else "tar-blazepose"
    path = save_checkpoint(tmp_path / "untrained.pt", TAR(get_variant(variant), load_body_model()))
    m = _capture(sample_clip, tmp_path / "tar", engine="tar", checkpoint=str(path), device="cpu", align=align)
    kp = keypoints_motion
    assert m.engine == "tar" and np.array_equal(m.frame_ids, kp.frame_ids)
    assert m.provenance_dict["rrm_init"] == rrm_init and m.provenance_dict["smooth_hz"] == 4.0
    assert m.provenance_dict["focal_method"] == "given" and m.camera_intrinsics[0, 0] == FOCAL
    # only a refiner's estimate is aligned to the landmarks: the regressor's start has no fit to meet
    assert m.provenance_dict["aligned_to_landmarks"] == (align and rrm_init == "keypoints")
    # aligned, the refinement stops early (its later iterations turn what the fit now shares)
    assert m.provenance_dict["rrm_iterations"] == (2 if align and rrm_init == "keypoints" else 5)
    rot = np.degrees(np.abs(m.poses - kp.poses)).mean()
    move = np.linalg.norm(m.trans - kp.trans, axis=1).mean()
    if rrm_init == "regressor":
        assert m.contacts is None
        assert rot > 5.0 or move > 0.5, (rot, move)
    elif not align:
        assert rot < 1.0 and move < 0.05, (rot, move)
        # The fit's floor and contacts come along (the add-on puts the floor at z = 0 from them).
        np.testing.assert_allclose(m.ground_plane, kp.ground_plane, atol=1e-6)
        np.testing.assert_allclose(m.contacts, kp.contacts, atol=1e-6)
    else:  # aligned again from (nearly) the fit itself: the same motion, floor and contacts, found anew
        assert rot < 1.5 and move < 0.05, (rot, move)
        assert np.degrees(np.arccos(np.clip(m.ground_plane[:3] @ kp.ground_plane[:3], -1, 1))) < 3.0
        # the sample walk's feet slide (it is played forth and back), so its floor is found only to a few cm
        assert abs(m.ground_plane[3] - kp.ground_plane[3]) < 0.1
        assert np.abs(m.contacts - kp.contacts).mean() < 0.1
        err_2d = np.linalg.norm(m.joints_2d - kp.joints_2d, axis=-1).mean()
        assert err_2d < 3.0, err_2d
        # the summary keeps the figures of the fit the refiner starts from and of the alignment
        fit = json.loads((tmp_path / "tar" / "summary.json").read_text())["fit"]["tracks"]["0"]
        assert fit["start"]["solver_iterations"] and fit["aligned"]["solver_iterations"]
        assert fit["aligned"]["seconds"] > 0
        assert fit["aligned"]["fit_rows_other_reading"] == 0 and fit["aligned"]["network_rows_turned_round"] == 0


def test_no_align_reaches_the_capture_options():
    from tar_core.cli import build_parser
    from tar_core.cli.common import keywords

    for argv, want in (([], True), (["--no-align"], False)):
        argv = ["capture", "clip.mp4", "-o", "out", *argv]
        assert CaptureOptions(**keywords(build_parser().parse_args(argv), CaptureOptions)).align is want


def test_a_cancel_while_aligning_keeps_the_networks_own_motion(sample_clip, tmp_path):
    """Stopped during the last step, the track's finished network estimate is written (labelled unaligned) and
    the capture ends cancelled."""
    from tar_core.errors import Cancelled
    from tar_core.util.stop import StopFlag

    torch.manual_seed(0)
    path = save_checkpoint(tmp_path / "untrained.pt", TAR(get_variant("tar-blazepose-kp-init"), load_body_model()))
    stop = StopFlag()

    class CancelWhenAligning(Progress):
        def progress(self, stage, done, total):
            if stage == "tar" and total and done > 72:  # past the clip's 72 frames: rows being aligned
                stop.signum = 2
            super().progress(stage, done, total)

    out = tmp_path / "tar"
    opts = CaptureOptions(clip=str(sample_clip), output=str(out), focal=FOCAL, max_people=1, engine="tar",
                          checkpoint=str(path), device="cpu")
    with open(os.devnull, "w") as quiet, pytest.raises(Cancelled):
        capture(opts, CancelWhenAligning(stream=quiet, min_interval=0.0), stop)
    m = read_motion(out / "person_0.npz")
    assert m.provenance_dict["aligned_to_landmarks"] is False and m.provenance_dict["rrm_init"] == "keypoints"
    assert len(m.frame_ids) == 72 and m.contacts is not None
