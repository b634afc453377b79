"""The RRM started from the keypoints engine's fit (``rrm_init="keypoints"``, issue 16's ablation): the config,
the start replacing the regressor's estimate row by row, the crop camera that reproduces a fitted translation,
and checkpoints written before the option existed."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from tar_core.body_model import load_body_model
from tar_core.errors import CheckpointError, ConfigError
from tar_core.geometry import camera as cam
from tar_core.geometry.rotations import axis_angle_to_matrix
from tar_core.network.checkpoints import FORMAT_VERSION, load_checkpoint, read_checkpoint, save_checkpoint
from tar_core.network.config import get_variant
from tar_core.network.refinement import Geometry, Start
from tar_core.network.tar import TAR


@pytest.fixture(scope="module")
def body():
    return load_body_model()


def _geometry(B: int) -> Geometry:
    return Geometry(center=torch.tensor([[320.0, 240.0], [300.0, 260.0], [350.0, 220.0]])[:B],
                    size=torch.tensor([300.0, 260.0, 320.0])[:B], focal=torch.full((B,), 800.0),
                    principal=torch.tensor([[320.0, 240.0]]).expand(B, 2))


def test_the_option_is_checked_and_the_ablation_is_a_variant():
    kp = get_variant("tar-blazepose-kp-init")
    assert kp.rrm_init == "keypoints" and get_variant("tar-blazepose").rrm_init == "regressor"
    assert replace(kp, rrm_init="regressor") == replace(get_variant("tar-blazepose"), name=kp.name)
    with pytest.raises(ConfigError, match="rrm_init must be"):
        replace(kp, rrm_init="fit")
    with pytest.raises(ConfigError, match="needs use_rrm"):
        replace(kp, use_rrm=False)


def test_crop_camera_reproduces_the_translation():
    g = torch.Generator().manual_seed(0)
    transl = torch.randn(3, 3, generator=g) * torch.tensor([0.5, 0.3, 1.0]) + torch.tensor([0.0, 0.0, 6.0])
    geom = _geometry(3)
    crop = cam.full_to_crop_camera(transl, geom.center, geom.size, geom.focal, geom.principal)
    back = cam.crop_to_full(crop, geom.center, geom.size, geom.focal, geom.principal)
    torch.testing.assert_close(back, transl, atol=1e-5, rtol=1e-5)


def test_the_refinement_starts_from_the_fit_where_there_is_one(body):
    torch.manual_seed(0)
    cfg = replace(get_variant("tar-tiny"), name="tiny-kp", rrm_init="keypoints")
    model = TAR(cfg, body).eval()
    B, geom = 3, _geometry(3)
    g = torch.Generator().manual_seed(1)
    rotmat = axis_angle_to_matrix(0.4 * torch.randn(B, 24, 3, generator=g))
    betas, transl = 0.5 * torch.randn(B, 10, generator=g), torch.tensor([[0.1, 0.2, 5.0], [-0.3, 0.1, 7.0],
                                                                         [0.0, -0.2, 4.0]])
    start = Start.from_fit(rotmat, betas, transl, torch.tensor([True, False, True]), geom)
    seq = (torch.randn(B, cfg.seq_len, model.backbone.global_dim), torch.randn(B, cfg.lte_window,
                                                                                model.backbone.local_dim, 64, 64))
    with torch.no_grad():
        init = model.forward_features(*seq, geom, start)[0]
        plain = model.forward_features(*seq, geom)[0]
    for r in (0, 2):  # the fit, exactly: its rotations and its translation through the crop camera
        torch.testing.assert_close(init.rotmat[r], rotmat[r], atol=1e-5, rtol=0)
        torch.testing.assert_close(init.transl[r], transl[r], atol=1e-4, rtol=1e-5)
        torch.testing.assert_close(init.betas[r], betas[r])
    torch.testing.assert_close(init.rotmat[1], plain.rotmat[1])  # no fit: the regressor's estimate
    assert not torch.allclose(init.rotmat[0], plain.rotmat[0], atol=1e-2)
    # A model that starts from the regressor ignores a start.
    paper = TAR(replace(cfg, rrm_init="regressor"), body).eval()
    paper.load_state_dict(model.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(paper.forward_features(*seq, geom, start)[0].rotmat, plain.rotmat)


def test_the_refinement_can_stop_early(body):
    """``iterations`` ends the RRM after its first few iterations (the aligned capture uses its 2nd estimate): the
    same estimates as the full run's first ones; asking for more than the model has gives them all."""
    torch.manual_seed(0)
    cfg = get_variant("tar-tiny")
    model = TAR(cfg, body).eval()
    geom = _geometry(2)
    seq = (torch.randn(2, cfg.seq_len, model.backbone.global_dim), torch.randn(2, cfg.lte_window,
                                                                                model.backbone.local_dim, 64, 64))
    with torch.no_grad():
        full = model.forward_features(*seq, geom)
        two = model.forward_features(*seq, geom, iterations=2)
        more = model.forward_features(*seq, geom, iterations=cfg.iterations + 3)
    assert len(full) == 1 + cfg.iterations and len(two) == 3 and len(more) == len(full)
    for a, b in zip(two, full[:3], strict=True):
        torch.testing.assert_close(a.rotmat, b.rotmat)
        torch.testing.assert_close(a.transl, b.transl)
    assert not torch.allclose(two[-1].rotmat, full[-1].rotmat)


def test_version_one_checkpoints_load_as_regressor_started(body, tmp_path):
    torch.manual_seed(0)
    model = TAR(get_variant("tar-tiny"), body).eval()
    payload = read_checkpoint(save_checkpoint(tmp_path / "now.pt", model))
    assert payload["format_version"] == FORMAT_VERSION == 2 and payload["config"]["rrm_init"] == "regressor"
    old = {**payload, "format_version": 1, "config": {k: v for k, v in payload["config"].items() if k != "rrm_init"}}
    torch.save(old, tmp_path / "v1.pt")
    loaded = load_checkpoint(tmp_path / "v1.pt", body=body)
    assert loaded.config == model.cfg
    # A version-2 file must say where its RRM starts; a future version is refused.
    torch.save({**old, "format_version": 2}, tmp_path / "v2-missing.pt")
    with pytest.raises(CheckpointError, match="missing fields \\['rrm_init'\\]"):
        load_checkpoint(tmp_path / "v2-missing.pt", body=body)
    torch.save({**payload, "format_version": 3}, tmp_path / "v3.pt")
    with pytest.raises(CheckpointError, match="version 3 is not supported"):
        load_checkpoint(tmp_path / "v3.pt", body=body)


def test_the_demo_checkpoint_still_loads(body):
    from tar_core.network.checkpoints import demo_checkpoint

    ck = load_checkpoint(demo_checkpoint(), body=body)
    assert ck.config.rrm_init in ("regressor", "keypoints")
    assert np.isfinite(next(iter(ck.model.parameters())).detach().numpy()).all()
