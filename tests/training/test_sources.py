"""``train --data``: synthetic folders, preprocessed real files and JSON lists, mixed by weight."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch

from tar_core.network.checkpoints import read_checkpoint
from tar_core.synthetic.dataset import clip_path
from tar_core.training.sources import Source, build_dataset, parse_sources, source_weights, weighted_sampler
from tar_core.training.train import TrainOptions, train

N_REAL = 5


def _synthetic_dir(root, frames=4):
    """A clip file in the make-dataset layout, written directly (no render needed for the mixing logic)."""
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    joints = rng.normal(0, 0.3, (frames, 24, 3)).astype(np.float32) + np.array([0, 0, 4], np.float32)
    K = np.array([[300, 0, 127.5], [0, 300, 127.5], [0, 0, 1]], np.float32)
    uv = joints[..., :2] / joints[..., 2:] * 300 + 127.5
    np.savez_compressed(clip_path(root, 0), crops=rng.integers(0, 255, (frames, 256, 256, 3), dtype=np.uint8),
                        center=np.full((frames, 2), 127.5, np.float32), box_size=np.full(frames, 200.0, np.float32),
                        K=K, image_size=np.array([256, 256], np.int32),
                        poses=rng.normal(0, 0.2, (frames, 72)).astype(np.float32),
                        trans=np.tile([0, 0, 4], (frames, 1)).astype(np.float32),
                        betas=np.zeros(10, np.float32), joints_cam=joints, joints_2d=uv.astype(np.float32),
                        motion=np.array("walk"), seed=np.array(0))
    return root


def _real_file(root):
    """A preprocessed file (image dataset, SMPL joint order) with its image folder."""
    rng = np.random.default_rng(1)
    (root / "images").mkdir(parents=True, exist_ok=True)
    names = []
    for i in range(N_REAL):
        img = np.full((120, 160, 3), 40 * i, np.uint8)
        assert cv2.imwrite(str(root / "images" / f"im{i}.jpg"), img)
        names.append(f"im{i}.jpg")
    part = rng.uniform(20, 100, (N_REAL, 24, 3)).astype(np.float32)
    part[..., 2] = 1.0
    np.savez(root / "real.npz", imgname=np.array(names), center=np.full((N_REAL, 2), 60.0, np.float32),
             scale=np.full(N_REAL, 0.5, np.float32), pose=rng.normal(0, 0.2, (N_REAL, 72)).astype(np.float32),
             shape=np.zeros((N_REAL, 10), np.float32), has_smpl=np.ones(N_REAL), part=part)
    return root / "real.npz", root / "images"


def test_parse_entries_and_json_lists(tmp_path):
    listing = tmp_path / "lists" / "mix.json"
    listing.parent.mkdir()
    listing.write_text(json.dumps([{"clips": "synth"}, {"npz": "h36m.npz", "images": "/data/h36m", "weight": 0.25,
                                                         "image_dataset": False, "joint_map": list(range(24))}]))
    got = parse_sources(f"a/synth,b/3dpw.npz@/data/3DPW,{listing}")
    assert got[0] == Source(clips="a/synth")
    assert got[1] == Source(npz="b/3dpw.npz", images="/data/3DPW")
    assert got[2].clips == str(listing.parent / "synth")  # relative to the JSON file
    assert got[3].npz == str(listing.parent / "h36m.npz") and got[3].images == "/data/h36m"
    assert got[3].weight == 0.25 and got[3].image_dataset is False and got[3].joint_map == tuple(range(24))
    assert np.allclose(source_weights(got), [0.25, 0.25, 0.25, 0.25])
    assert np.allclose(source_weights([Source(clips="a", weight=3), Source(clips="b", weight=1)]), [0.75, 0.25])
    assert np.allclose(source_weights([Source(clips="a", weight=0.7), Source(clips="b"), Source(clips="c")]),
                       [0.7, 0.15, 0.15])


@pytest.mark.parametrize("spec, needle", [
    ("", "no training data"),
    ("x.txt@/images", "FILE.npz@IMAGE_ROOT"),
    ("missing.json", "not found"),
])  # fmt: skip
def test_bad_entries_are_named(spec, needle):
    with pytest.raises(ValueError, match=needle):
        parse_sources(spec)


def test_bad_json_lists(tmp_path):
    cases = [
        ([{"clips": "a", "npz": "b.npz", "images": "c"}], "exactly one"),
        ([{"npz": "b.npz"}], "images"),
        ([{"clips": "a", "colour": "red"}], "unknown"),
        ([{"clips": "a", "weight": 0}], "> 0"),
        ({"clips": "a"}, "list"),
    ]
    for i, (content, needle) in enumerate(cases):
        p = tmp_path / f"l{i}.json"
        p.write_text(json.dumps(content))
        with pytest.raises(ValueError, match=needle):
            parse_sources(str(p))
    with pytest.raises(ValueError, match=">= 1"):
        source_weights([Source(clips="a", weight=1.0), Source(clips="b")])


def test_weighted_sampler_gives_each_source_its_share(tmp_path):
    sources = parse_sources(f"{_synthetic_dir(tmp_path / 'synth', frames=40)},"
                            f"{'@'.join(map(str, _real_file(tmp_path / 'real')))}")
    data, lengths = build_dataset(sources, seq_len=3)
    assert lengths == [40, N_REAL] and len(data) == 40 + N_REAL
    it = iter(weighted_sampler(sources, lengths, torch.Generator().manual_seed(0)))
    idx = np.array([next(it) for _ in range(6000)])
    assert abs((idx >= 40).mean() - 0.5) < 0.03  # the 5-sample real file gets half the draws
    assert set(idx[idx >= 40]) == set(range(40, 45)) and len(set(idx[idx < 40])) == 40
    # The same seed gives the same stream.
    again = iter(weighted_sampler(sources, lengths, torch.Generator().manual_seed(0)))
    assert [next(again) for _ in range(100)] == idx[:100].tolist()


def test_training_mixes_synthetic_and_real_data_and_logs_to_tensorboard(tmp_path, monkeypatch):
    import tar_core.training.train as train_module

    scalars = []

    class Board:  # stands in for torch.utils.tensorboard.SummaryWriter (tensorboard is optional)
        def add_scalar(self, tag, value, step):
            scalars.append((tag, float(value), step))

        def flush(self):
            pass

        def close(self):
            scalars.append(("closed", 0.0, 0))

    monkeypatch.setattr(train_module, "_tensorboard", lambda out: Board())
    synth = _synthetic_dir(tmp_path / "synth")
    npz, images = _real_file(tmp_path / "real")
    run = tmp_path / "run"
    train(TrainOptions(variant="tar-tiny", data=[str(synth), f"{npz}@{images}"], out=str(run), steps=2, batch=2,
                       log_every=1, augment=False), log=lambda m: None)
    prov = read_checkpoint(run / "model.pt")["provenance"]
    assert prov["data"] == "mixed" and prov["trained_on"] == f"{synth},{npz}@{images}"
    assert prov["weights"] == [0.5, 0.5] and prov["steps"] == 2
    assert {(t, s) for t, _, s in scalars if t == "train/loss"} == {("train/loss", 1), ("train/loss", 2)}
    assert all(np.isfinite(v) for _, v, _ in scalars) and scalars[-1][0] == "closed"


def test_cli_reports_a_bad_data_entry(tmp_path):
    import subprocess
    import sys

    res = subprocess.run([sys.executable, "-m", "tar_core", "train", "--variant", "tar-tiny", "--data",
                          str(tmp_path / "nothing.npz@imgs"), "--out", str(tmp_path / "run"), "--steps", "1"],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 2 and "nothing.npz" in res.stderr, res.stderr


@pytest.mark.slow
def test_ablation_script_trains_evaluates_and_checks_directions(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    data = _synthetic_dir(tmp_path / "synth")
    runs = tmp_path / "runs"
    cmd = [sys.executable, str(root / "scripts" / "ablation.py"), "--train", str(data), "--heldout", str(data),
           "--runs", str(runs), "--steps", "1", "--batch", "2", "--json", str(runs / "ablation.json")]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    table = [line for line in res.stdout.splitlines() if line.startswith("| ")]
    assert len(table) == 1 + 4  # header + the four variants
    out = json.loads((runs / "ablation.json").read_text())
    assert set(out["rows"]) == {"full TAR", "without RRM", "only GTE", "only LTE"}
    assert {r["variant"] for r in out["rows"].values()} == {"tar-tiny", "tar-tiny-no-rrm", "tar-tiny-gte-only",
                                                             "tar-tiny-lte-only"}
    assert all(r["steps"] == 1 and r["frames"] == 4 for r in out["rows"].values())
    assert len(out["checks"]) == 3 and "reproduced" in res.stdout
    # A second run reuses the trained models and their cached evaluations.
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert again.returncode == 0 and "training " not in again.stdout
    assert json.loads((runs / "ablation.json").read_text())["rows"]["full TAR"]["mpjpe"] == \
        out["rows"]["full TAR"]["mpjpe"]
