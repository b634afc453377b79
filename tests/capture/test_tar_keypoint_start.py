"""The tar engine with a refinement that starts from the keypoints engine's fit (``rrm_init="keypoints"``): the
fit runs first in the capture's camera and each frame's RRM starts from it. Untrained, the refiner's updates are
small (its output layers start near zero), so the result must sit on the keypoints engine's own motion; an
untrained model that starts from its regressor lands nowhere near it."""

from __future__ import annotations

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


@pytest.mark.parametrize("rrm_init", ["keypoints", "regressor"])
def test_an_untrained_refiner_keeps_the_keypoints_fit(sample_clip, keypoints_motion, tmp_path, rrm_init):
    torch.manual_seed(0)
    variant = "tar-blazepose-kp-init" if rrm_init == "keypoints" else "tar-blazepose"
    path = save_checkpoint(tmp_path / "untrained.pt", TAR(get_variant(variant), load_body_model()))
    m = _capture(sample_clip, tmp_path / "tar", engine="tar", checkpoint=str(path), device="cpu")
    kp = keypoints_motion
    assert m.engine == "tar" and np.array_equal(m.frame_ids, kp.frame_ids)
    assert m.provenance_dict["rrm_init"] == rrm_init and m.provenance_dict["smooth_hz"] == 4.0
    rot = np.degrees(np.abs(m.poses - kp.poses)).mean()
    move = np.linalg.norm(m.trans - kp.trans, axis=1).mean()
    if rrm_init == "keypoints":
        assert rot < 1.0 and move < 0.05, (rot, move)
        # The fit's floor and contacts come along (the add-on puts the floor at z = 0 from them).
        np.testing.assert_allclose(m.ground_plane, kp.ground_plane, atol=1e-6)
        np.testing.assert_allclose(m.contacts, kp.contacts, atol=1e-6)
    else:
        assert m.contacts is None
        assert rot > 5.0 or move > 0.5, (rot, move)
