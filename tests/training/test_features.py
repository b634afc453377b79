"""The feature cache for a frozen trunk: same augmentation per clip as per window, the same loss as live
extraction, resumable, and training the tar-blazepose heads on it."""

import numpy as np
import pytest
import torch

from tar_core.body_model import load_body_model
from tar_core.network.config import get_variant
from tar_core.network.tar import TAR
from tar_core.training.augment import augment_item
from tar_core.training.dataset import ClipDataset
from tar_core.training.features import CachedWindows, cache_features
from tar_core.training.losses import tar_loss
from tar_core.training.train import TrainOptions, collate, train


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    from tar_core.synthetic.dataset import make_dataset

    out = tmp_path_factory.mktemp("clips")
    make_dataset(out, clips=2, frames=5, size=96, seed=3, samples=1)
    return out


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return TAR(get_variant("tar-blazepose"), load_body_model()).eval()


def test_one_draw_augments_every_frame_of_a_clip_as_a_window_is_augmented(clips):
    window = ClipDataset(clips, seq_len=3)[2]  # frames 1, 2, 3 of clip 0
    frames = ClipDataset(clips, seq_len=1)
    rng_seed = [5, 0, 1]
    whole = augment_item(window, np.random.default_rng(rng_seed), p_flip=1.0, p_occlusion=1.0)
    for i, f in enumerate((1, 2, 3)):
        alone = augment_item(frames[f], np.random.default_rng(rng_seed), p_flip=1.0, p_occlusion=1.0)
        torch.testing.assert_close(alone["images"][0], whole["images"][i])
        if f == 2:  # the window's labels are its middle frame's
            for key in ("joints_2d", "joints_3d", "rotmat", "center", "size"):
                torch.testing.assert_close(alone[key], whole[key])


def test_cached_features_give_the_loss_of_live_extraction(clips, model, tmp_path):
    cfg = model.cfg
    paths = cache_features([clips], tmp_path / "cache", model.backbone, draws=1)
    assert len(paths) == 2 and all(p.is_file() for p in paths)
    cached = CachedWindows(tmp_path / "cache", cfg.seq_len, cfg.lte_window, backbone="blazepose")
    live = ClipDataset(clips, seq_len=cfg.seq_len)
    assert len(cached) == len(live) == 10
    idx = [0, 4, 7]
    with torch.no_grad():
        losses = []
        for batch in (collate([live[i] for i in idx]), collate([cached[i] for i in idx])):
            inputs, geom, targets, _ = batch
            losses.append(tar_loss(model(inputs, geom), targets, geom, cfg))
    for key in ("loss", "final_2d", "final_3d", "final_rot"):
        assert float(losses[1][key]) == pytest.approx(float(losses[0][key]), rel=2e-3), key
    # Resumable: present files are kept as they are.
    stamps = [p.stat().st_mtime_ns for p in paths]
    cache_features([clips], tmp_path / "cache", model.backbone, draws=1)
    assert [p.stat().st_mtime_ns for p in paths] == stamps


def test_draws_differ_and_keep_the_camera_consistent(clips, model, tmp_path):
    cache_features([clips], tmp_path / "c", model.backbone, draws=2, seed=1)
    with np.load(tmp_path / "c" / "clip_00000_d0.npz") as d0, np.load(tmp_path / "c" / "clip_00000_d1.npz") as d1:
        assert not np.allclose(d0["local_map"], d1["local_map"])
        # 2D labels stay the projection of the 3D labels through the (augmented) full-image camera.
        for d in (d0, d1):
            X, f, pp = d["joints_3d"], d["focal"], d["principal"]
            uv = f[:, None, None] * X[..., :2] / X[..., 2:3] + pp[:, None]
            np.testing.assert_allclose(uv, d["joints_2d"], atol=0.05)


@pytest.mark.slow
def test_train_tar_blazepose_heads_on_the_feature_cache(clips, tmp_path):
    from tar_core.network.checkpoints import read_checkpoint

    opts = TrainOptions(variant="tar-blazepose", data=[str(clips)], out=str(tmp_path / "run"), steps=3, batch=2,
                        lr=1e-4, feature_cache=str(tmp_path / "cache"), draws=2, save_every=3)
    path = train(opts, log=lambda m: None)
    payload = read_checkpoint(path)
    assert payload["provenance"]["feature_cache_draws"] == 2 and payload["provenance"]["steps"] == 3
    assert not any(k.startswith("backbone.") for k in payload["state_dict"])
    assert len(list((tmp_path / "cache" / "source0").glob("*.npz"))) == 4


