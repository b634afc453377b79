"""Tests for tar_core.geometry.cropping: square boxes, crops consistent with tar_core.geometry.camera, normalisation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tar_core.geometry.camera import CROP_SIZE, bbox_info, default_focal, full_to_crop
from tar_core.geometry.cropping import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    CropBox,
    crop,
    crop_batch,
    crop_bbox_info,
    denormalize,
    normalize,
    square_box,
)

H_IMG, W_IMG = 240, 320
OFFSET = 10.0  # coordinates are encoded as value - OFFSET, so 0 (outside the image) stands out


def coordinate_image() -> np.ndarray:
    """float32 image whose pixel (row i, column j) holds (j + OFFSET, i + OFFSET, 1)."""
    ys, xs = np.mgrid[0:H_IMG, 0:W_IMG].astype(np.float32)
    return np.stack([xs + OFFSET, ys + OFFSET, np.ones_like(xs)], axis=-1)


def image_points_of_crop(box: CropBox, out_size: int) -> np.ndarray:
    """(S, S, 2) image point each crop pixel (row v, column u) samples, by inverting camera.full_to_crop."""
    v, u = np.mgrid[0:out_size, 0:out_size].astype(np.float64)
    crop_px = np.stack([u, v], axis=-1).reshape(-1, 2)
    # full_to_crop is affine: q = (p - corner) * S / b, so p = q * b / S + corner, with corner and
    # scale read off full_to_crop itself (the image origin and one unit step).
    origin = full_to_crop(np.zeros((1, 2)), box.center, np.float64(box.size), out_size)[0]
    scale = full_to_crop(np.ones((1, 2)), box.center, np.float64(box.size), out_size)[0] - origin
    points = (crop_px - origin) / scale
    np.testing.assert_allclose(full_to_crop(points, box.center, np.float64(box.size), out_size), crop_px, atol=1e-9)
    return points.reshape(out_size, out_size, 2)


BOXES = [
    ("inside", CropBox([160.0, 120.0], 100.0), 64),
    ("non-integer", CropBox([101.37, 87.61], 73.3), 50),
    ("upsampling", CropBox([200.25, 60.5], 20.0), 64),
    ("downsampling", CropBox([150.0, 110.0], 230.0), 32),
    ("past-top-left", CropBox([10.0, 5.0], 80.0), 64),
    ("past-bottom-right", CropBox([300.0, 230.0], 90.0), 48),
    ("larger-than-image", CropBox([160.0, 120.0], 500.0), 64),
    ("default-size", CropBox([160.0, 120.0], 150.0), CROP_SIZE),
]


@pytest.mark.parametrize(("name", "box", "out_size"), BOXES, ids=[b[0] for b in BOXES])
def test_crop_samples_where_full_to_crop_says(name, box, out_size):
    image = coordinate_image()
    out = crop(image, box, out_size) if out_size != CROP_SIZE else crop(image, box)
    assert out.shape == (out_size, out_size, 3) and out.dtype == np.float32
    points = image_points_of_crop(box, out_size)
    x, y = points[..., 0], points[..., 1]
    inside = (x >= 0) & (x <= W_IMG - 1) & (y >= 0) & (y <= H_IMG - 1)
    # Bilinear interpolation of a linear ramp is exact up to OpenCV's 1/32-pixel sampling grid.
    np.testing.assert_allclose(out[inside][:, 0], x[inside] + OFFSET, atol=0.04)
    np.testing.assert_allclose(out[inside][:, 1], y[inside] + OFFSET, atol=0.04)
    np.testing.assert_allclose(out[inside][:, 2], 1.0, atol=1e-6)
    # A pixel or more past the border there is nothing but zeros.
    outside = (x <= -1) | (x >= W_IMG) | (y <= -1) | (y >= H_IMG)
    assert np.all(out[outside] == 0)
    if name.startswith("past") or name == "larger-than-image":
        assert outside.sum() > 0 and inside.sum() > 0


def test_crop_of_a_uint8_checkerboard():
    cell = 16
    ys, xs = np.mgrid[0:H_IMG, 0:W_IMG]
    board = ((xs // cell + ys // cell) % 2).astype(bool)
    image = np.where(board[..., None], np.array([200, 60, 30], np.uint8), np.array([20, 120, 250], np.uint8))
    box = CropBox([37.3, 201.9], 140.0)  # past the left and bottom borders
    out = crop(image, box, 96)
    assert out.dtype == np.uint8 and out.shape == (96, 96, 3)
    points = image_points_of_crop(box, 96)
    x, y = points[..., 0], points[..., 1]
    # Away from the cell edges (by a pixel) bilinear sampling reads one cell's colour exactly.
    fx, fy = x % cell, y % cell
    clear = (np.minimum(fx, cell - fx) > 1.0) & (np.minimum(fy, cell - fy) > 1.0)
    inside = (x >= 0) & (x <= W_IMG - 1) & (y >= 0) & (y <= H_IMG - 1) & clear
    xi, yi = np.round(x[inside]).astype(int), np.round(y[inside]).astype(int)
    np.testing.assert_array_equal(out[inside], image[yi, xi])
    assert inside.sum() > 1000
    outside = (x <= -1) | (x >= W_IMG) | (y <= -1) | (y >= H_IMG)
    assert outside.sum() > 1000 and np.all(out[outside] == 0)


def test_identity_crop_returns_the_image():
    # A box whose corner is the image origin and whose side equals out_size maps pixels one to one.
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    out = crop(image, CropBox([32.0, 32.0], 64.0), 64)
    np.testing.assert_array_equal(out, image)
    # Shifted by whole pixels, it is a shifted copy with zeros coming in.
    out = crop(image, CropBox([35.0, 30.0], 64.0), 64)
    np.testing.assert_array_equal(out[2:, : 64 - 3], image[: 64 - 2, 3:])
    assert np.all(out[:1] == 0) and np.all(out[:, 64 - 2 :] == 0)


def test_crop_box_helpers():
    box = CropBox([100.0, 50.0], 40.0)
    np.testing.assert_array_equal(box.corner, [80.0, 30.0])
    np.testing.assert_array_equal(box.xyxy(), [80.0, 30.0, 120.0, 70.0])
    np.testing.assert_allclose(
        box.to_crop(np.array([[80.0, 30.0], [120.0, 70.0], [100.0, 50.0]])),
        [[0, 0], [CROP_SIZE, CROP_SIZE], [CROP_SIZE / 2, CROP_SIZE / 2]],
    )
    assert box.to_crop(np.zeros((2, 3, 2)), 64).shape == (2, 3, 2)
    with pytest.raises(ValueError):
        CropBox([1.0, 2.0], 0.0)
    with pytest.raises(ValueError):
        CropBox([1.0, 2.0, 3.0], 5.0)


# ------------------------------------------------------------------------------------------ square_box
def test_square_box_geometry():
    tall = square_box([10.0, 20.0, 50.0, 120.0])
    np.testing.assert_allclose(tall.center, [30.0, 70.0])
    assert tall.size == pytest.approx(1.2 * 100.0)
    wide = square_box(np.array([0.0, 0.0, 300.0, 100.0]), scale=1.0)
    np.testing.assert_allclose(wide.center, [150.0, 50.0])
    assert wide.size == pytest.approx(300.0)
    # The square contains the detection, centred on it.
    x0, y0, x1, y1 = square_box([5.0, 7.0, 25.0, 97.0], scale=1.5).xyxy()
    assert x0 < 5 and x1 > 25 and y0 < 7 and y1 > 97
    assert (x0 + x1) / 2 == pytest.approx(15.0) and (y1 - y0) == pytest.approx(135.0)
    with pytest.raises(ValueError):
        square_box([10.0, 10.0, 10.0, 20.0])
    with pytest.raises(ValueError):
        square_box([0.0, 0.0, 1.0, 1.0], scale=0.0)


# ------------------------------------------------------------------------------------------ normalize
def test_normalize_values_and_layout():
    crops = np.zeros((2, 4, 4, 3), dtype=np.uint8)
    crops[0, 1, 2] = [255, 0, 128]
    crops[1] = 255
    out = normalize(crops)
    assert out.shape == (2, 3, 4, 4) and out.dtype == torch.float32 and out.is_contiguous()
    mean, std = np.array(IMAGENET_MEAN), np.array(IMAGENET_STD)
    np.testing.assert_allclose(out[0, :, 1, 2].numpy(), (np.array([1.0, 0.0, 128 / 255]) - mean) / std, atol=1e-6)
    np.testing.assert_allclose(out[0, :, 0, 0].numpy(), -mean / std, atol=1e-6)
    np.testing.assert_allclose(out[1].numpy(), np.broadcast_to(((1 - mean) / std)[:, None, None], (3, 4, 4)), atol=1e-6)
    assert IMAGENET_MEAN == (0.485, 0.456, 0.406) and IMAGENET_STD == (0.229, 0.224, 0.225)
    torch.testing.assert_close(normalize(torch.from_numpy(crops)), out)
    with pytest.raises(ValueError):
        normalize(crops.astype(np.float32))
    with pytest.raises(ValueError):
        normalize(crops[0])


def test_crop_batch():
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (H_IMG, W_IMG, 3), dtype=np.uint8)
    boxes = [square_box([50.0, 40.0, 110.0, 200.0]), CropBox([300.0, 10.0], 64.0)]
    out = crop_batch(image, boxes)
    assert out.shape == (2, 3, CROP_SIZE, CROP_SIZE) and out.dtype == torch.float32
    torch.testing.assert_close(out, normalize(np.stack([crop(image, b) for b in boxes])))
    assert crop_batch(image, boxes, out_size=32).shape == (2, 3, 32, 32)
    assert crop_batch(image, []).shape == (0, 3, CROP_SIZE, CROP_SIZE)


# ------------------------------------------------------------------------------------------ bbox info
def test_bbox_info_of_a_crop_box():
    width, height = 1920, 1080
    focal = default_focal(width, height)
    # A box centred on the principal point whose side is 0.24 f has the zero bbox-info vector.
    centred = CropBox([width / 2, height / 2], 0.24 * focal)
    np.testing.assert_allclose(crop_bbox_info(centred, width, height), [0.0, 0.0, 0.0], atol=1e-12)
    # Off centre: the published formula, by hand.
    box = square_box([1500.0, 300.0, 1700.0, 800.0])
    expected = [(1600 - 960) / focal * 2.8, (550 - 540) / focal * 2.8, (600 - 0.24 * focal) / (0.06 * focal)]
    np.testing.assert_allclose(crop_bbox_info(box, width, height), expected, rtol=1e-12)
    np.testing.assert_allclose(bbox_info(box.center, np.float64(box.size), focal, (960.0, 540.0)), expected, rtol=1e-12)
    # Known intrinsics are used as given.
    np.testing.assert_allclose(
        crop_bbox_info(box, width, height, focal=1000.0, principal_point=(950.0, 530.0)),
        [650 / 1000 * 2.8, 20 / 1000 * 2.8, (600 - 240) / 60],
        rtol=1e-12,
    )


def test_denormalize_gives_back_the_crops():
    rng = np.random.default_rng(0)
    crops = rng.integers(0, 256, size=(3, 16, 16, 3), dtype=np.uint8)
    back = denormalize(normalize(crops))
    assert back.dtype == np.uint8 and back.shape == crops.shape
    np.testing.assert_array_equal(back, crops)
    # Values a normalised image cannot come back from (augmented colour) are clipped, not wrapped.
    assert denormalize(torch.full((1, 3, 2, 2), 10.0)).min() == 255
