"""Tests for tar_core.network.blazepose: the torch port of BlazePose GHUM 3D (full) from the mediapipe wheel.

References (tests/data/blazepose/reference.npz, scripts/make_trunk_reference.py) were computed by the TFLite
interpreter (LiteRT 2.3.0, XNNPACK) on two crops of the sample clip; the port must reproduce them to
float32 rounding: landmarks within 2e-3 px (measured 3.7e-4), world landmarks within 1e-4 m (4e-5),
maps within 1e-4 of their largest value (decoder 1.2e-5, heatmaps 2e-6 of it). A port with a wrong
padding, resize rule or weight layout is off by pixels, not thousandths.
"""

from __future__ import annotations

import copy
import hashlib
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tar_core.errors import CheckpointError
from tar_core.geometry.cropping import normalize
from tar_core.network.blazepose import (
    TRUNK_FILE,
    TRUNK_SHA256,
    BlazePoseTrunk,
    TFLiteGraph,
    find_trunk_file,
    read_trunk_file,
)
from tar_core.network.tflite_reader import TFLiteFormatError, read_tflite

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = ROOT / "tests" / "data" / "blazepose" / "reference.npz"
SUB = (slice(None), slice(None), slice(1, None, 4), slice(1, None, 4))  # the stored pixels of a 64x64 map


@pytest.fixture(scope="module")
def reference() -> dict[str, np.ndarray]:
    with np.load(REFERENCE) as data:
        return {k: data[k] for k in data.files}


@pytest.fixture(scope="module")
def trunk() -> BlazePoseTrunk:
    return BlazePoseTrunk(with_heatmaps=True, with_landmarks=True)


@pytest.fixture(scope="module")
def outputs(trunk, reference) -> dict[str, torch.Tensor]:
    crops = reference["crops"].repeat(2, axis=1).repeat(2, axis=2)  # (2, 256, 256, 3) uint8, as the script
    return trunk.extract(normalize(crops))  # through the project's normalisation


def _nhwc(t: torch.Tensor) -> np.ndarray:
    return t[SUB].permute(0, 2, 3, 1).numpy()  # (B, 16, 16, C), as stored


# --------------------------------------------------------------------------------------------- the file
def test_reference_was_made_from_this_trunk(reference):
    assert str(reference["sha256"]) == TRUNK_SHA256
    assert reference["crops"].shape == (2, 128, 128, 3) and reference["crops"].dtype == np.uint8
    assert REFERENCE.stat().st_size < 400_000  # small arrays, no weights


