"""The committed tar-blazepose checkpoint (heads trained on the frozen BlazePose trunk's cached features): small,
heads only, strict to load, says it is synthetic, described by the model card, and far better than an untrained
network on a held-out clip rendered here with a seed range training never used."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from tar_core.network.checkpoints import file_sha256, load_checkpoint, read_checkpoint, save_checkpoint

ROOT = Path(__file__).resolve().parents[2]
CHECKPOINT = ROOT / "tar_core" / "weights" / "tar-blazepose-synthetic.pt"
CARD = CHECKPOINT.with_name("MODEL_CARD.md")
HELDOUT_SEED = 4242  # make-dataset clip seeds are seed * 100003 + i: far from the training (0) and held-out (1000) sets


def test_blazepose_checkpoint_is_small_heads_only_and_synthetic():
    assert CHECKPOINT.stat().st_size <= 16 * 2**20
    payload = read_checkpoint(CHECKPOINT)
    assert "optimizer" not in payload
    assert not any(k.startswith("backbone.") for k in payload["state_dict"])  # the trunk is read from mediapipe
    ck = load_checkpoint(CHECKPOINT)
    assert ck.config.name == "tar-blazepose" and ck.body_model == "mannequin"
    assert ck.provenance["data"] == "synthetic" and ck.provenance["steps"] > 0


def test_model_card_has_a_section_for_it():
    card = CARD.read_text()
    section = card[card.index("## Model card: `tar-blazepose-synthetic.pt`"):]
    assert file_sha256(CHECKPOINT) in section
    assert re.search(rf"\b{read_checkpoint(CHECKPOINT)['provenance']['steps']}\b", section)
    for needle in ("MPJPE", "PA-MPJPE", "PVE", "ACCEL", "wall", "synthetic", "held-out", "keypoints engine"):
        assert needle in section, needle


@pytest.mark.slow
def test_trained_beats_untrained_on_a_held_out_clip(tmp_path):
    from tar_core.evaluation.evaluate import evaluate
    from tar_core.network.config import get_variant
    from tar_core.network.tar import TAR
    from tar_core.synthetic.dataset import make_dataset

    data = tmp_path / "heldout"
    make_dataset(data, clips=1, frames=12, size=256, seed=HELDOUT_SEED, samples=2, threads=1)
    torch.manual_seed(0)
    ck = load_checkpoint(CHECKPOINT)
    untrained = save_checkpoint(tmp_path / "untrained.pt", TAR(get_variant("tar-blazepose"), ck.model.body))
    trained = evaluate(CHECKPOINT, [data], body=ck.model.body)
    base = evaluate(untrained, [data], body=ck.model.body)
    assert trained["frames"] == base["frames"] == 12
    assert trained["mpjpe"] < 0.5 * base["mpjpe"], (trained, base)
    assert trained["pa_mpjpe"] < 0.8 * base["pa_mpjpe"], (trained, base)
    assert trained["pve"] < 0.5 * base["pve"], (trained, base)
