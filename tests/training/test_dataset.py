"""Synthetic training data: clip files written by make_dataset, read back by ClipDataset."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tar_core.geometry import camera
from tar_core.geometry.cropping import normalize
from tar_core.synthetic.dataset import clip_path, make_dataset
from tar_core.training.dataset import ClipDataset

CLIPS, FRAMES, SIZE = 2, 3, 96

SHAPES = {
    "crops": ((FRAMES, 256, 256, 3), np.uint8),
    "center": ((FRAMES, 2), np.float32),
    "box_size": ((FRAMES,), np.float32),
    "K": ((3, 3), np.float32),
    "image_size": ((2,), np.int32),
    "poses": ((FRAMES, 72), np.float32),
    "trans": ((FRAMES, 3), np.float32),
    "betas": ((10,), np.float32),
    "joints_cam": ((FRAMES, 24, 3), np.float32),
    "joints_2d": ((FRAMES, 24, 2), np.float32),
}
# Optional keys ("backdrop", a string, too).
EXTRA = {"tilt": ((), np.float32), "occluders": ((), np.int32), "planted_feet": ((), np.bool_)}


def _make(out, progress=None):
    return make_dataset(out, clips=CLIPS, frames=FRAMES, size=SIZE, seed=3, samples=1, progress=progress, threads=1)


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("dataset")
    calls = []
    paths = _make(out, progress=lambda i, n: calls.append((i, n)))
    assert calls == [(1, CLIPS), (2, CLIPS)]
    assert paths == [clip_path(out, i) for i in range(CLIPS)]
    return out


def test_dataset_renders_use_one_thread_and_fast_denoising(dataset_dir):
    from tar_core.synthetic.scene import _import_bpy

    scene = _import_bpy().context.scene  # the scene of the fixture's last render
    assert (scene.render.threads_mode, scene.render.threads) == ("FIXED", 1)
    assert (scene.cycles.denoising_quality, scene.cycles.denoising_prefilter) == ("FAST", "NONE")


def _load(path):
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def test_clip_files_have_the_documented_keys(dataset_dir):
    for i in range(CLIPS):
        z = _load(dataset_dir / f"clip_{i:05d}.npz")
        assert set(z) == set(SHAPES) | {"motion", "seed", "backdrop"} | set(EXTRA)
        for key, (shape, dtype) in (SHAPES | EXTRA).items():
            assert z[key].shape == shape, key
            assert z[key].dtype == dtype, key
        assert str(z["motion"]) in {"walk", "turn", "arms", "squat", "random"}
        assert int(z["seed"]) == 3 * 100003 + i
        assert z["image_size"].tolist() == [SIZE, SIZE]
        assert z["K"][0, 0] > 0 and z["K"][2, 2] == 1
    assert str(_load(clip_path(dataset_dir, 0))["motion"]) != str(_load(clip_path(dataset_dir, 1))["motion"])


def test_crops_show_the_person_and_joints_fall_inside(dataset_dir):
    for i in range(CLIPS):
        z = _load(clip_path(dataset_dir, i))
        crops = z["crops"].astype(np.float64)
        centre = crops[:, 96:160, 96:160].reshape(FRAMES, -1, 3)
        border = np.concatenate([crops[:, :24].reshape(FRAMES, -1, 3), crops[:, -24:].reshape(FRAMES, -1, 3),
                                 crops[:, :, :24].reshape(FRAMES, -1, 3), crops[:, :, -24:].reshape(FRAMES, -1, 3)],
                                axis=1)  # fmt: skip
        for f in range(FRAMES):
            mean_diff = np.abs(centre[f].mean(0) - border[f].mean(0)).max()
            assert mean_diff > 10 or centre[f].std() > 1.5 * border[f].std(), (i, f)
        uv = camera.full_to_crop(z["joints_2d"], z["center"], z["box_size"])
        assert uv.shape == (FRAMES, 24, 2)
        assert (uv >= 0).all() and (uv < 256).all()
        # The ground truth is consistent: joints_2d is the projection of joints_cam.
        np.testing.assert_allclose(z["joints_2d"], camera.project(z["joints_cam"], z["K"]), atol=1e-2)


def test_make_dataset_resumes(dataset_dir):
    paths = [clip_path(dataset_dir, i) for i in range(CLIPS)]
    before = [p.stat().st_mtime_ns for p in paths]
    assert _make(dataset_dir) == paths
    assert [p.stat().st_mtime_ns for p in paths] == before  # nothing re-made

    kept = _load(paths[1])
    paths[1].unlink()
    paths[0].write_bytes(b"not a zip file")  # a broken clip is re-made too
    _make(dataset_dir)
    assert all(p.exists() for p in paths)
    again = _load(paths[1])
    for key in ("poses", "trans", "betas", "joints_cam", "joints_2d", "center", "box_size", "K"):
        np.testing.assert_array_equal(again[key], kept[key])  # same seed, same ground truth
    assert set(_load(paths[0])) == set(SHAPES) | {"motion", "seed", "backdrop"} | set(EXTRA)
    assert not list(dataset_dir.glob(".*"))  # no temporary files left behind


def test_clip_dataset_items(dataset_dir):
    ds = ClipDataset([dataset_dir], seq_len=5)
    assert len(ds) == CLIPS * FRAMES
    clips = [_load(clip_path(dataset_dir, i)) for i in range(CLIPS)]
    for k in range(len(ds)):
        c, f = divmod(k, FRAMES)
        assert ds.locate(k) == (c, f)
        item = ds[k]
        shapes = {"images": (5, 3, 256, 256), "joints_2d": (24, 2), "joints_2d_conf": (24,), "joints_3d": (24, 3),
                  "has_3d": (), "rotmat": (24, 3, 3), "betas": (10,), "has_smpl": (), "center": (2,), "size": (),
                  "focal": (), "principal": (2,)}  # fmt: skip
        assert set(item) == set(shapes)
        for key, shape in shapes.items():
            assert isinstance(item[key], torch.Tensor) and item[key].dtype == torch.float32, key
            assert tuple(item[key].shape) == shape, key
        z = clips[c]
        np.testing.assert_array_equal(item["joints_3d"].numpy(), z["joints_cam"][f])
        np.testing.assert_array_equal(item["joints_2d"].numpy(), z["joints_2d"][f])
        np.testing.assert_array_equal(item["betas"].numpy(), z["betas"])
        np.testing.assert_array_equal(item["center"].numpy(), z["center"][f])
        assert item["size"].item() == pytest.approx(float(z["box_size"][f]))
        assert item["focal"].item() == pytest.approx(float(z["K"][0, 0]))
        np.testing.assert_allclose(item["principal"].numpy(), z["K"][:2, 2])
        assert (item["joints_2d_conf"] == 1).all() and item["has_3d"] == 1 and item["has_smpl"] == 1
        R = item["rotmat"].double()
        torch.testing.assert_close(R @ R.transpose(-1, -2), torch.eye(3, dtype=torch.float64).expand(24, 3, 3),
                                   atol=1e-5, rtol=0)  # fmt: skip
        torch.testing.assert_close(torch.linalg.det(R), torch.ones(24, dtype=torch.float64), atol=1e-5, rtol=0)
        # The middle image is this frame's crop, normalised.
        torch.testing.assert_close(item["images"][2], normalize(z["crops"][f : f + 1])[0])
    assert ds[-1]["joints_3d"].numpy().tolist() == ds[len(ds) - 1]["joints_3d"].numpy().tolist()
    with pytest.raises(IndexError):
        ds[len(ds)]
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=4)))  # default collation works
    assert batch["images"].shape == (4, 5, 3, 256, 256) and batch["size"].shape == (4,)


def test_clip_dataset_pads_at_clip_edges(dataset_dir):
    T = 9
    ds = ClipDataset([str(dataset_dir)], seq_len=T)
    first = ds[0]["images"]
    for t in range(T // 2 + 1):
        assert torch.equal(first[t], first[0])
    assert not torch.equal(first[T // 2 + 1], first[0])  # frame 1 of the clip
    last = ds[FRAMES - 1]["images"]  # last frame of clip 0: the second half repeats it
    for t in range(T // 2, T):
        assert torch.equal(last[t], last[T // 2])
    # Windows never cross into the next clip: clip 1's first window starts with its own frame 0.
    z1 = _load(clip_path(dataset_dir, 1))
    torch.testing.assert_close(ds[FRAMES]["images"][0], normalize(z1["crops"][:1])[0])


def test_clip_dataset_needs_clips(tmp_path):
    with pytest.raises(ValueError, match="empty"):
        ClipDataset([tmp_path / "empty"])


def test_clips_vary_camera_backdrop_and_occluders(dataset_dir):
    from tar_core.synthetic.dataset import MOTION_CYCLE, _clip_spec

    assert MOTION_CYCLE.count("random") >= 1 and {"walk", "turn", "arms", "squat"} <= set(MOTION_CYCLE)
    default = camera.default_focal(SIZE, SIZE)
    for i in range(CLIPS):
        z = _load(clip_path(dataset_dir, i))
        assert str(z["backdrop"]) == "textured"
        assert 0.6 * default - 1e-3 <= z["K"][0, 0] <= 1.8 * default + 1e-3
        assert abs(float(z["tilt"])) <= 0.17
        assert 0 <= int(z["occluders"]) <= 2
    # Clip i's variety comes from its own seed: a re-made clip gets the same camera, roll and occluders.
    specs = [_clip_spec(i, FRAMES, SIZE, 3, 1) for i in range(60)]
    assert specs == [_clip_spec(i, FRAMES, SIZE, 3, 1) for i in range(60)]
    assert [s.motion for s in specs[:6]] == list(MOTION_CYCLE)
    focals = np.array([s.focal for s in specs]) / default
    assert focals.min() >= 0.6 and focals.max() <= 1.8 and np.ptp(focals) > 0.8
    tilts = np.array([s.tilt for s in specs])
    assert np.abs(tilts).max() <= 0.17 and tilts.min() < -0.05 and tilts.max() > 0.05
    n_occ = np.array([s.occluders for s in specs])
    assert set(n_occ) == {0, 1, 2} and 0.25 < (n_occ == 0).mean() < 0.75
    assert len({s.seed for s in specs}) == 60


def test_clip_files_without_the_optional_keys_still_load(dataset_dir, tmp_path):
    """Files written before the tilt / backdrop / occluders keys existed are complete and readable."""
    old = _load(clip_path(dataset_dir, 0))
    assert not bool(old["planted_feet"])  # the default, as before the option existed
    for key in ("tilt", "backdrop", "occluders", "planted_feet"):
        del old[key]
    path = clip_path(tmp_path, 0)
    np.savez_compressed(path, **old)
    before = path.stat().st_mtime_ns
    make_dataset(tmp_path, clips=1, frames=FRAMES, size=SIZE, seed=3, samples=1)
    assert path.stat().st_mtime_ns == before  # complete: not re-made
    ds = ClipDataset(tmp_path, seq_len=3)
    assert len(ds) == FRAMES and ds[0]["images"].shape == (3, 3, 256, 256)


def test_planted_feet_datasets_walk_on_their_standing_foot():
    """``make-dataset --planted-feet``: a clip's spec asks for it, and the walk's standing foot then stays put."""
    import torch

    from tar_core.body_model import load_body_model
    from tar_core.synthetic.dataset import _clip_spec
    from tar_core.synthetic.groundtruth import make_ground_truth

    body = load_body_model()
    spec = _clip_spec(0, 40, 256, 3, 1, planted_feet=True)
    assert spec.motion == "walk" and spec.planted_feet and not _clip_spec(0, 40, 256, 3, 1).planted_feet
    gt = make_ground_truth(spec, body)
    p = torch.from_numpy(gt.poses_cam)
    out = body(p[:, :3], p[:, 3:], torch.from_numpy(np.tile(gt.betas, (len(p), 1))), torch.from_numpy(gt.trans_cam))
    heels = out.extra_joints.double().numpy()[:, [7, 10]]  # (F, 2, 3) heels, camera frame
    still = np.linalg.norm(np.diff(heels, axis=0), axis=-1).min(1)  # the stiller heel of each step
    assert np.median(still) < 0.002
