"""Tests for tar_core.network.backbones: output shapes, parameter counts and checkpoint loading by name.

The public checkpoints' key sets are rebuilt here, independently of the module, from the published
layouts: torchvision's ResNet-50 ([3, 4, 6, 3] bottlenecks, projection on block 0, ``fc`` head) and
the official pose_hrnet (deep-high-resolution-net.pytorch, COCO 256x192 configs: stages of 1/4/3
modules, 4 BASIC blocks per branch, widths W, 2W, 4W, 8W, the last module fusing into branch 0
only, ``final_layer`` head). Random tensors of those shapes are saved and loaded back.

The heavy backbones run on 128x128 inputs to keep the file fast on CPU; the local map is always
1/4 of the input (64x64 for TAR's 256x256 crops, checked on the tiny backbone).
"""

from __future__ import annotations

import pytest
import torch

from tar_core.errors import CheckpointError
from tar_core.network.backbones import BACKBONE_NAMES, Backbone, build_backbone, load_backbone_weights

# name -> (global_dim, local_dim, documented trunk parameters without the checkpoint's own head)
DIMS = {"resnet50": (2048, 256), "hrnet48": (384, 720), "hrnet32": (256, 480), "tiny": (128, 64),
        "blazepose": (1152, 48)}
# torchvision: resnet50 has 25,557,032 parameters, fc 2048*1000 + 1000 of them;
# HRNet paper / official model zoo: pose_hrnet_w48 63.6M, pose_hrnet_w32 28.5M (17-joint head negligible).
DOCUMENTED_TRUNK = {"resnet50": 25_557_032 - 2_049_000, "hrnet48": 63.6e6, "hrnet32": 28.5e6}
BN_ENTRIES = ("weight", "bias", "running_mean", "running_var")

_MODELS: dict[str, Backbone] = {}


def model(name: str) -> Backbone:
    """One instance per backbone for the whole file (building HRNet-W48 takes a couple of seconds)."""
    if name not in _MODELS:
        torch.manual_seed(0)
        _MODELS[name] = build_backbone(name).eval()
    return _MODELS[name]


# --------------------------------------------------------------------------------------------- reference layouts
def _conv(entries: dict, name: str, cout: int, cin: int, k: int) -> None:
    entries[f"{name}.weight"] = (cout, cin, k, k)


def _bn(entries: dict, name: str, c: int) -> None:
    for s in BN_ENTRIES:
        entries[f"{name}.{s}"] = (c,)
    entries[f"{name}.num_batches_tracked"] = ()


def _bottleneck(entries: dict, p: str, inplanes: int, planes: int, projection: bool) -> None:
    _conv(entries, f"{p}.conv1", planes, inplanes, 1)
    _bn(entries, f"{p}.bn1", planes)
    _conv(entries, f"{p}.conv2", planes, planes, 3)
    _bn(entries, f"{p}.bn2", planes)
    _conv(entries, f"{p}.conv3", planes * 4, planes, 1)
    _bn(entries, f"{p}.bn3", planes * 4)
    if projection:
        _conv(entries, f"{p}.downsample.0", planes * 4, inplanes, 1)
        _bn(entries, f"{p}.downsample.1", planes * 4)


def torchvision_resnet50_layout() -> dict[str, tuple[int, ...]]:
    """Every state-dict entry of torchvision's resnet50, with its shape."""
    e: dict[str, tuple[int, ...]] = {}
    _conv(e, "conv1", 64, 3, 7)
    _bn(e, "bn1", 64)
    inplanes = 64
    for layer, (planes, blocks) in enumerate(zip((64, 128, 256, 512), (3, 4, 6, 3), strict=True), start=1):
        for b in range(blocks):
            _bottleneck(e, f"layer{layer}.{b}", inplanes, planes, projection=b == 0)
            inplanes = planes * 4
    e["fc.weight"] = (1000, 2048)
    e["fc.bias"] = (1000,)
    return e


