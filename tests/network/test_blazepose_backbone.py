"""TAR on the frozen BlazePose trunk: the backbone interface, nothing of the trunk trained or saved, the
variant and its ablations run, and ``info`` counts the trunk apart."""

import torch

from tar_core.body_model import load_body_model
from tar_core.geometry.cropping import normalize
from tar_core.network.backbones import build_backbone
from tar_core.network.checkpoints import load_checkpoint, save_checkpoint
from tar_core.network.config import VARIANTS, get_variant
from tar_core.network.tar import TAR, Geometry


def _crops(n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return normalize(torch.randint(0, 256, (n, 256, 256, 3), generator=g, dtype=torch.uint8).numpy())


def test_blazepose_backbone_is_frozen_and_gives_the_decoder_map_and_pooled_vector():
    bb = build_backbone("blazepose")
    assert bb.frozen and (bb.global_dim, bb.local_dim) == (1152, 48)
    assert list(bb.parameters()) == [] and bb.state_dict() == {}  # weights are buffers, never saved
    assert 3.0e6 < bb.num_weights < 3.3e6
    bb.train(True)
    assert not bb.trunk.training  # stays in eval mode
    g, m = bb(_crops(2))
    assert g.shape == (2, 1152) and m.shape == (2, 48, 64, 64) and not g.requires_grad
    assert torch.isfinite(g).all() and torch.isfinite(m).all()


def test_tar_blazepose_checkpoint_holds_the_heads_only(tmp_path):
    body = load_body_model()
    cfg = get_variant("tar-blazepose")
    torch.manual_seed(0)
    model = TAR(cfg, body).eval()
    path = save_checkpoint(tmp_path / "bp.pt", model)
    size_mb = path.stat().st_size / 2**20
    assert size_mb < 20, size_mb  # the 3.17 M trunk weights (6.4 MB as float16 in the wheel) are not in it
    state = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
    assert not any(k.startswith("backbone.") for k in state)
    loaded = load_checkpoint(path, body=body).model
    images = _crops(cfg.seq_len)[None]  # (1, T, 3, 256, 256)
    geom = Geometry(center=torch.tensor([[320.0, 240.0]]), size=torch.tensor([300.0]),
                    focal=torch.tensor([800.0]), principal=torch.tensor([[320.0, 240.0]]))
    with torch.no_grad():
        a, b = model(images, geom)[-1], loaded(images, geom)[-1]
    torch.testing.assert_close(a.rotmat, b.rotmat)
    torch.testing.assert_close(a.transl, b.transl)


def test_blazepose_variants_are_the_paper_and_its_ablations():
    names = [n for n in VARIANTS if n.startswith("tar-blazepose")]
    assert names == ["tar-blazepose", "tar-blazepose-no-rrm", "tar-blazepose-gte-only", "tar-blazepose-lte-only",
                     "tar-blazepose-kp-init"]
    cfgs = [get_variant(n) for n in names]
    assert all(c.backbone == "blazepose" for c in cfgs)
    assert (cfgs[0].use_gte, cfgs[0].use_lte, cfgs[0].use_rrm) == (True, True, True)
    assert not cfgs[1].use_rrm and not cfgs[2].use_lte and not cfgs[3].use_gte
    assert cfgs[4].rrm_init == "keypoints" and all(c.rrm_init == "regressor" for c in cfgs[:4])


def test_info_counts_the_frozen_trunk_apart(cli):
    import json

    res = cli("info", "--variant", "tar-blazepose", "--json")
    assert res.returncode == 0, res.stderr
    info = json.loads(res.stdout)
    assert info["backbone_frozen"] is True and info["params_backbone"] == 0
    assert 3.0e6 < info["frozen_trunk_weights"] < 3.3e6
    assert 0.3 < info["gflops_backbone_per_frame"] < 1.0  # 0.35 G multiply-adds without segmentation
    assert info["gflops_head_per_output_frame"] < 1.0  # a CPU runs the whole model at >= 15 frames/s
