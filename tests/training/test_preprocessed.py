"""PreprocessedDataset: SPIN/VIBE-style .npz files with real image files, read as windows of crops + targets."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from tar_core.errors import DatasetError
from tar_core.geometry.cropping import IMAGENET_MEAN, IMAGENET_STD
from tar_core.training.preprocessed import PreprocessedDataset, load_preprocessed

W, H, N = 160, 120, 6
FILLS = [(200, 30, 30), (30, 200, 30), (30, 30, 200), (200, 200, 30), (30, 200, 200), (200, 30, 200)]  # RGB
CENTERS = np.array([[60 + 8 * i, 50 + 3 * i] for i in range(N)], dtype=np.float32)
SCALE = 0.4  # box side 80 px
SQUARE = 10  # half side of the white square drawn at each box centre
ITEM_KEYS = {"images", "joints_2d", "joints_2d_conf", "joints_3d", "has_3d", "rotmat", "betas", "has_smpl",
             "center", "size", "focal", "principal"}  # fmt: skip
# Video-like file: two sequences of 3 frames, interleaved in the file (file order is frame order).
VID = np.array(["a", "a", "b", "b", "a", "b"])
SEQ_A, SEQ_B = [0, 1, 4], [2, 3, 5]


def _write_images(root):
    root.mkdir(parents=True, exist_ok=True)
    names = []
    for i in range(N):
        img = np.zeros((H, W, 3), np.uint8)
        img[:] = FILLS[i]
        cx, cy = (int(v) for v in CENTERS[i])
        img[cy - SQUARE : cy + SQUARE + 1, cx - SQUARE : cx + SQUARE + 1] = 255
        name = f"imgs/frame_{i}.png"
        (root / "imgs").mkdir(exist_ok=True)
        assert cv2.imwrite(str(root / name), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
        names.append(name)
    return np.array(names)


def _arrays(names, n_joints=24, seed=0):
    rng = np.random.default_rng(seed)
    part = rng.uniform(0, 150, (N, n_joints, 3)).astype(np.float32)
    part[..., 2] = 1.0
    part[0, 3, 2] = 0.0
    part[1, 7, 2] = -1.0  # "not annotated" in some files
    S = rng.normal(0, 0.5, (N, n_joints, 4)).astype(np.float32)
    S[..., 3] = 1.0
    S[2, :, 3] = 0.0  # sample 2 has no 3D
    return {
        "imgname": names,
        "center": CENTERS.copy(),
        "scale": np.full(N, SCALE, np.float32),
        "pose": rng.normal(0, 0.4, (N, 72)).astype(np.float32),
        "shape": rng.normal(0, 1, (N, 10)).astype(np.float32),
        "has_smpl": np.array([1, 0, 1, 1, 0, 1], np.float64),
        "part": part,
        "S": S,
    }


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("pre")
    names = _write_images(root / "images")
    video = _arrays(names)
    video["vid_name"] = VID
    video["focal_length"] = np.full(N, 500.0, np.float32)
    image = _arrays(names, seed=1)
    del image["S"]
    np.savez(root / "video.npz", **video)
    np.savez(root / "image.npz", **image)
    return {"root": root, "images": root / "images", "video": root / "video.npz", "image": root / "image.npz",
            "video_arrays": video, "image_arrays": image}  # fmt: skip


def _rgb(images: torch.Tensor) -> np.ndarray:
    """(T, 3, S, S) normalised -> (T, S, S, 3) float 0..255."""
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return ((images * std + mean) * 255).permute(0, 2, 3, 1).numpy()


def _fill_index(crop_rgb: np.ndarray) -> int:
    """Which image a crop comes from, by the colour of its top-left region."""
    colour = crop_rgb[8:24, 8:24].reshape(-1, 3).mean(0)
    dists = [np.abs(colour - np.array(f)).max() for f in FILLS]
    assert min(dists) < 3, colour
    return int(np.argmin(dists))


def test_item_shapes_and_dtypes(files):
    ds = PreprocessedDataset(files["video"], files["images"], seq_len=5)
    assert len(ds) == N and not ds.image_dataset
    item = ds[0]
    assert set(item) == ITEM_KEYS
    shapes = {"images": (5, 3, 256, 256), "joints_2d": (24, 2), "joints_2d_conf": (24,), "joints_3d": (24, 3),
              "has_3d": (), "rotmat": (24, 3, 3), "betas": (10,), "has_smpl": (), "center": (2,), "size": (),
              "focal": (), "principal": (2,)}  # fmt: skip
    for key, shape in shapes.items():
        assert tuple(item[key].shape) == shape, key
        assert item[key].dtype == torch.float32, key
    batch = next(iter(DataLoader(ds, batch_size=3)))
    assert batch["images"].shape == (3, 5, 3, 256, 256)


def test_image_dataset_repeats_one_crop(files):
    ds = PreprocessedDataset(files["image"], files["images"], seq_len=4)
    assert ds.image_dataset
    for k in (0, 3):
        images = ds[k]["images"]
        for t in range(1, 4):
            assert torch.equal(images[t], images[0])
        assert _fill_index(_rgb(images[:1])[0]) == k


def test_video_file_read_as_images_when_asked(files):
    ds = PreprocessedDataset(files["video"], files["images"], seq_len=3, image_dataset=True)
    assert ds.image_dataset
    np.testing.assert_array_equal(ds.window(4), [4, 4, 4])
    images = ds[4]["images"]
    assert torch.equal(images[0], images[2])


def test_video_windows_stay_in_sequence_and_pad(files):
    ds = PreprocessedDataset(files["video"], files["images"], seq_len=5)
    expected = {
        0: [0, 0, 0, 1, 4], 1: [0, 0, 1, 4, 4], 4: [0, 1, 4, 4, 4],
        2: [2, 2, 2, 3, 5], 3: [2, 2, 3, 5, 5], 5: [2, 3, 5, 5, 5],
    }  # fmt: skip
    for k, want in expected.items():
        np.testing.assert_array_equal(ds.window(k), want)
        got = [_fill_index(c) for c in _rgb(ds[k]["images"])]
        assert got == want, (k, got)
    assert ds.window(-1).tolist() == expected[5]
    with pytest.raises(IndexError):
        ds.window(N)
    one = PreprocessedDataset(files["video"], files["images"], seq_len=1)
    assert [one.window(k).tolist() for k in range(N)] == [[k] for k in range(N)]


def test_sequence_key_is_accepted(files, tmp_path):
    arrays = dict(files["video_arrays"])
    arrays["sequence"] = arrays.pop("vid_name")
    np.savez(tmp_path / "seq.npz", **arrays)
    ds = PreprocessedDataset(tmp_path / "seq.npz", files["images"], seq_len=3)
    assert not ds.image_dataset
    assert ds.window(4).tolist() == [1, 4, 4]


def test_targets_equal_the_arrays(files):
    a = files["video_arrays"]
    ds = PreprocessedDataset(files["video"], files["images"], seq_len=3)
    for k in range(N):
        item = ds[k]
        np.testing.assert_allclose(item["joints_2d"].numpy(), a["part"][k, :, :2])
        conf = np.clip(a["part"][k, :, 2], 0, None)
        np.testing.assert_array_equal(item["joints_2d_conf"].numpy(), conf)
        np.testing.assert_allclose(item["betas"].numpy(), a["shape"][k])
        np.testing.assert_allclose(item["center"].numpy(), CENTERS[k])
        assert item["size"].item() == pytest.approx(200 * SCALE)
        assert item["focal"].item() == pytest.approx(500.0)
        np.testing.assert_allclose(item["principal"].numpy(), [W / 2, H / 2])
        R = item["rotmat"].double().numpy()
        np.testing.assert_allclose(R @ R.transpose(0, 2, 1), np.broadcast_to(np.eye(3), (24, 3, 3)), atol=1e-5)
        np.testing.assert_allclose(np.linalg.det(R), 1.0, atol=1e-5)
        for j in (0, 5, 23):
            ref, _ = cv2.Rodrigues(a["pose"][k, 3 * j : 3 * j + 3].astype(np.float64))
            np.testing.assert_allclose(R[j], ref, atol=1e-5)
    assert ds[0]["joints_2d_conf"][3] == 0 and ds[1]["joints_2d_conf"][7] == 0


def test_has_3d_and_has_smpl_masks(files):
    a = files["video_arrays"]
    ds = PreprocessedDataset(files["video"], files["images"], seq_len=3)
    for k in range(N):
        item = ds[k]
        assert item["has_smpl"].item() == a["has_smpl"][k]
        if k == 2:
            assert item["has_3d"].item() == 0
            assert torch.count_nonzero(item["joints_3d"]) == 0
        else:
            assert item["has_3d"].item() == 1
            np.testing.assert_allclose(item["joints_3d"].numpy(), a["S"][k, :, :3])
    img = PreprocessedDataset(files["image"], files["images"], seq_len=2)
    for k in range(N):
        item = img[k]
        assert item["has_3d"].item() == 0 and torch.count_nonzero(item["joints_3d"]) == 0
        assert item["has_smpl"].item() == files["image_arrays"]["has_smpl"][k]


def test_image_size_defaults_and_overrides(files, tmp_path):
    ds = PreprocessedDataset(files["image"], files["images"], seq_len=2)
    item = ds[1]
    assert item["focal"].item() == pytest.approx(math.hypot(W, H))
    np.testing.assert_allclose(item["principal"].numpy(), [W / 2, H / 2])
    arrays = dict(files["image_arrays"])
    arrays["img_size"] = np.tile([320, 240], (N, 1))
    np.savez(tmp_path / "sized.npz", **arrays)
    sized = PreprocessedDataset(tmp_path / "sized.npz", files["images"], seq_len=2)
    assert sized[1]["focal"].item() == pytest.approx(400.0)
    np.testing.assert_allclose(sized[1]["principal"].numpy(), [160, 120])
    arrays.pop("img_size")
    arrays["orig_shape"] = np.tile([240, 320], (N, 1))  # (height, width)
    np.savez(tmp_path / "shaped.npz", **arrays)
    assert PreprocessedDataset(tmp_path / "shaped.npz", files["images"]).image_size(0) == (320.0, 240.0)


def test_joint_map_moves_and_drops_joints(files, tmp_path):
    arrays = _arrays(files["video_arrays"]["imgname"], n_joints=30, seed=2)
    np.savez(tmp_path / "j30.npz", **arrays)
    with pytest.raises(ValueError, match="joint_map"):
        PreprocessedDataset(tmp_path / "j30.npz", files["images"])
    jm = np.arange(24)[::-1] + 3
    jm[5] = -1
    ds = PreprocessedDataset(tmp_path / "j30.npz", files["images"], seq_len=1, joint_map=jm)
    k = 3
    item = ds[k]
    for j in range(24):
        if j == 5:
            assert item["joints_2d_conf"][j] == 0 and torch.count_nonzero(item["joints_2d"][j]) == 0
            assert torch.count_nonzero(item["joints_3d"][j]) == 0
        else:
            np.testing.assert_allclose(item["joints_2d"][j].numpy(), arrays["part"][k, jm[j], :2])
            assert item["joints_2d_conf"][j] == arrays["part"][k, jm[j], 2]
            np.testing.assert_allclose(item["joints_3d"][j].numpy(), arrays["S"][k, jm[j], :3])
    with pytest.raises(ValueError, match="joint_map"):
        PreprocessedDataset(tmp_path / "j30.npz", files["images"], joint_map=np.full(24, 30))
    with pytest.raises(ValueError, match="joint_map"):
        PreprocessedDataset(tmp_path / "j30.npz", files["images"], joint_map=np.arange(23))


def test_crop_shows_the_box_region(files):
    ds = PreprocessedDataset(files["image"], files["images"], seq_len=1)
    for k in (0, 5):
        crop = _rgb(ds[k]["images"])[0]
        # Box side 80 px -> 3.2 crop px per image px; the 21 px white square spans about +-32 crop px.
        assert crop[128, 128].min() > 250
        assert crop[128 + 20, 128 - 20].min() > 250
        # The square's edge (10.5 image px from the centre) sits at 33.6 crop px: the box is 200 * scale as is.
        assert crop[128, 128 + 30].min() > 250 and crop[128 - 30, 128].min() > 250
        np.testing.assert_allclose(crop[128 + 37, 128], FILLS[k], atol=2)
        np.testing.assert_allclose(crop[128, 128 + 50], FILLS[k], atol=2)
        np.testing.assert_allclose(crop[128 - 50, 128], FILLS[k], atol=2)
        assert ds.box(k).size == pytest.approx(80.0)
        np.testing.assert_allclose(ds.box(k).center, CENTERS[k])


def test_object_arrays_are_refused(files, tmp_path):
    arrays = dict(files["image_arrays"])
    arrays["imgname"] = np.array(list(arrays["imgname"]), dtype=object)
    np.savez(tmp_path / "obj.npz", **arrays)
    with pytest.raises(ValueError, match=r"dtype=str"):
        PreprocessedDataset(tmp_path / "obj.npz", files["images"])


def test_missing_image_and_bad_files(files, tmp_path):
    arrays = dict(files["image_arrays"])
    arrays["imgname"] = arrays["imgname"].copy()
    arrays["imgname"][2] = "imgs/nowhere.png"
    np.savez(tmp_path / "missing.npz", **arrays)
    ds = PreprocessedDataset(tmp_path / "missing.npz", files["images"], seq_len=2)
    ds[1]
    with pytest.raises(DatasetError, match="nowhere.png"):
        ds[2]
    with pytest.raises(DatasetError):
        load_preprocessed(tmp_path / "absent.npz")
    with pytest.raises(ValueError, match="sequence ids"):
        PreprocessedDataset(files["image"], files["images"], image_dataset=False)
    with pytest.raises(ValueError, match="seq_len"):
        PreprocessedDataset(files["image"], files["images"], seq_len=0)
    broken = dict(files["image_arrays"])
    del broken["part"]
    np.savez(tmp_path / "nopart.npz", **broken)
    with pytest.raises(ValueError, match="part"):
        PreprocessedDataset(tmp_path / "nopart.npz", files["images"])