def official_pose_hrnet_layout(width: int, joints: int = 17) -> dict[str, tuple[int, ...]]:
    """Every state-dict entry of the official pose_hrnet_w{width} (COCO config), with its shape."""
    e: dict[str, tuple[int, ...]] = {}
    w = [width, 2 * width, 4 * width, 8 * width]
    _conv(e, "conv1", 64, 3, 3)
    _bn(e, "bn1", 64)
    _conv(e, "conv2", 64, 64, 3)
    _bn(e, "bn2", 64)
    for b in range(4):
        _bottleneck(e, f"layer1.{b}", 64 if b == 0 else 256, 64, projection=b == 0)
    # transition1 adapts the 256-channel stream to branch 0 and spawns branch 1; later ones only spawn.
    _conv(e, "transition1.0.0", w[0], 256, 3)
    _bn(e, "transition1.0.1", w[0])
    _conv(e, "transition1.1.0.0", w[1], 256, 3)
    _bn(e, "transition1.1.0.1", w[1])
    for t in (2, 3):
        _conv(e, f"transition{t}.{t}.0.0", w[t], w[t - 1], 3)
        _bn(e, f"transition{t}.{t}.0.1", w[t])
    for stage, (branches, modules) in {2: (2, 1), 3: (3, 4), 4: (4, 3)}.items():
        for m in range(modules):
            p = f"stage{stage}.{m}"
            for b in range(branches):
                for k in range(4):
                    for c in (1, 2):
                        _conv(e, f"{p}.branches.{b}.{k}.conv{c}", w[b], w[b], 3)
                        _bn(e, f"{p}.branches.{b}.{k}.bn{c}", w[b])
            outputs = 1 if (stage == 4 and m == modules - 1) else branches
            for i in range(outputs):
                for j in range(branches):
                    if j > i:
                        _conv(e, f"{p}.fuse_layers.{i}.{j}.0", w[i], w[j], 1)
                        _bn(e, f"{p}.fuse_layers.{i}.{j}.1", w[i])
                    for k in range(i - j):
                        cout = w[i] if k == i - j - 1 else w[j]
                        _conv(e, f"{p}.fuse_layers.{i}.{j}.{k}.0", cout, w[j], 3)
                        _bn(e, f"{p}.fuse_layers.{i}.{j}.{k}.1", cout)
    e["final_layer.weight"] = (joints, width, 1, 1)
    e["final_layer.bias"] = (joints,)
    return e


