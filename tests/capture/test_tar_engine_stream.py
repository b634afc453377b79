"""The tar engine's streaming (the backbone and the LTE's per-frame part once per frame, windows from a ring
buffer, clip edges padded by repetition) gives what the model gives on each frame's whole window of images."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tar_core.body_model import load_body_model
from tar_core.capture.engines.tar import TarEngine
from tar_core.geometry.rotations import matrix_to_axis_angle
from tar_core.network.config import get_variant
from tar_core.network.refinement import Geometry
from tar_core.network.tar import TAR


@pytest.mark.parametrize("variant", ["tar-tiny", "tar-tiny-gte-only"])
def test_streamed_frames_match_whole_windows(variant):
    torch.manual_seed(0)
    model = TAR(get_variant(variant), load_body_model()).eval()
    T, F = model.cfg.seq_len, 6
    crops = torch.randn(F, 3, 256, 256)
    geom = (np.array([300.0, 250.0]), 280.0, 800.0, np.array([320.0, 240.0]))
    engine = TarEngine(model, "cpu", batch_windows=4)
    results = {}
    for f in range(F):
        for r in engine.add([(1, f, crops[f], geom)]):
            results[r.row] = r
    for r in engine.end_track(1):
        results[r.row] = r
    assert sorted(results) == list(range(F)) and engine.frames_encoded == F
    g = Geometry(center=torch.tensor(np.array([geom[0]]), dtype=torch.float32), size=torch.tensor([geom[1]]),
                 focal=torch.tensor([geom[2]]), principal=torch.tensor(np.array([geom[3]]), dtype=torch.float32))
    for f in (0, 2, F - 1):  # the first, a middle and the last frame (both ends padded)
        window = crops[np.clip(np.arange(f - T // 2, f + T // 2 + 1), 0, F - 1)][None]  # (1, T, 3, 256, 256)
        with torch.no_grad():
            est = model(window, g)[-1]
        pose = matrix_to_axis_angle(est.rotmat.double()).reshape(72).numpy()
        np.testing.assert_allclose(results[f].poses, pose, atol=2e-4)
        np.testing.assert_allclose(results[f].trans, est.transl[0].numpy(), atol=2e-4, rtol=1e-4)


@pytest.mark.parametrize("fps", [24.0, 60.0])
def test_the_motion_is_low_passed_in_hz_of_real_time(fps):
    from tar_core.capture.engines.tar import smooth_motion
    from tar_core.geometry.rotations import axis_angle_to_matrix

    rng = np.random.default_rng(0)
    t = np.arange(int(4 * fps)) / fps
    clean = np.zeros((len(t), 72))
    clean[:, 3 * 18 + 2] = 0.8 * np.sin(2 * np.pi * 0.5 * t)  # an elbow swinging at 0.5 Hz
    clean[:, 0] = np.pi - 0.2  # global orientation near a half turn (axis-angle's wrap)
    trans = np.stack([0.3 * np.sin(2 * np.pi * 0.3 * t), np.zeros_like(t), 4 + 0 * t], 1)
    noisy = clean + rng.normal(0, 0.05, clean.shape)
    poses, out_trans = smooth_motion(noisy, trans + rng.normal(0, 0.02, trans.shape), t, 4.0)

    def rot_err(p):  # mean angle (deg) from the clean rotations, interior frames
        Ra, Rb = axis_angle_to_matrix(p.reshape(-1, 3)), axis_angle_to_matrix(clean.reshape(-1, 3))
        cos = (np.einsum("nij,nij->n", Ra, Rb) - 1) / 2
        return np.degrees(np.arccos(np.clip(cos, -1, 1))).reshape(len(t), 24)[5:-5].mean()

    # White noise keeps the share of its band under the cut-off: about sqrt(4 / 12) of it at 24 fps, less at 60.
    assert rot_err(poses) < (0.65 if fps < 30 else 0.45) * rot_err(noisy)
    assert np.abs(out_trans - trans)[5:-5].mean() < 0.01
    # The swing itself (0.5 Hz, far below the cut-off) is kept.
    assert np.abs(poses[:, 3 * 18 + 2] - clean[:, 3 * 18 + 2])[5:-5].max() < 0.1
