"""The TAR network: variants, shapes, gradients, temporal receptive fields, ConvGRU, marker
sampling, losses and checkpoints."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
import torch
from scipy.signal import correlate2d

from tar_core.body_model import load_body_model
from tar_core.errors import CheckpointError, ConfigError
from tar_core.geometry.rotations import axis_angle_to_matrix
from tar_core.network.checkpoints import load_checkpoint, read_checkpoint, save_checkpoint
from tar_core.network.config import VARIANTS, TARConfig, config_from_dict, get_variant
from tar_core.network.local_encoder import ConvGRUCell
from tar_core.network.refinement import Geometry, sample_windows
from tar_core.network.tar import TAR
from tar_core.training.losses import Targets, tar_loss

REQUIRED_VARIANTS = [
    "tar-hrnet48", "tar-hrnet48-s32", "tar-hrnet48-s16", "tar-hrnet48-s8", "tar-resnet50", "tar-tiny",
    "tar-hrnet48-no-rrm", "tar-hrnet48-gte-only", "tar-hrnet48-lte-only", "tar-hrnet48-l3", "tar-hrnet48-l7",
    "tar-tiny-no-rrm", "tar-tiny-gte-only", "tar-tiny-lte-only",
    "tar-hrnet48-l9", "tar-hrnet48-zero-hidden",
]  # fmt: skip


@pytest.fixture(scope="module")
def body():
    return load_body_model()


def geometry(B: int) -> Geometry:
    return Geometry(
        center=torch.tensor([[320.0, 240.0], [300.0, 260.0], [350.0, 220.0]])[:B],
        size=torch.tensor([300.0, 260.0, 320.0])[:B],
        focal=torch.full((B,), 800.0),
        principal=torch.tensor([[320.0, 240.0]]).expand(B, 2),
    )


def tiny(**changes) -> TARConfig:
    return replace(get_variant("tar-tiny"), **changes)


def test_every_named_variant_exists_and_differs_as_the_paper_says():
    assert set(REQUIRED_VARIANTS) <= set(VARIANTS)
    best = get_variant("tar-hrnet48")
    assert (best.backbone, best.lte_size, best.lte_window, best.seq_len, best.iterations) == ("hrnet48", 64, 5, 9, 5)
    assert best.hidden_init == "gte" and best.use_gte and best.use_lte and best.use_rrm
    assert [get_variant(f"tar-hrnet48-s{s}").lte_size for s in (32, 16, 8)] == [32, 16, 8]
    assert [get_variant(f"tar-hrnet48-l{n}").lte_window for n in (3, 7, 9)] == [3, 7, 9]
    assert get_variant("tar-resnet50").backbone == "resnet50"
    assert not get_variant("tar-hrnet48-no-rrm").use_rrm
    assert not get_variant("tar-hrnet48-gte-only").use_lte
    lte_only = get_variant("tar-hrnet48-lte-only")
    assert not lte_only.use_gte and lte_only.hidden_init == "zero"
    assert get_variant("tar-hrnet48-zero-hidden").hidden_init == "zero"
    with pytest.raises(ConfigError, match="unknown variant"):
        get_variant("tar-nonsense")
    with pytest.raises(ConfigError):
        replace(best, lte_window=4)
    with pytest.raises(ConfigError, match="unknown fields"):
        config_from_dict({**best.to_dict(), "extra": 1})


@pytest.mark.parametrize("name", REQUIRED_VARIANTS)
def test_shapes_for_every_variant(body, name):
    """The temporal head on cached features (the backbones are tested in test_backbones.py)."""
    cfg = get_variant(name)
    model = TAR(cfg, body).eval()
    B = 1
    with torch.no_grad():
        g = torch.randn(B, cfg.seq_len, model.backbone.global_dim)
        m = torch.randn(B, cfg.lte_window, model.backbone.local_dim, 64, 64)
        out = model.forward_features(g, m, geometry(B))
    assert len(out) == (1 + cfg.iterations if cfg.use_rrm else 1)
    last = out[-1]
    assert last.rotmat.shape == (B, 24, 3, 3) and last.betas.shape == (B, 10) and last.cam.shape == (B, 3)
    assert last.joints.shape == (B, 24, 3) and last.joints_2d.shape == (B, 24, 2)
    assert last.markers.shape == (B, cfg.num_markers, 3)
    assert torch.isfinite(last.joints).all()
    # Rotations are proper; the body is in front of the camera.
    eye = torch.eye(3).expand_as(last.rotmat)
    torch.testing.assert_close(last.rotmat @ last.rotmat.transpose(-1, -2), eye, atol=1e-4, rtol=0)
    assert (last.transl[:, 2] > 0).all()


def test_tiny_end_to_end_returns_six_estimates(body):
    """Speed is measured by scripts/bench_*.py, not asserted here."""
    model = TAR(get_variant("tar-tiny"), body).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 9, 3, 256, 256), geometry(1))
    assert len(out) == 6  # initial + 5 iterations
    # Each iteration changes the estimate (the refinement is not a no-op).
    assert all(not torch.equal(a.pose6d, b.pose6d) for a, b in zip(out, out[1:], strict=False))


def make_targets(B: int, seed: int = 0) -> Targets:
    g = torch.Generator().manual_seed(seed)
    aa = 0.3 * torch.randn(B, 24, 3, generator=g)
    joints = torch.randn(B, 24, 3, generator=g) * 0.3 + torch.tensor([0.0, 0.0, 5.0])
    return Targets(
        joints_2d=torch.rand(B, 24, 2, generator=g) * 200 + 200, joints_2d_conf=torch.ones(B, 24),
        joints_3d=joints, has_3d=torch.ones(B), rotmat=axis_angle_to_matrix(aa),
        betas=torch.randn(B, 10, generator=g), has_smpl=torch.ones(B),
    )  # fmt: skip


def test_gradients_reach_every_trainable_parameter(body):
    torch.manual_seed(0)
    cfg = tiny(marker_dropout=0.0)
    model = TAR(cfg, body).train()
    images = torch.randn(2, 9, 3, 256, 256)
    out = model(images, geometry(2))
    loss = tar_loss(out, make_targets(2), geometry(2), cfg)["loss"]
    loss.backward()
    no_grad = [n for n, p in model.named_parameters()
               if p.requires_grad and (p.grad is None or not torch.any(p.grad != 0))]
    assert not no_grad, no_grad


def test_loss_weights_stages_by_gamma_and_masks_missing_labels(body):
    cfg = tiny()
    model = TAR(cfg, body).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 9, 3, 256, 256), geometry(2))
    gt = make_targets(2)
    full = tar_loss(out, gt, geometry(2), cfg)["loss"]
    # Only the last stage, by hand: gamma^0 weight, scale 60.
    from tar_core.training.losses import stage_loss

    parts = [stage_loss(e, gt, geometry(2), cfg)["total"] for e in out]
    expected = cfg.loss_scale * sum(cfg.loss_gamma ** (len(out) - 1 - i) * p for i, p in enumerate(parts))
    torch.testing.assert_close(full, expected)
    # A sample without SMPL labels: its rotation term is ignored (changing them changes nothing).
    gt2 = make_targets(2)
    gt2.has_smpl = torch.tensor([1.0, 0.0])
    gt3 = make_targets(2)
    gt3.has_smpl = torch.tensor([1.0, 0.0])
    gt3.rotmat[1] = torch.eye(3)
    gt3.betas[1] = 5.0
    torch.testing.assert_close(tar_loss(out, gt2, geometry(2), cfg)["loss"],
                               tar_loss(out, gt3, geometry(2), cfg)["loss"])


def _outputs(model, images):
    with torch.no_grad():
        return model(images, geometry(1))[-1].joints


def _frame_sensitivity(model, images) -> torch.Tensor:
    """(T,) size of d(final joints)/d(frame): exact zeros where a frame cannot reach the output."""
    images = images.clone().requires_grad_(True)
    out = model(images, geometry(1))[-1]
    (grad,) = torch.autograd.grad(out.joints.sum() + out.pose6d.sum(), images)
    return grad[0].abs().flatten(1).sum(1)


@pytest.mark.parametrize("variant", ["full", "lte-only", "gte-only"])
def test_temporal_receptive_fields(body, variant):
    """Frames inside the LTE window reach the output through the local features; frames outside
    it only through the GTE (and not at all without a GTE)."""
    torch.manual_seed(1)
    cfg = {"full": tiny(), "lte-only": tiny(use_gte=False, hidden_init="zero"),
           "gte-only": tiny(use_lte=False)}[variant]
    model = TAR(cfg, body).eval()
    images = torch.randn(1, 9, 3, 256, 256)
    sens = _frame_sensitivity(model, images)
    inside, outside = [2, 3, 4, 5, 6], [0, 1, 7, 8]
    if variant == "gte-only":  # static local features: the middle frame, plus all through the GTE
        assert (sens > 0).all()
    else:
        assert (sens[inside] > 0).all()
        assert ((sens[outside] > 0).all() if variant == "full" else (sens[outside] == 0).all())
    if variant == "full":
        # ... and only through the GTE: local maps of outside frames get no gradient.
        g, m = model.encode_frames(images[0])
        g, m = g[None].detach().requires_grad_(True), m[None].detach().requires_grad_(True)
        out = model.forward_features(g, m[:, 2:7], geometry(1))[-1].joints.sum()
        gg, gm = torch.autograd.grad(out, [g, m])
        assert gg[0, 0].abs().sum() > 0  # the first frame's global vector matters
        assert gm[0, :2].abs().sum() == 0 and gm[0, 7:].abs().sum() == 0
        assert gm[0, 2:7].abs().sum() > 0
    # An actual change of a frame outside the window leaves the lte-only output bit-identical.
    if variant == "lte-only":
        changed = images.clone()
        changed[0, 0] += 1.0
        torch.testing.assert_close(_outputs(model, changed), _outputs(model, images), atol=0, rtol=0)


def test_convgru_matches_equations_by_hand():
    torch.manual_seed(3)
    cell = ConvGRUCell(1, kernel=3)
    m = torch.randn(1, 1, 5, 6)
    h = torch.randn(1, 1, 5, 6)
    with torch.no_grad():
        out = cell(m, h)[0, 0].numpy()

    def conv(layer, x):  # same-padding cross-correlation, as nn.Conv2d
        y = correlate2d(x, layer.weight[0, 0].detach().numpy(), mode="same", boundary="fill")
        return y + (layer.bias.item() if layer.bias is not None else 0.0)

    def sig(x):
        return 1 / (1 + np.exp(-x))

    mm, hh = m[0, 0].numpy(), h[0, 0].numpy()
    z = sig(conv(cell.W_z, mm) + conv(cell.U_z, hh))  # eq. (1)
    r = sig(conv(cell.W_r, mm) + conv(cell.U_r, hh))  # eq. (2)
    h_tilde = np.tanh(conv(cell.W, mm) + conv(cell.U, r * hh))  # eq. (3)
    expected = (1 - z) * hh + z * h_tilde  # eq. (4)
    np.testing.assert_allclose(out, expected, atol=1e-5)


def test_marker_sampling_reads_the_right_pixels():
    K, h, w = 3, 12, 10
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32),
                            indexing="ij")
    maps = torch.stack([1000.0 * k + 100.0 * ys + xs for k in range(K)])[None]  # (1, K, h, w): known pattern
    pts = torch.tensor([[[4.0, 5.0], [2.5, 7.25], [0.0, 0.0]]])  # (x, y) per marker
    win = sample_windows(maps, pts, radius=1)  # (1, K, 9), rows dy=-1..1, dx=-1..1
    for k in range(2):  # fully inside: the linear pattern is reproduced exactly (bilinear)
        x0, y0 = pts[0, k]
        expect = [1000 * k + 100 * (y0 + dy) + (x0 + dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
        np.testing.assert_allclose(win[0, k].numpy(), expect, atol=1e-3)
    # At the corner: samples outside the map read zeros.
    corner = win[0, 2].view(3, 3)
    assert corner[0].abs().max() < 1e-2 and corner[:, 0].abs().max() < 1e-2  # zero up to round-off
    assert corner[1, 1] == pytest.approx(2000.0) and corner[2, 2] == pytest.approx(2000 + 100 + 1)


def test_checkpoint_round_trip_and_refusals(body, tmp_path):
    torch.manual_seed(5)
    model = TAR(get_variant("tar-tiny"), body).eval()
    path = save_checkpoint(tmp_path / "tiny.pt", model, "untrained")
    payload = read_checkpoint(path)
    assert payload["provenance"]["trained_on"] == "untrained" and payload["config"]["name"] == "tar-tiny"
    assert not any(k.startswith("body.") for k in payload["state_dict"])
    loaded = load_checkpoint(path, body=body, variant="tar-tiny")
    images = torch.randn(1, 9, 3, 256, 256)
    torch.testing.assert_close(_outputs(loaded.model, images), _outputs(model, images))
    with pytest.raises(CheckpointError, match="not 'tar-hrnet48'"):
        load_checkpoint(path, body=body, variant="tar-hrnet48")
    # A config that no longer matches the weights.
    payload["config"]["lte_channels"] = 48
    torch.save(payload, tmp_path / "mismatch.pt")
    with pytest.raises(CheckpointError, match="do not match"):
        load_checkpoint(tmp_path / "mismatch.pt", body=body)
    payload["config"]["unknown_field"] = 1
    torch.save(payload, tmp_path / "badcfg.pt")
    with pytest.raises(CheckpointError, match="config"):
        load_checkpoint(tmp_path / "badcfg.pt", body=body)
    (tmp_path / "corrupt.pt").write_bytes(path.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(tmp_path / "corrupt.pt", body=body)
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt", body=body)
    torch.save({"weights": torch.zeros(3)}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="not a TAR checkpoint"):
        load_checkpoint(tmp_path / "foreign.pt", body=body)


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "tar_core", *args], capture_output=True, text=True, timeout=300)


def test_cli_init_checkpoint_and_info(tmp_path):
    res = _cli("init-checkpoint", "--variant", "tar-tiny", "-o", str(tmp_path / "t.pt"))
    assert res.returncode == 0, res.stderr
    assert read_checkpoint(tmp_path / "t.pt")["provenance"]["trained_on"] == "untrained"
    res = _cli("info", "--variant", "tar-tiny", "--json")
    assert res.returncode == 0, res.stderr
    import json

    info = json.loads(res.stdout)
    for key in ("params_total", "params_backbone", "gflops_backbone_per_frame", "gflops_head_per_output_frame"):
        assert info[key] > 0
    assert info["params_total"] > info["params_backbone"]
    assert _cli("info", "--variant", "nope").returncode == 2


def test_init_checkpoint_starts_from_backbone_weights(tmp_path):
    from tar_core.network.backbones import build_backbone

    torch.manual_seed(11)
    bb = build_backbone("tiny")
    torch.save({"state_dict": {f"module.{k}": v for k, v in bb.state_dict().items()}}, tmp_path / "bb.pth")
    res = _cli("init-checkpoint", "--variant", "tar-tiny", "--backbone-weights", str(tmp_path / "bb.pth"),
               "-o", str(tmp_path / "t.pt"))
    assert res.returncode == 0, res.stderr
    payload = read_checkpoint(tmp_path / "t.pt")
    for k, v in bb.state_dict().items():
        torch.testing.assert_close(payload["state_dict"][f"backbone.{k}"], v)
    assert payload["provenance"]["backbone_weights"].endswith("bb.pth")
    bad = _cli("init-checkpoint", "--variant", "tar-tiny", "--backbone-weights", str(tmp_path / "nope.pth"),
               "-o", str(tmp_path / "u.pt"))
    assert bad.returncode == 13 and "nope.pth" in bad.stderr
    assert not (tmp_path / "u.pt").exists()