def random_state_dict(layout: dict[str, tuple[int, ...]], seed: int = 1) -> dict[str, torch.Tensor]:
    """Distinct random values of the right shapes (positive variances, small weights: the model still runs)."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for k, shape in layout.items():
        if k.endswith("num_batches_tracked"):
            out[k] = torch.tensor(7)
        elif k.endswith("running_var"):
            out[k] = torch.rand(shape, generator=g) + 0.5
        else:
            out[k] = 0.05 * torch.randn(shape, generator=g)
    return out


def counters_dropped(names) -> set[str]:
    return {k for k in names if not k.endswith("num_batches_tracked")}


def assert_loaded(bb: Backbone, saved: dict[str, torch.Tensor], heads: tuple[str, ...]) -> None:
    own = bb.state_dict()
    for k, v in saved.items():
        if not k.startswith(heads):
            assert torch.equal(own[k], v), k


# --------------------------------------------------------------------------------------------- shapes
def test_registry_names():
    assert set(BACKBONE_NAMES) == set(DIMS)
    with pytest.raises(ValueError, match="resnet50"):
        build_backbone("vit")


def test_tiny_gives_64x64_map_for_256_crops():
    bb = model("tiny")
    with torch.no_grad():
        g, f = bb(torch.randn(2, 3, 256, 256))
    assert (bb.global_dim, bb.local_dim) == DIMS["tiny"]
    assert g.shape == (2, 128) and f.shape == (2, 64, 64, 64)


@pytest.mark.parametrize("name", ["resnet50", "hrnet32", "hrnet48"])
def test_heavy_shapes_quarter_resolution(name):
    bb = model(name)
    assert bb.name == name
    assert (bb.global_dim, bb.local_dim) == DIMS[name]
    with torch.no_grad():
        g, f = bb(torch.randn(1, 3, 128, 128))
    assert g.shape == (1, bb.global_dim)
    assert f.shape == (1, bb.local_dim, 32, 32)  # 1/4 of the input: 64x64 for 256x256 crops
    assert torch.isfinite(g).all() and torch.isfinite(f).all()


def test_input_checks():
    bb = model("tiny")
    with pytest.raises(ValueError, match="multiples of 32"):
        bb(torch.randn(1, 3, 250, 256))
    with pytest.raises(ValueError, match="B, 3, H, W"):
        bb(torch.randn(1, 1, 256, 256))


@pytest.mark.parametrize("name", ["resnet50", "hrnet48", "hrnet32"])
def test_trunk_parameter_counts(name):
    bb = model(name)
    trunk = sum(p.numel() for k, p in bb.named_parameters() if not bb.is_new_key(k))
    total = sum(p.numel() for p in bb.parameters())
    print(f"{name}: trunk {trunk:,} parameters, {total:,} with the new layers")
    assert trunk == pytest.approx(DOCUMENTED_TRUNK[name], rel=0.02)


def test_tiny_is_small_and_cheap():
    # Size and FLOPs, not wall time: speed is measured by scripts/bench_capture.py / bench_train.py.
    from torch.utils.flop_counter import FlopCounterMode

    bb = model("tiny")
    n = sum(p.numel() for p in bb.parameters())
    assert n < 500_000, n
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        bb(torch.randn(1, 3, 256, 256))
    gflops = counter.get_total_flops() / 1e9
    assert 0.05 < gflops < 0.5, gflops  # per frame; the paper's HRNet-W48 trunk needs ~60


def test_gradients_reach_every_tiny_parameter():
    torch.manual_seed(0)
    bb = build_backbone("tiny").train()
    g, f = bb(torch.randn(2, 3, 64, 64))
    (g.square().sum() + f.square().mean()).backward()
    for k, p in bb.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, k


# --------------------------------------------------------------------------------------------- official names
def test_resnet50_names_are_torchvision():
    bb = model("resnet50")
    layout = torchvision_resnet50_layout()
    trunk = {k: tuple(v.shape) for k, v in bb.state_dict().items() if not k.startswith("deconv.")}
    assert trunk == {k: s for k, s in layout.items() if not k.startswith("fc.")}


@pytest.mark.parametrize("name,width", [("hrnet48", 48), ("hrnet32", 32)])
def test_hrnet_names_are_official(name, width):
    bb = model(name)
    own = {k: tuple(v.shape) for k, v in bb.state_dict().items()}
    official = {k: s for k, s in official_pose_hrnet_layout(width).items() if not k.startswith("final_layer.")}
    assert {k: own.get(k) for k in official} == official
    # Anything beyond the official trunk is a new layer: ReFit-style heads and stage 4's extra fusions.
    extra = set(own) - set(official)
    assert extra == {k for k in own if bb.is_new_key(k)}
    assert all(k.startswith(("upsample.", "global_path.", "stage4.2.fuse_layers.")) for k in extra)
    assert "stage4.2.fuse_layers.3.0.2.0.weight" in extra and "stage4.2.fuse_layers.0.3.0.weight" in official


def test_hrnet48_known_official_names():
    own = model("hrnet48").state_dict()
    for k in (
        "conv1.weight",
        "bn2.running_mean",
        "layer1.3.conv3.weight",
        "layer1.0.downsample.0.weight",
        "transition1.0.0.weight",
        "transition1.1.0.0.weight",
        "transition2.2.0.0.weight",
        "transition3.3.0.1.running_var",
        "stage2.0.branches.1.3.conv2.weight",
        "stage2.0.fuse_layers.0.1.0.weight",
        "stage2.0.fuse_layers.1.0.0.0.weight",
        "stage3.3.fuse_layers.2.0.1.0.weight",
        "stage4.2.branches.3.3.bn2.running_var",
        "stage4.2.fuse_layers.0.3.1.weight",
    ):
        assert k in own, k
    assert own["stage2.0.fuse_layers.0.1.0.weight"].shape == (48, 96, 1, 1)
    assert own["stage3.3.fuse_layers.2.0.1.0.weight"].shape == (192, 48, 3, 3)


# --------------------------------------------------------------------------------------------- loading
def test_torchvision_resnet50_checkpoint_loads(tmp_path):
    bb = build_backbone("resnet50")
    layout = torchvision_resnet50_layout()
    saved = random_state_dict(layout)
    path = tmp_path / "resnet50.pth"
    torch.save(saved, path)

    not_loaded = load_backbone_weights(bb, path)
    assert_loaded(bb, saved, heads=("fc.",))
    assert set(not_loaded) == counters_dropped(k for k in bb.state_dict() if k.startswith("deconv."))
    assert len(not_loaded) == len(set(not_loaded)) > 0

    # One trunk entry gone (the head alone may be absent): refused, named.
    del saved["layer3.5.bn2.running_var"], saved["fc.weight"], saved["fc.bias"]
    torch.save(saved, path)
    with pytest.raises(ValueError, match=r"layer3\.5\.bn2\.running_var"):
        load_backbone_weights(bb, path)


def test_official_hrnet_checkpoint_loads_with_module_prefix(tmp_path):
    bb = build_backbone("hrnet32")
    layout = official_pose_hrnet_layout(32)
    saved = random_state_dict(layout)
    path = tmp_path / "pose_hrnet_w32_256x192.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in saved.items()}, "epoch": 210}, path)

    not_loaded = load_backbone_weights(bb, path)
    assert_loaded(bb, saved, heads=("final_layer.",))
    assert set(not_loaded) == counters_dropped(set(bb.state_dict()) - set(layout))
    assert "final_layer.weight" not in bb.state_dict()
    with torch.no_grad():  # the loaded model still runs
        g, f = bb.eval()(torch.randn(1, 3, 64, 64))
    assert g.shape == (1, 256) and f.shape == (1, 480, 16, 16)
    assert torch.isfinite(g).all() and torch.isfinite(f).all()


def test_tiny_round_trip_nested_and_prefixed(tmp_path):
    src = build_backbone("tiny")
    for p in src.parameters():
        torch.nn.init.normal_(p)
    path = tmp_path / "tiny.pt"
    torch.save({"model": {f"backbone.{k}": v for k, v in src.state_dict().items()}}, path)
    dst = build_backbone("tiny")
    assert load_backbone_weights(dst, path) == []
    for k, v in src.state_dict().items():
        assert torch.equal(dst.state_dict()[k], v), k


def test_wrong_shape_and_missing_key_are_refused(tmp_path):
    bb = build_backbone("tiny")
    good = bb.state_dict()
    path = tmp_path / "bad.pt"

    wrong = dict(good, **{"down.1.0.weight": torch.zeros(128, 64, 1, 1)})
    torch.save(wrong, path)
    with pytest.raises(ValueError, match=r"down\.1\.0\.weight.*\(128, 64, 1, 1\)"):
        load_backbone_weights(bb, path)

    missing = {k: v for k, v in good.items() if k != "stem.2.1.running_mean"}
    torch.save(missing, path)
    with pytest.raises(ValueError, match=r"missing: stem\.2\.1\.running_mean"):
        load_backbone_weights(bb, path)
    # Not strict: everything else loads, the gap is reported.
    assert load_backbone_weights(bb, path, strict=False) == ["stem.2.1.running_mean"]


def test_missing_file(tmp_path):
    path = tmp_path / "nowhere" / "resnet50.pth"
    with pytest.raises(CheckpointError, match="nowhere"):
        load_backbone_weights(model("tiny"), path)


def test_corrupt_files_are_refused(tmp_path):
    bb = model("tiny")
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint" * 10)
    truncated = tmp_path / "truncated.pth"
    torch.save(bb.state_dict(), truncated)
    truncated.write_bytes(truncated.read_bytes()[:500])
    tensor_only = tmp_path / "tensor.pth"
    torch.save(torch.zeros(3), tensor_only)
    empty = tmp_path / "empty.pth"
    torch.save({}, empty)
    for path in (garbage, truncated, tensor_only, empty):
        with pytest.raises(ValueError, match=path.name):
            load_backbone_weights(bb, path)