def _fake_fit(calls):
    """A stand-in for the keypoints engine's fit (the capture layer, which training may not import): a fixed
    pose, the crops' first centre as the translation's x, every other frame without a fit."""

    def fit(crops, centers, sizes, K, times):
        calls.append((crops.shape, crops.dtype, K.copy(), times.copy()))
        F = len(crops)
        rotmat = np.tile(np.eye(3), (F, 24, 1, 1))
        transl = np.tile([0.1, 0.0, 5.0], (F, 1)) + np.arange(F)[:, None] * [0.01, 0, 0]
        return rotmat, np.zeros((F, 10)), transl, np.arange(F) % 2 == 0

    return fit


def test_keypoint_starts_are_cached_beside_the_features_and_reach_the_batch(clips, model, tmp_path):
    from tar_core.errors import DatasetError
    from tar_core.geometry.camera import crop_to_full
    from tar_core.training.features import cache_starts, start_file

    cfg = model.cfg
    cache = tmp_path / "cache"
    with pytest.raises(DatasetError, match="cache the features first"):
        cache_starts([clips], cache, _fake_fit([]), draws=2)
    features = cache_features([clips], cache, model.backbone, draws=2)
    calls = []
    paths = cache_starts([clips], cache, _fake_fit(calls), draws=2)
    assert paths == [start_file(p) for p in features] and len(calls) == 4
    shape, dtype, K, times = calls[0]
    assert shape == (5, 256, 256, 3) and dtype == np.uint8 and K[2, 2] == 1 and times[1] == pytest.approx(1 / 30)
    windows = CachedWindows(cache, cfg.seq_len, cfg.lte_window, backbone="blazepose", starts=True)
    item = windows[2]
    assert float(item["start_valid"]) == 1.0 and float(item["start_transl"][0]) == pytest.approx(0.12)
    inputs, geom, targets, start = collate([windows[i] for i in (1, 2)])
    assert start is not None and start.valid.tolist() == [False, True]
    back = crop_to_full(start.cam, geom.center, geom.size, geom.focal, geom.principal)
    torch.testing.assert_close(back[1], torch.tensor([0.12, 0.0, 5.0]), atol=1e-4, rtol=1e-4)
    assert collate([CachedWindows(cache, cfg.seq_len, cfg.lte_window)[2]])[3] is None
    # Present fits are kept; a cache made with another seed cannot be matched and is refused.
    stamps = [p.stat().st_mtime_ns for p in paths]
    cache_starts([clips], cache, _fake_fit(calls), draws=2)
    assert [p.stat().st_mtime_ns for p in paths] == stamps and len(calls) == 4
    for p in paths:
        p.unlink()
    with pytest.raises(DatasetError, match="cannot be made again"):
        cache_starts([clips], cache, _fake_fit([]), draws=2, seed=7)
    with pytest.raises(DatasetError, match="no keypoints fit"):
        CachedWindows(cache, cfg.seq_len, cfg.lte_window, starts=True)


@pytest.mark.slow
def test_train_the_refiner_from_the_keypoints_fit(clips, tmp_path):
    """``train --variant tar-blazepose-kp-init``: the real fit (MediaPipe on the cached draws' crops) is kept beside
    the feature cache and training starts from another run's weights."""
    from tar_core.cli.training import _start_fit
    from tar_core.errors import UsageError
    from tar_core.network.checkpoints import read_checkpoint, save_checkpoint
    from tar_core.util.stop import StopFlag

    base = save_checkpoint(tmp_path / "base.pt", TAR(get_variant("tar-blazepose"), load_body_model()))
    opts = TrainOptions(variant="tar-blazepose-kp-init", data=[str(clips)], out=str(tmp_path / "run"), steps=2,
                        batch=2, feature_cache=str(tmp_path / "cache"), draws=2, save_every=2,
                        init_weights=str(base))
    with pytest.raises(UsageError, match="--feature-cache"):
        train(TrainOptions(variant="tar-blazepose-kp-init", data=[str(clips)], out=str(tmp_path / "x"), steps=1))
    payload = read_checkpoint(train(opts, log=lambda m: None, start_fit=_start_fit(StopFlag())))
    assert payload["config"]["rrm_init"] == "keypoints" and payload["provenance"]["init_weights"]["steps"] is None
    fits = sorted((tmp_path / "cache" / "source0" / "keypoints").glob("*.npz"))
    assert len(fits) == 4
    with np.load(fits[0]) as z:
        assert z["start_rotmat"].shape == (5, 24, 3, 3) and z["start_valid"].shape == (5,)
