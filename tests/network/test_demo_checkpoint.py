"""The committed demo checkpoint (tar-blazepose heads trained on the frozen BlazePose trunk's cached features,
stored in float16): small, heads only, strict to load, says it is synthetic, has a model card that matches it,
beats an untrained network on the sample clip and on a held-out clip rendered here with a seed range training
never used, and is what ``make demo ENGINE=tar`` runs. tests/network/test_half_checkpoint.py holds it to its
float32 original."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tar_core.evaluation.evaluate import MANNEQUIN_LSP14 as LSP14
from tar_core.evaluation.metrics import mpjpe, pa_mpjpe
from tar_core.motion_file import read_motion
from tar_core.network.checkpoints import (
    DEMO_CHECKPOINT,
    demo_checkpoint,
    file_sha256,
    load_checkpoint,
    read_checkpoint,
    save_checkpoint,
)

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "data" / "sample" / "sample_walk.mp4"
CARD = DEMO_CHECKPOINT.with_name("MODEL_CARD.md")
HELDOUT_SEED = 4242  # make-dataset clip seeds are seed * 100003 + i: far from the training (0) and held-out (1000) sets


def test_demo_checkpoint_is_small_heads_only_float16_and_synthetic():
    assert demo_checkpoint() == DEMO_CHECKPOINT
    assert sorted(p.name for p in DEMO_CHECKPOINT.parent.glob("*.pt")) == [DEMO_CHECKPOINT.name]  # the only one
    assert DEMO_CHECKPOINT.stat().st_size <= 6 * 2**20
    payload = read_checkpoint(DEMO_CHECKPOINT)
    assert "optimizer" not in payload  # inference weights only
    assert not any(k.startswith("backbone.") for k in payload["state_dict"])  # the trunk is read from mediapipe
    assert payload["weights_dtype"] == "float16"
    ck = load_checkpoint(DEMO_CHECKPOINT)
    # The ablation that won (docs/training.md): the RRM refines the keypoints engine's fit.
    assert ck.config.name == "tar-blazepose-kp-init" and ck.config.rrm_init == "keypoints"
    assert ck.body_model == "mannequin"
    assert all(t.dtype == torch.float32 for t in ck.model.learned_state_dict().values() if t.is_floating_point())
    prov = ck.provenance
    assert prov["data"] == "synthetic" and prov["steps"] > 0 and prov["trained_on"]


def test_model_card_describes_this_file():
    card = CARD.read_text()
    assert card.startswith(f"# Model card: `{DEMO_CHECKPOINT.name}`")
    prov = read_checkpoint(DEMO_CHECKPOINT)["provenance"]
    assert file_sha256(DEMO_CHECKPOINT) in card  # the card was written for these exact weights
    assert re.search(rf"\b{prov['steps']}\b", card)
    for needle in ("MPJPE", "PA-MPJPE", "PVE", "ACCEL", "wall", "synthetic", "held-out", "keypoints engine",
                   "float16"):
        assert needle in card, needle


def _capture(tmp_path, name, *extra):
    out = tmp_path / name
    res = subprocess.run([sys.executable, "-m", "tar_core", "capture", str(SAMPLE), "-o", str(out), "--engine", "tar",
                          *map(str, extra)], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    return read_motion(out / "person_0.npz"), json.loads((out / "summary.json").read_text())


@pytest.mark.slow
def test_trained_beats_untrained_on_the_sample_clip(tmp_path):
    gt = read_motion(SAMPLE.with_suffix(".npz"))
    untrained = tmp_path / "untrained.pt"
    subprocess.run([sys.executable, "-m", "tar_core", "init-checkpoint", "--variant", "tar-blazepose", "-o",
                    str(untrained)], check=True, capture_output=True)
    trained, summary = _capture(tmp_path, "trained")
    assert summary["checkpoint"]["builtin_demo"] is True
    base, _ = _capture(tmp_path, "untrained", "--checkpoint", untrained)
    g = gt.joints_cam[:, LSP14]
    err = {k: (mpjpe(m.joints_cam[:, LSP14], g).mean(), pa_mpjpe(m.joints_cam[:, LSP14], g).mean())
           for k, m in (("trained", trained), ("untrained", base))}
    assert err["trained"][0] < 0.8 * err["untrained"][0], err
    assert err["trained"][1] < 0.8 * err["untrained"][1], err
    # The rig overlays the footage: joints projected through the full-image camera land near the truth.
    e2d = {k: float(np.linalg.norm(m.joints_2d[:, LSP14] - gt.joints_2d[:, LSP14], axis=-1).mean())
           for k, m in (("trained", trained), ("untrained", base))}
    assert e2d["trained"] < 0.3 * e2d["untrained"], e2d


@pytest.mark.slow
def test_trained_beats_untrained_on_a_held_out_clip(tmp_path):
    from tar_core.evaluation.evaluate import evaluate
    from tar_core.network.config import get_variant
    from tar_core.network.tar import TAR
    from tar_core.synthetic.dataset import make_dataset

    data = tmp_path / "heldout"
    make_dataset(data, clips=1, frames=12, size=256, seed=HELDOUT_SEED, samples=2, threads=1)
    torch.manual_seed(0)
    ck = load_checkpoint(DEMO_CHECKPOINT)
    untrained = save_checkpoint(tmp_path / "untrained.pt", TAR(get_variant("tar-blazepose"), ck.model.body))
    trained = evaluate(DEMO_CHECKPOINT, [data], body=ck.model.body)
    base = evaluate(untrained, [data], body=ck.model.body)
    assert trained["frames"] == base["frames"] == 12
    assert trained["mpjpe"] < 0.5 * base["mpjpe"], (trained, base)
    assert trained["pa_mpjpe"] < 0.8 * base["pa_mpjpe"], (trained, base)
    assert trained["pve"] < 0.5 * base["pve"], (trained, base)
    # And the refinement improves on where it starts, the keypoints engine's fit of the same crops.
    start = trained["keypoints_start"]
    assert trained["mpjpe"] < start["mpjpe"] and trained["pve"] < start["pve"], (trained, start)


@pytest.mark.slow
def test_make_demo_with_the_tar_engine_runs_the_demo_checkpoint(tmp_path):
    out = tmp_path / "demo.blend"
    res = subprocess.run([sys.executable, str(ROOT / "scripts" / "batch.py"), "--", str(SAMPLE), "--engine", "tar",
                          "--out", str(out), "--motion-dir", str(tmp_path / "motion")],
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    assert out.is_file()
    summary = json.loads((tmp_path / "motion" / "summary.json").read_text())
    assert summary["engine"] == "tar" and summary["checkpoint"]["builtin_demo"] is True
    assert read_motion(tmp_path / "motion" / "person_0.npz").num_frames == 72
