"""Tests of tar_core.training.augment: every augmentation keeps the labels consistent with the crop and the camera."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch

from tar_core.body_model.model import JOINT_NAMES
from tar_core.geometry.camera import full_to_crop, intrinsics, project
from tar_core.geometry.cropping import IMAGENET_MEAN, IMAGENET_STD, CropBox, crop
from tar_core.geometry.rotations import axis_angle_to_matrix
from tar_core.training.augment import (
    FLIP_PERMUTATION,
    augment_item,
    colour_item,
    flip_item,
    occlude_item,
    rotate_scale_item,
)

S = 256
MEAN = np.array(IMAGENET_MEAN).reshape(3, 1, 1)
STD = np.array(IMAGENET_STD).reshape(3, 1, 1)
OFF = dict(p_flip=0.0, p_occlusion=0.0, colour=None, rot_std_deg=0.0, scale_std=0.0)


def _smooth_image(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A smooth, asymmetric float32 RGB picture in [0, 1] (H, W, 3)."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    rng = np.random.default_rng(seed)
    chans = []
    for _ in range(3):
        kx, ky, ph = rng.uniform(0.02, 0.06), rng.uniform(0.02, 0.06), rng.uniform(0, 6)
        chans.append(0.5 + 0.3 * np.sin(kx * x + ph) * np.cos(ky * y) + 0.1 * x / w)
    return np.stack(chans, -1).astype(np.float32)


def _normalise(crop_hwc: np.ndarray) -> np.ndarray:
    return ((crop_hwc.transpose(2, 0, 1) - MEAN) / STD).astype(np.float32)


def _make_item(t: int = 3, seed: int = 0, images=None) -> dict:
    rng = np.random.default_rng(seed)
    focal, pp = 500.0, np.array([210.0, 190.0])
    j3d = np.column_stack([rng.uniform(-0.6, 0.6, 24), rng.uniform(-0.9, 0.9, 24), rng.uniform(3.5, 4.5, 24)])
    K = intrinsics(focal, pp)
    j2d = project(j3d, K)
    centre = 0.5 * (j2d.min(0) + j2d.max(0))
    size = 1.2 * float((j2d.max(0) - j2d.min(0)).max())
    if images is None:
        images = rng.normal(size=(t, 3, S, S))
    rot = axis_angle_to_matrix(rng.normal(scale=0.5, size=(24, 3)))

    def f(x):
        return torch.as_tensor(np.asarray(x, dtype=np.float32))

    return {
        "images": f(images),
        "joints_2d": f(j2d),
        "joints_2d_conf": f(rng.uniform(0.5, 1.0, 24)),
        "joints_3d": f(j3d),
        "has_3d": torch.tensor(1.0),
        "rotmat": f(rot),
        "betas": f(rng.normal(size=10)),
        "has_smpl": torch.tensor(1.0),
        "center": f(centre),
        "size": f(size),
        "focal": f(focal),
        "principal": f(pp),
    }


def _K(item) -> np.ndarray:
    return intrinsics(float(item["focal"]), item["principal"].numpy().astype(np.float64))


def _crop_coords(item) -> np.ndarray:
    j = item["joints_2d"].numpy().astype(np.float64)
    return full_to_crop(j, item["center"].numpy().astype(np.float64), np.float64(item["size"]), S)


def _rz(angle_deg: float) -> np.ndarray:
    a = math.radians(angle_deg)
    return np.array([[math.cos(a), -math.sin(a), 0.0], [math.sin(a), math.cos(a), 0.0], [0.0, 0.0, 1.0]])


def test_flip_permutation_swaps_left_right():
    for i, j in enumerate(FLIP_PERMUTATION):
        a, b = JOINT_NAMES[i], JOINT_NAMES[j]
        if a.startswith("left_"):
            assert b == "right_" + a[5:]
        elif a.startswith("right_"):
            assert b == "left_" + a[6:]
        else:
            assert i == j
    assert sorted(FLIP_PERMUTATION) == list(range(24))


def test_flip_twice_is_identity():
    item = _make_item()
    rng = np.random.default_rng(1)
    once = augment_item(item, rng, **{**OFF, "p_flip": 1.0})
    twice = augment_item(once, rng, **{**OFF, "p_flip": 1.0})
    assert not torch.allclose(once["images"], item["images"])
    for k in ("images", "joints_2d", "joints_3d", "rotmat", "center", "joints_2d_conf", "betas", "size"):
        assert torch.allclose(twice[k], item[k], atol=1e-5), k


def test_flip_consistency_and_swap():
    item = _make_item()
    out = augment_item(item, np.random.default_rng(0), **OFF, flip=True)
    K = _K(out)
    j3d = out["joints_3d"].numpy().astype(np.float64)
    assert np.allclose(project(j3d, K), out["joints_2d"].numpy(), atol=1e-3)
    li, ri = JOINT_NAMES.index("left_wrist"), JOINT_NAMES.index("right_wrist")
    assert np.allclose(out["joints_3d"][li].numpy(), item["joints_3d"][ri].numpy() * [-1, 1, 1], atol=1e-6)
    assert np.allclose(out["joints_2d"][li, 0].item(), 2 * 210.0 - item["joints_2d"][ri, 0].item(), atol=1e-3)
    assert out["joints_2d_conf"][li] == item["joints_2d_conf"][ri]
    m = np.diag([-1.0, 1.0, 1.0])
    assert np.allclose(out["rotmat"][li].numpy(), m @ item["rotmat"][ri].numpy() @ m, atol=1e-6)
    assert np.allclose(out["rotmat"][0].numpy(), m @ item["rotmat"][0].numpy() @ m, atol=1e-6)
    # Crop coordinates mirror exactly like the image columns: u -> S - 1 - u.
    before, after = _crop_coords(item), _crop_coords(out)
    assert np.allclose(after[:, 0], S - 1 - before[FLIP_PERMUTATION, 0], atol=1e-3)
    assert np.allclose(after[:, 1], before[FLIP_PERMUTATION, 1], atol=1e-3)
    assert torch.equal(out["betas"], item["betas"])
    assert torch.equal(out["images"], torch.flip(item["images"], dims=[-1]))


def test_flip_matches_crop_of_mirrored_frame():
    frame = _smooth_image(400, 420)
    item = _make_item(t=1)
    box = CropBox(item["center"].numpy(), float(item["size"]))
    item["images"] = torch.from_numpy(_normalise(crop(frame, box, S)))[None]
    out = flip_item(item)
    ppx = float(item["principal"][0])
    mirrored = cv2.warpAffine(frame, np.array([[-1.0, 0, 2 * ppx], [0, 1, 0]]), (420, 400), flags=cv2.INTER_LINEAR)
    expect = _normalise(crop(mirrored, CropBox(out["center"].numpy(), float(out["size"])), S))
    # cv2's bilinear weights are quantised to 1/32 px, hence the few-1e-3 residue; one crop pixel off is ~1e-2.
    assert np.abs(out["images"][0].numpy() - expect).max() < 5e-3
    naive = CropBox(np.array([2 * ppx - float(item["center"][0]), float(item["center"][1])]), float(out["size"]))
    assert np.abs(out["images"][0].numpy() - _normalise(crop(mirrored, naive, S))).max() > 1e-2


@pytest.mark.parametrize("angle", [25.0, -50.0])
def test_rotation_consistency(angle):
    item = _make_item()
    out = augment_item(item, np.random.default_rng(0), **OFF, angle_deg=angle)
    K = _K(out)
    assert np.allclose(project(out["joints_3d"].numpy().astype(np.float64), K), out["joints_2d"].numpy(), atol=1e-3)
    r2 = _rz(angle)[:2, :2]
    before, after = _crop_coords(item), _crop_coords(out)
    assert np.allclose(after - S / 2, (before - S / 2) @ r2.T, atol=1e-3)
    assert np.allclose(out["rotmat"][0].numpy(), _rz(angle) @ item["rotmat"][0].numpy(), atol=1e-5)
    assert torch.allclose(out["rotmat"][1:], item["rotmat"][1:])
    assert torch.allclose(out["joints_3d"], item["joints_3d"] @ torch.as_tensor(_rz(angle).T, dtype=torch.float32),
                          atol=1e-5)  # fmt: skip
    assert torch.allclose(out["size"], item["size"])


def test_rotation_samples_from_rng_within_limits():
    item = _make_item(t=1)
    for seed in range(5):
        out = augment_item(item, np.random.default_rng(seed), **{**OFF, "rot_std_deg": 30.0})
        r = out["rotmat"][0].numpy() @ item["rotmat"][0].numpy().T
        angle = math.degrees(math.atan2(r[1, 0], r[0, 0]))
        assert abs(angle) <= 60.0 + 1e-3
        assert np.allclose(r, _rz(angle), atol=1e-5)


def test_rotation_warps_image_about_crop_centre():
    images = np.zeros((2, 3, S, S), dtype=np.float32)
    images[:, :, 128, 160] = 5.0  # a dot 32 px right of the crop centre (128, 128)
    item = _make_item(t=2, images=images)
    out = rotate_scale_item(item, 90.0)
    img = out["images"][:, 0].numpy()
    for t in range(2):
        y, x = np.unravel_index(np.argmax(img[t]), img[t].shape)
        assert (x, y) == (128, 160)  # +90 deg (clockwise on screen): right -> down
    assert torch.equal(out["images"][0], out["images"][1])


def test_rotation_matches_crop_of_rolled_frame():
    frame = _smooth_image(400, 420, seed=3)
    item = _make_item(t=1)
    box = CropBox(item["center"].numpy(), float(item["size"]))
    item["images"] = torch.from_numpy(_normalise(crop(frame, box, S)))[None]
    angle = 20.0
    out = rotate_scale_item(item, angle, 1.1)
    pp = item["principal"].numpy().astype(np.float64)
    r2 = _rz(angle)[:2, :2]
    m = np.concatenate([r2, (pp - r2 @ pp)[:, None]], 1)  # x' = pp + R2 (x - pp)
    rolled = cv2.warpAffine(frame, m, (420, 400), flags=cv2.INTER_LINEAR)
    expect = _normalise(crop(rolled, CropBox(out["center"].numpy(), float(out["size"])), S))
    got = out["images"][0].numpy()
    inner = slice(80, 176)  # away from the frame's and the crop's borders
    # Two bilinear resamplings leave ~2e-3; a box centre one image pixel off gives ~5e-2.
    assert np.abs(got[:, inner, inner] - expect[:, inner, inner]).max() < 1e-2


@pytest.mark.parametrize("s", [0.8, 1.2])
def test_scale_only(s):
    item = _make_item()
    out = augment_item(item, np.random.default_rng(0), **OFF, scale=s)
    before, after = _crop_coords(item), _crop_coords(out)
    assert np.allclose(after - S / 2, s * (before - S / 2), atol=1e-3)
    assert np.isclose(float(out["size"]), float(item["size"]) / s, rtol=1e-6)
    for k in ("joints_2d", "joints_3d", "rotmat", "center"):
        assert torch.allclose(out[k], item[k]), k


def test_scale_warps_image_about_crop_centre():
    images = np.zeros((1, 3, S, S), dtype=np.float32)
    images[:, :, 128 - 40, 128 + 20] = 5.0
    out = rotate_scale_item(_make_item(t=1, images=images), 0.0, 1.25)
    y, x = np.unravel_index(np.argmax(out["images"][0, 0].numpy()), (S, S))
    assert (x, y) == (128 + 25, 128 - 50)


def test_colour_noise():
    item = _make_item()
    item["images"] = item["images"].clamp(-1.5, 1.5)
    out = augment_item(item, np.random.default_rng(4), **{**OFF, "colour": (0.6, 1.4)})
    img = out["images"]
    assert torch.isfinite(img).all()
    lo = torch.as_tensor((0 - MEAN) / STD, dtype=torch.float32)
    hi = torch.as_tensor((1 - MEAN) / STD, dtype=torch.float32)
    assert (img >= lo - 1e-5).all() and (img <= hi + 1e-5).all()
    assert not torch.allclose(img.mean(dim=(0, 2, 3)), item["images"].mean(dim=(0, 2, 3)), atol=1e-3)
    # One factor per channel, the same in every frame.
    raw = colour_item(item, [1.2, 1.0, 0.8])["images"]
    assert torch.allclose(raw[:, 1], ((item["images"][:, 1] * STD[1, 0, 0] + MEAN[1, 0, 0]).clamp(0, 1)
                                      - MEAN[1, 0, 0]) / STD[1, 0, 0], atol=1e-5)  # fmt: skip
    for k in ("joints_2d", "joints_3d", "center", "size"):
        assert torch.equal(out[k], item[k])


def test_occlusion_changes_one_rectangle():
    item = _make_item()
    out = augment_item(item, np.random.default_rng(5), **{**OFF, "p_occlusion": 1.0})
    changed = (out["images"] != item["images"]).any(dim=1)  # (T, S, S)
    assert torch.equal(changed[0], changed[1]) and torch.equal(changed[0], changed[2])
    ys, xs = torch.nonzero(changed[0], as_tuple=True)
    y0, y1, x0, x1 = ys.min(), ys.max(), xs.min(), xs.max()
    assert changed[0, y0 : y1 + 1, x0 : x1 + 1].all()
    area = int((y1 - y0 + 1) * (x1 - x0 + 1))
    assert area == int(changed[0].sum())
    assert 0.05 * S * S * 0.95 <= area <= 0.30 * S * S * 1.05
    patch = out["images"][:, :, y0 : y1 + 1, x0 : x1 + 1]
    assert torch.allclose(patch, patch[:, :, :1, :1].expand_as(patch))
    direct = occlude_item(item, (10, 20, 5, 7), [0.0, 0.0, 0.0])
    assert ((direct["images"] != item["images"]).any(dim=1)).sum() == 3 * 35


def test_same_augmentation_for_all_frames():
    frame = torch.as_tensor(np.random.default_rng(0).normal(size=(1, 3, S, S)), dtype=torch.float32)
    item = _make_item(t=4, images=frame.repeat(4, 1, 1, 1).numpy())
    out = augment_item(item, np.random.default_rng(7), p_flip=1.0, p_occlusion=1.0, angle_deg=33.0, scale=0.9)
    for t in range(1, 4):
        assert torch.equal(out["images"][t], out["images"][0])
    assert out["images"].shape == item["images"].shape and out["images"].dtype == torch.float32


def test_full_augmentation_keeps_projection_and_input():
    item = _make_item()
    snapshot = {k: v.clone() for k, v in item.items()}
    for seed in range(4):
        out = augment_item(item, np.random.default_rng(seed))
        K = _K(out)
        proj = project(out["joints_3d"].numpy().astype(np.float64), K)
        assert np.allclose(proj, out["joints_2d"].numpy(), atol=1e-3)
        rot = out["rotmat"].numpy()
        assert np.allclose(rot @ np.swapaxes(rot, -1, -2), np.eye(3), atol=1e-5)
        assert np.allclose(np.linalg.det(rot), 1.0, atol=1e-5)
    for k, v in snapshot.items():
        assert torch.equal(item[k], v), k
