"""Training: a step lowers the loss on a fixed batch, runs resume, and DDP works on gloo."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from tar_core.body_model import load_body_model
from tar_core.geometry.rotations import axis_angle_to_matrix
from tar_core.network.checkpoints import load_checkpoint, read_checkpoint
from tar_core.network.config import get_variant
from tar_core.network.refinement import Geometry
from tar_core.network.tar import TAR
from tar_core.training.losses import Targets
from tar_core.training.train import train_step

ROOT = Path(__file__).resolve().parents[2]


def fixed_batch(B: int = 2):
    g = torch.Generator().manual_seed(0)
    images = torch.randn(B, 9, 3, 256, 256, generator=g)
    geom = Geometry(center=torch.tensor([[320.0, 240.0]] * B), size=torch.full((B,), 300.0),
                    focal=torch.full((B,), 800.0), principal=torch.tensor([[320.0, 240.0]] * B))
    joints = torch.randn(B, 24, 3, generator=g) * 0.3 + torch.tensor([0.0, 0.0, 5.0])
    targets = Targets(joints_2d=joints[..., :2] / joints[..., 2:] * 800 + 300, joints_2d_conf=torch.ones(B, 24),
                      joints_3d=joints, has_3d=torch.ones(B),
                      rotmat=axis_angle_to_matrix(0.3 * torch.randn(B, 24, 3, generator=g)),
                      betas=torch.randn(B, 10, generator=g), has_smpl=torch.ones(B))
    return images, geom, targets, None  # no keypoints start


def test_training_steps_lower_the_loss_on_a_fixed_batch():
    torch.manual_seed(0)
    cfg = replace(get_variant("tar-tiny"), marker_dropout=0.0)
    model = TAR(cfg, load_body_model())
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    batch = fixed_batch()
    losses = [train_step(model, opt, batch, cfg)["loss"] for _ in range(8)]  # Adam, lr 1e-3
    assert all(np.isfinite(losses))
    assert losses[-1] < 0.9 * losses[0] and all(b < a for a, b in zip(losses, losses[1:], strict=False)), losses


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    from tar_core.synthetic.dataset import make_dataset

    out = tmp_path_factory.mktemp("data")
    make_dataset(out, clips=2, frames=3, size=96, seed=1, samples=1)
    return out


def _log_steps(run: Path) -> list[int]:
    with open(run / "log.csv") as fh:
        return [int(r["step"]) for r in csv.DictReader(fh)]


def _log_times(run: Path) -> list[float]:
    with open(run / "log.csv") as fh:
        return [float(r["time_s"]) for r in csv.DictReader(fh)]


def test_train_writes_checkpoints_and_resumes(tiny_data, tmp_path):
    from tar_core.training.train import TrainOptions, train

    run = tmp_path / "run"
    opts = TrainOptions(variant="tar-tiny", data=[str(tiny_data)], out=str(run), steps=2, batch=2, log_every=1,
                        save_every=1)
    model_path = train(opts, log=lambda m: None)
    first = read_checkpoint(run / "last.pt")
    assert first["provenance"]["steps"] == 2 and "optimizer" in first
    assert first["provenance"]["trained_on"] == str(tiny_data) and first["provenance"]["data"] == "synthetic"
    assert load_checkpoint(model_path).config.name == "tar-tiny"
    assert _log_steps(run) == [1, 2]
    train(replace(opts, steps=4, resume=True), log=lambda m: None)
    again = read_checkpoint(run / "last.pt")
    assert again["provenance"]["steps"] == 4
    assert _log_steps(run) == [1, 2, 3, 4]  # the log continues instead of starting over
    times = _log_times(run)
    assert times == sorted(times) and times[2] >= times[1]  # and so does its clock
    # A run killed after logging past its last checkpoint: on resume those rows go (they are trained again).
    with open(run / "log.csv", "a", newline="") as fh:
        csv.writer(fh).writerow([5, 1.0, 0, 0, 0, 0, 0, 999.0])
    train(replace(opts, steps=5, resume=True), log=lambda m: None)
    assert _log_steps(run) == [1, 2, 3, 4, 5] and _log_times(run)[-1] < 999.0
    changed = [k for k, v in again["state_dict"].items()
               if v.dtype.is_floating_point and not torch.equal(v, first["state_dict"][k])]
    assert changed  # resumed training kept learning


def test_ddp_on_gloo_with_two_processes(tiny_data, tmp_path):
    run = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    res = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                          "-m", "tar_core", "train", "--variant", "tar-tiny", "--data", str(tiny_data), "--out",
                          str(run), "--steps", "2", "--batch", "1", "--device", "cpu"],
                         capture_output=True, text=True, timeout=600, env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    assert read_checkpoint(run / "model.pt")["provenance"]["steps"] == 2


def test_evaluate_runs_the_protocol_on_clips(tiny_data, tmp_path):
    import json

    ck = tmp_path / "tiny.pt"
    assert subprocess.run([sys.executable, "-m", "tar_core", "init-checkpoint", "--variant", "tar-tiny", "-o",
                           str(ck)], capture_output=True).returncode == 0
    res = subprocess.run([sys.executable, "-m", "tar_core", "evaluate", "--checkpoint", str(ck), "--data",
                          str(tiny_data), "-o", str(tmp_path / "r.json")], capture_output=True, text=True,
                         timeout=600)
    assert res.returncode == 0, res.stderr
    r = json.loads((tmp_path / "r.json").read_text())
    assert r["frames"] == 6 and r["sequences"] == 2 and r["joints"] == "mannequin-lsp14"
    assert all(np.isfinite(r[k]) and r[k] > 0 for k in ("mpjpe", "pa_mpjpe", "pve", "accel"))
    assert r["pa_mpjpe"] <= r["mpjpe"] + 1e-6


@pytest.mark.slow
def test_keypoints_engine_is_evaluated_on_the_same_clips(tmp_path):
    """make-dataset --videos keeps the full frames; evaluate --engine keypoints captures them with the clip's
    focal length and scores the fit against the same ground truth as the tar engine."""
    import json

    from tar_core.evaluation.evaluate import evaluate_keypoints
    from tar_core.synthetic.dataset import make_dataset

    data = tmp_path / "held out"
    (path,) = make_dataset(data, clips=1, frames=8, size=256, seed=4, samples=1, videos=True)
    video = path.with_suffix(".mp4")
    cap = cv2.VideoCapture(str(video))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 8 and int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)) == 256
    cap.release()
    r = evaluate_keypoints([data])
    assert r["engine"] == "keypoints" and r["sequences"] == 1 and r["coverage"] >= 0.75
    assert r["frames"] == round(8 * r["coverage"])
    # A fit of a clearly visible person: far better than chance, worse than perfect.
    assert 5.0 < r["pa_mpjpe"] < 150.0 and r["pa_mpjpe"] <= r["mpjpe"] + 1e-6, r
    # The same through the command line; --checkpoint is refused with the keypoints engine.
    res = subprocess.run([sys.executable, "-m", "tar_core", "evaluate", "--engine", "keypoints", "--data", str(data),
                          "-o", str(tmp_path / "kp.json")], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    assert json.loads((tmp_path / "kp.json").read_text())["mpjpe"] == pytest.approx(r["mpjpe"], rel=1e-4)
    bad = subprocess.run([sys.executable, "-m", "tar_core", "evaluate", "--engine", "keypoints", "--checkpoint",
                          "x.pt", "--data", str(data)], capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "--checkpoint" in bad.stderr
    video.unlink()
    with pytest.raises(ValueError, match="--videos"):
        evaluate_keypoints([data])