def test_trunk_file_is_found_in_mediapipe_without_importing_it():
    code = (
        "import sys; from tar_core.network.blazepose import find_trunk_file; p = find_trunk_file(); "
        "print(p); assert 'mediapipe' not in sys.modules, 'mediapipe was imported'"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                            env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    path = Path(result.stdout.strip())
    assert path.as_posix().endswith("mediapipe/" + TRUNK_FILE) and path == find_trunk_file()
    assert hashlib.sha256(path.read_bytes()).hexdigest() == TRUNK_SHA256


def test_wrong_hash_trunk_is_refused(tmp_path):
    data = bytearray(find_trunk_file().read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte somewhere in the weights
    bad = tmp_path / "pose_landmark_full.tflite"
    bad.write_bytes(bytes(data))
    with pytest.raises(CheckpointError) as info:
        BlazePoseTrunk(path=bad)
    message = str(info.value)
    assert str(bad) in message and TRUNK_SHA256 in message
    assert hashlib.sha256(bytes(data)).hexdigest() in message
    assert info.value.exit_code == 13
    # The genuine file against another expected hash is refused the same way.
    with pytest.raises(CheckpointError, match="not the expected one"):
        read_trunk_file(find_trunk_file(), sha256="0" * 64)


def test_missing_or_garbage_trunk_file_is_a_trunk_error(tmp_path):
    with pytest.raises(CheckpointError, match="cannot read"):
        BlazePoseTrunk(path=tmp_path / "absent.tflite")
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"\x00" * 64)
    with pytest.raises(CheckpointError, match="cannot parse"):
        BlazePoseTrunk(path=junk, sha256=None)
    with pytest.raises(TFLiteFormatError):
        read_tflite(b"\x00" * 64)


# --------------------------------------------------------------------------------------------- the graph
def test_graph_is_read_from_the_op_list_and_the_segmentation_branch_pruned(trunk):
    model = read_tflite(read_trunk_file())
    kinds = [op.kind for op in model.ops]
    assert len(kinds) == 332 and kinds.count("DEQUANTIZE") == 192
    assert kinds.count("CONV_2D") + kinds.count("DEPTHWISE_CONV_2D") == 96
    assert model.tensors[model.inputs[0]].shape == (1, 256, 256, 3)
    assert {model.tensors[i].name for i in model.outputs} == {f"Identity{s}" for s in ("", "_1", "_2", "_3", "_4")}

    steps = trunk.graph.step_kinds()
    # Every convolution but the segmentation branch's 13 (it runs at 128 and 256 px); PADs folded into convs.
    assert steps["CONV_2D"] + steps["DEPTHWISE_CONV_2D"] == 96 - 13
    assert "PAD" not in steps and "DEQUANTIZE" not in steps
    # 3.17 M weights in the whole file; the pruned segmentation branch holds a few thousand of them.
    assert 3.10e6 < trunk.num_weights < 3.17e6
    seg_only = TFLiteGraph(model, ["Identity_2"]).num_weights
    full = TFLiteGraph(model, [f"Identity{s}" for s in ("", "_1", "_2", "_3", "_4")]).num_weights
    assert 3.16e6 < full < 3.18e6 and full < trunk.num_weights + seg_only


# --------------------------------------------------------------------------------------------- accuracy
def test_landmarks_match_the_interpreter(outputs, reference):
    lm = outputs["landmarks"].numpy()  # (2, 39, 5)
    ref = reference["landmarks"].reshape(2, 39, 5)
    assert np.abs(lm[..., :3] - ref[..., :3]).max() < 2e-3  # x, y, z in crop pixels
    assert np.abs(lm[..., 3:] - ref[..., 3:]).max() < 1e-3  # visibility / presence logits
    world = outputs["world"].numpy().reshape(2, -1)
    assert np.abs(world - reference["world"]).max() < 1e-4  # metres
    assert np.abs(outputs["pose_flag"].numpy() - reference["pose_flag"][:, 0]).max() < 1e-5
    # The references are sensible: a person is found and the body landmarks lie inside the crop.
    assert (reference["pose_flag"] > 0.9).all()
    assert (ref[:, :33, :2] > 0).all() and (ref[:, :33, :2] < 256).all()


def test_maps_and_global_vector_match_the_interpreter(outputs, reference):
    for key, ref_key in (("decoder", "decoder_sub"), ("heatmaps", "heatmaps_sub")):
        ref = reference[ref_key]
        err = np.abs(_nhwc(outputs[key]) - ref)
        assert err.max() < 1e-4 * np.abs(ref).max(), key
        assert err.mean() < 1e-6 * np.abs(ref).max() * 10, key
    g = outputs["global"].numpy()
    assert np.abs(g - reference["global"]).max() < 1e-4


def test_nchw_and_channels_last_agree(reference):
    crops = normalize(reference["crops"][:1].repeat(2, axis=1).repeat(2, axis=2))
    a = BlazePoseTrunk(channels_last=True)(crops)
    b = BlazePoseTrunk(channels_last=False)(crops)
    for x, y in zip(a, b, strict=True):
        assert torch.allclose(x, y, atol=1e-3 * float(y.abs().max()), rtol=0)


# --------------------------------------------------------------------------------------------- module
def test_trunk_is_frozen_and_not_saved(trunk, reference):
    assert list(trunk.parameters()) == []
    assert trunk.state_dict() == {}  # weights are never part of a checkpoint
    assert all(not b.requires_grad for b in trunk.buffers())
    trunk.train()
    assert not trunk.training and not any(m.training for m in trunk.modules())
    images = normalize(reference["crops"][:1].repeat(2, axis=1).repeat(2, axis=2)).requires_grad_(True)
    global_vec, local_map = trunk(images)
    assert not global_vec.requires_grad and not local_map.requires_grad
    assert images.grad is None and images.requires_grad  # the caller's tensor is left alone


def test_shapes_and_options():
    images = torch.randn(3, 3, 256, 256)  # (B, 3, H, W), ImageNet-normalised
    plain = BlazePoseTrunk()
    g, m = plain(images)
    assert (plain.global_dim, plain.local_dim) == (1152, 48)
    assert g.shape == (3, 1152) and m.shape == (3, 48, 64, 64)
    assert g.dtype == m.dtype == torch.float32 and torch.isfinite(g).all() and torch.isfinite(m).all()
    out = plain.extract(images)
    assert out["landmarks"].shape == (3, 39, 5) and out["world"].shape == (3, 39, 3)
    assert out["pose_flag"].shape == (3,) and "heatmaps" not in out

    rich = BlazePoseTrunk(with_heatmaps=True, with_landmarks=True)
    g2, m2 = rich(images)
    assert (rich.global_dim, rich.local_dim) == (1152 + 39 * 8, 48 + 39)
    assert g2.shape == (3, rich.global_dim) and m2.shape == (3, rich.local_dim, 64, 64)
    assert torch.allclose(g2[:, :1152], g, atol=1e-5) and torch.allclose(m2[:, :48], m, atol=1e-4)

    empty_g, empty_m = plain(torch.zeros(0, 3, 256, 256))
    assert empty_g.shape == (0, 1152) and empty_m.shape == (0, 48, 64, 64)
    for bad in (torch.zeros(1, 3, 224, 224), torch.zeros(1, 1, 256, 256), torch.zeros(3, 256, 256)):
        with pytest.raises(ValueError):
            plain(bad)


def test_crop_conversion_is_the_inverse_of_the_project_normalisation():
    crops = np.random.default_rng(0).integers(0, 256, (2, 256, 256, 3), dtype=np.uint8)
    x = BlazePoseTrunk.to_trunk_input(BlazePoseTrunk(), normalize(crops))  # (2, 3, 256, 256) in [0, 1]
    expected = torch.from_numpy(crops).permute(0, 3, 1, 2).float() / 255.0
    assert torch.allclose(x, expected, atol=1e-6)


def test_chunked_batch_equals_one_pass():
    images = torch.randn(5, 3, 256, 256).clamp_(-2, 2)  # (B, 3, H, W)
    whole = BlazePoseTrunk(chunk_size=8)(images)
    chunked = BlazePoseTrunk(chunk_size=2)(images)  # chunks of 2, 2, 1
    for x, y in zip(whole, chunked, strict=True):
        assert x.shape == y.shape and torch.allclose(x, y, atol=1e-3 * float(y.abs().max()), rtol=0)
    with pytest.raises(ValueError):
        BlazePoseTrunk(chunk_size=0)


def test_a_copy_runs_on_its_own_weights():
    images = torch.randn(1, 3, 256, 256).clamp_(-2, 2)  # (B, 3, H, W)
    original = BlazePoseTrunk()
    expected = original(images)
    clone = copy.deepcopy(original)
    for b in clone.graph.buffers():
        b.zero_()  # the clone must compute with its own (now zero) weights, the original with its own
    assert all(torch.equal(x, y) for x, y in zip(original(images), expected, strict=True))
    assert not torch.equal(clone(images)[1], expected[1])
    revived = pickle.loads(pickle.dumps(original))  # e.g. a model handed to worker processes
    assert all(torch.equal(x, y) for x, y in zip(revived(images), expected, strict=True))
