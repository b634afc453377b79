"""Tests for tar_core.geometry.camera: the CLIFF full-image camera maths.

Every expectation is computed here from the published formulas (or by OpenCV), never by calling
the function under test, and every function is run on numpy arrays and torch tensors with batch
dimensions.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch

from tar_core.geometry.camera import (
    BBOX_INFO_SCALE,
    CROP_SIZE,
    bbox_info,
    crop_to_full,
    default_focal,
    default_principal_point,
    full_to_crop,
    full_to_normalized,
    intrinsics,
    project,
)

BACKENDS = ["numpy", "torch"]
BATCH_SHAPES = [(), (5,), (2, 3)]
W_IMG, H_IMG = 1920, 1080


# --------------------------------------------------------------------------------------------- helpers
def as_backend(x, backend: str):
    """numpy float64 data (or a python scalar) as the requested kind of array."""
    x = np.array(x, dtype=np.float64)
    return torch.from_numpy(x) if backend == "torch" else x


def to_numpy(x, backend: str) -> np.ndarray:
    if backend == "torch":
        assert isinstance(x, torch.Tensor), f"torch in must give torch out, got {type(x)}"
        return x.detach().cpu().numpy()
    assert isinstance(x, np.ndarray), f"numpy in must give numpy out, got {type(x)}"
    return x


def ref_focal(w, h) -> float:
    return math.sqrt(w * w + h * h)


def ref_project(points: np.ndarray, fx, fy, cx, cy) -> np.ndarray:
    """Pinhole projection written out: u = fx X/Z + cx, v = fy Y/Z + cy."""
    X, Y, Z = points[..., 0], points[..., 1], points[..., 2]
    return np.stack([fx * X / Z + cx, fy * Y / Z + cy], axis=-1)


def random_boxes(shape, seed):
    """Box centres shape+(2,) inside a 1920x1080 image and sides shape in pixels."""
    rng = np.random.default_rng(seed)
    center = rng.uniform([0.0, 0.0], [W_IMG, H_IMG], size=tuple(shape) + (2,))
    size = rng.uniform(60.0, 900.0, size=tuple(shape))
    return center, size


def cv2_project(points: np.ndarray, K: np.ndarray) -> np.ndarray:
    """OpenCV's projection of (N, 3) points with no rotation, translation or distortion."""
    img, _ = cv2.projectPoints(
        np.ascontiguousarray(points, dtype=np.float64).reshape(-1, 1, 3),
        np.zeros(3),
        np.zeros(3),
        np.ascontiguousarray(K, dtype=np.float64),
        np.zeros(5),
    )
    return img.reshape(points.shape[:-1] + (2,))


def random_points_in_front(shape, seed):
    rng = np.random.default_rng(seed)
    xy = rng.uniform(-2.0, 2.0, size=tuple(shape) + (2,))
    z = rng.uniform(1.0, 10.0, size=tuple(shape) + (1,))
    return np.concatenate([xy, z], axis=-1)


# ------------------------------------------------------------------------------------ defaults / K
@pytest.mark.parametrize("w, h", [(1920, 1080), (1080, 1920), (640, 480), (1, 1), (4096.0, 2160.0)])
def test_default_focal_is_image_diagonal(w, h):
    f = default_focal(w, h)
    assert isinstance(f, float)
    assert f == pytest.approx(math.hypot(w, h), rel=1e-15)
    assert f == pytest.approx(ref_focal(w, h), rel=1e-15)


def test_default_focal_known_values():
    assert default_focal(3, 4) == pytest.approx(5.0, abs=1e-12)
    assert default_focal(1920, 1080) == pytest.approx(2202.9071700822983, rel=1e-14)


@pytest.mark.parametrize("w, h", [(1920, 1080), (1080, 1920), (641, 481)])
def test_default_principal_point_is_image_centre(w, h):
    cx, cy = default_principal_point(w, h)
    assert (cx, cy) == (w / 2.0, h / 2.0)
    assert isinstance(cx, float) and isinstance(cy, float)


def test_intrinsics_matrix():
    K = intrinsics(1000.0, (320.0, 240.0))
    assert K.dtype == np.float64 and K.shape == (3, 3)
    np.testing.assert_array_equal(K, [[1000.0, 0.0, 320.0], [0.0, 1000.0, 240.0], [0.0, 0.0, 1.0]])
    K2 = intrinsics(1000.0, (320.0, 240.0), focal_y=900.0)
    np.testing.assert_array_equal(K2, [[1000.0, 0.0, 320.0], [0.0, 900.0, 240.0], [0.0, 0.0, 1.0]])


# ------------------------------------------------------------------------------------ bbox_info
def ref_bbox_info(center, b, f, pp):
    pp = np.asarray(pp, dtype=np.float64)
    cx, cy = center[..., 0], center[..., 1]
    icx, icy = pp[..., 0], pp[..., 1]
    dx = (cx - icx) / f * 2.8
    dy = (cy - icy) / f * 2.8
    ds = (b - 0.24 * f) / (0.06 * f)
    dx, dy, ds = np.broadcast_arrays(dx, dy, ds)
    return np.stack([dx, dy, ds], axis=-1)


def test_bbox_info_constant():
    assert BBOX_INFO_SCALE == 2.8
    assert CROP_SIZE == 256


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape", BATCH_SHAPES)
@pytest.mark.parametrize("per_item", [False, True], ids=["shared_camera", "camera_per_item"])
def test_bbox_info_matches_formula(backend, shape, per_item):
    center, size = random_boxes(shape, seed=1)
    rng = np.random.default_rng(2)
    if per_item:
        f = rng.uniform(800.0, 3000.0, size=shape)
        pp = rng.uniform([400.0, 200.0], [1500.0, 900.0], size=tuple(shape) + (2,))
        f_arg, pp_arg = as_backend(f, backend), as_backend(pp, backend)
    else:
        f = ref_focal(W_IMG, H_IMG)
        pp = (W_IMG / 2.0 + 17.0, H_IMG / 2.0 - 9.0)  # off-centre, to catch x/y mix-ups
        f_arg, pp_arg = f, pp
    out = to_numpy(bbox_info(as_backend(center, backend), as_backend(size, backend), f_arg, pp_arg), backend)
    assert out.shape == tuple(shape) + (3,)
    np.testing.assert_allclose(out, ref_bbox_info(center, size, f, pp), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_bbox_info_scalar_box_size_broadcasts(backend):
    center, _ = random_boxes((2, 3), seed=3)
    f, pp = 1500.0, (960.0, 540.0)
    out = to_numpy(bbox_info(as_backend(center, backend), 450.0, f, pp), backend)
    assert out.shape == (2, 3, 3)
    np.testing.assert_allclose(out, ref_bbox_info(center, 450.0, f, pp), rtol=1e-12)
    np.testing.assert_allclose(out[..., 2], (450.0 - 0.24 * f) / (0.06 * f))


@pytest.mark.parametrize("backend", BACKENDS)
def test_bbox_info_known_values(backend):
    f = 1000.0
    # Box centred on the principal point with b = 0.24 f: all zeros. b = 0.30 f: scale term 1.
    center = np.array([[500.0, 300.0], [500.0, 300.0], [600.0, 250.0]])
    size = np.array([240.0, 300.0, 240.0])
    out = to_numpy(bbox_info(as_backend(center, backend), as_backend(size, backend), f, (500.0, 300.0)), backend)
    np.testing.assert_allclose(out, [[0.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.28, -0.14, 0.0]], atol=1e-12)


# ------------------------------------------------------------------------------------ crop_to_full
def ref_crop_to_full(cam, center, b, f, pp):
    pp = np.asarray(pp, dtype=np.float64)
    s, tx, ty = cam[..., 0], cam[..., 1], cam[..., 2]
    bs = b * s
    Tz = 2.0 * f / bs
    Tx = tx + 2.0 * (center[..., 0] - pp[..., 0]) / bs
    Ty = ty + 2.0 * (center[..., 1] - pp[..., 1]) / bs
    return np.stack(np.broadcast_arrays(Tx, Ty, Tz), axis=-1)


def random_crop_cams(shape, seed):
    rng = np.random.default_rng(seed)
    s = rng.uniform(0.5, 1.5, size=tuple(shape) + (1,))
    t = rng.uniform(-0.3, 0.3, size=tuple(shape) + (2,))
    return np.concatenate([s, t], axis=-1)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape", BATCH_SHAPES)
@pytest.mark.parametrize("per_item", [False, True], ids=["shared_camera", "camera_per_item"])
def test_crop_to_full_matches_formula(backend, shape, per_item):
    cam = random_crop_cams(shape, seed=4)
    center, size = random_boxes(shape, seed=5)
    rng = np.random.default_rng(6)
    if per_item:
        f = rng.uniform(800.0, 3000.0, size=shape)
        pp = rng.uniform([400.0, 200.0], [1500.0, 900.0], size=tuple(shape) + (2,))
        f_arg, pp_arg = as_backend(f, backend), as_backend(pp, backend)
    else:
        f = ref_focal(W_IMG, H_IMG)
        pp = (W_IMG / 2.0 - 31.0, H_IMG / 2.0 + 12.0)
        f_arg, pp_arg = f, pp
    out = crop_to_full(as_backend(cam, backend), as_backend(center, backend), as_backend(size, backend), f_arg, pp_arg)
    out = to_numpy(out, backend)
    assert out.shape == tuple(shape) + (3,)
    np.testing.assert_allclose(out, ref_crop_to_full(cam, center, size, f, pp), rtol=1e-12, atol=1e-12)
    assert np.all(out[..., 2] > 0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_crop_to_full_known_values(backend):
    f, pp = 1000.0, (500.0, 300.0)
    cam = np.array([[1.0, 0.1, -0.2], [0.5, 0.0, 0.0]])
    center = np.array([[500.0, 300.0], [700.0, 200.0]])
    size = np.array([200.0, 400.0])
    out = crop_to_full(as_backend(cam, backend), as_backend(center, backend), as_backend(size, backend), f, pp)
    # Box on the principal point: T = (tx, ty, 2f/(b s)) = (0.1, -0.2, 10).
    # Second: b s = 200, Tz = 10, Tx = 2*200/200 = 2, Ty = 2*(-100)/200 = -1.
    np.testing.assert_allclose(to_numpy(out, backend), [[0.1, -0.2, 10.0], [2.0, -1.0, 10.0]], atol=1e-12)


def test_crop_to_full_torch_gradients():
    cam = torch.tensor([[0.9, 0.05, -0.1], [1.2, -0.2, 0.3]], dtype=torch.float64, requires_grad=True)
    center = torch.tensor([[700.0, 400.0], [1200.0, 600.0]], dtype=torch.float64)
    size = torch.tensor([300.0, 500.0], dtype=torch.float64)

    def fn(c):
        return crop_to_full(c, center, size, 2000.0, (960.0, 540.0))

    assert torch.autograd.gradcheck(fn, (cam,))


# ------------------------------------------------------------------------------------ project
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("points_shape", [(7,), (2, 7), (2, 3, 7)])
def test_project_matches_opencv(backend, points_shape):
    pts = random_points_in_front(points_shape, seed=7)
    K = intrinsics(1450.0, (955.0, 547.0), focal_y=1400.0)
    out = to_numpy(project(as_backend(pts, backend), K), backend)
    assert out.shape == tuple(points_shape) + (2,)
    np.testing.assert_allclose(out, cv2_project(pts, K), rtol=1e-10, atol=1e-8)
    np.testing.assert_allclose(out, ref_project(pts, 1450.0, 1400.0, 955.0, 547.0), rtol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_project_with_K_of_same_backend(backend):
    pts = random_points_in_front((2, 5), seed=8)
    K = intrinsics(1200.0, (640.0, 360.0))
    out = to_numpy(project(as_backend(pts, backend), as_backend(K, backend)), backend)
    np.testing.assert_allclose(out, cv2_project(pts, K), rtol=1e-10, atol=1e-8)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("batch", [(4,), (2, 3)])
def test_project_batched_K(backend, batch):
    pts = random_points_in_front(tuple(batch) + (6,), seed=9)
    rng = np.random.default_rng(10)
    n = int(np.prod(batch))
    Ks = np.stack(
        [
            intrinsics(rng.uniform(500, 3000), rng.uniform([200, 100], [1800, 1000]), rng.uniform(500, 3000))
            for _ in range(n)
        ]
    ).reshape(tuple(batch) + (3, 3))
    out = to_numpy(project(as_backend(pts, backend), as_backend(Ks, backend)), backend)
    assert out.shape == tuple(batch) + (6, 2)
    flat_pts, flat_K, flat_out = pts.reshape(n, 6, 3), Ks.reshape(n, 3, 3), out.reshape(n, 6, 2)
    for i in range(n):
        np.testing.assert_allclose(flat_out[i], cv2_project(flat_pts[i], flat_K[i]), rtol=1e-10, atol=1e-8)
    # Each entry really used its own camera: projecting with the first K alone differs.
    assert not np.allclose(flat_out[1], cv2_project(flat_pts[1], flat_K[0]))


def test_project_torch_float32_with_numpy_K():
    pts = random_points_in_front((3, 4), seed=11)
    K = intrinsics(1000.0, (500.0, 400.0))
    out = project(torch.from_numpy(pts.astype(np.float32)), K)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32
    np.testing.assert_allclose(out.numpy(), cv2_project(pts, K), rtol=1e-5, atol=1e-3)


def test_project_principal_point_lands_on_axis():
    K = intrinsics(800.0, (321.0, 123.0))
    out = project(np.array([[0.0, 0.0, 5.0], [1.0, -2.0, 4.0]]), K)
    np.testing.assert_allclose(out, [[321.0, 123.0], [321.0 + 200.0, 123.0 - 400.0]], atol=1e-12)


# ------------------------------------------------------------------------------------ crop coordinates
def ref_full_to_crop(p, center, b, crop=256):
    corner = center - b[..., None] / 2.0
    return (p - corner[..., None, :]) * (crop / b)[..., None, None]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape", BATCH_SHAPES)
@pytest.mark.parametrize("crop_size", [None, 224])
def test_full_to_crop_and_normalized_match_formula(backend, shape, crop_size):
    center, size = random_boxes(shape, seed=12)
    rng = np.random.default_rng(13)
    pts = rng.uniform(-100.0, 2000.0, size=tuple(shape) + (9, 2))
    crop = CROP_SIZE if crop_size is None else crop_size
    kwargs = {} if crop_size is None else {"crop_size": crop_size}
    args = (as_backend(pts, backend), as_backend(center, backend), as_backend(size, backend))
    crop_px = to_numpy(full_to_crop(*args, **kwargs), backend)
    norm = to_numpy(full_to_normalized(*args, **kwargs), backend)
    assert crop_px.shape == norm.shape == tuple(shape) + (9, 2)
    expected_crop = ref_full_to_crop(pts, center, np.asarray(size), crop)
    np.testing.assert_allclose(crop_px, expected_crop, rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(norm, 2.0 * expected_crop / crop - 1.0, rtol=1e-12, atol=1e-12)
    # Normalised coordinates do not depend on the crop resolution: 2 (p - c) / b.
    np.testing.assert_allclose(norm, 2.0 * (pts - center[..., None, :]) / np.asarray(size)[..., None, None], atol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_full_to_crop_box_corners(backend):
    center = np.array([[400.0, 300.0], [1000.0, 50.0]])
    size = np.array([200.0, 64.0])
    half = size[:, None] / 2.0
    # Top-left corner, centre, bottom-right corner of each box.
    pts = np.stack([center - half, center, center + half], axis=1)  # (2, 3, 2)
    args = (as_backend(pts, backend), as_backend(center, backend), as_backend(size, backend))
    crop_px = to_numpy(full_to_crop(*args), backend)
    norm = to_numpy(full_to_normalized(*args), backend)
    np.testing.assert_allclose(crop_px, np.broadcast_to([[0.0, 0.0], [128.0, 128.0], [256.0, 256.0]], (2, 3, 2)))
    np.testing.assert_allclose(norm, np.broadcast_to([[-1.0, -1.0], [0.0, 0.0], [1.0, 1.0]], (2, 3, 2)))


@pytest.mark.parametrize("backend", BACKENDS)
def test_full_to_crop_unbatched_scalar_box(backend):
    pts = np.array([[150.0, 250.0], [50.0, 0.0], [300.0, 120.0]])
    center = np.array([100.0, 200.0])
    out = to_numpy(full_to_crop(as_backend(pts, backend), as_backend(center, backend), 100.0), backend)
    # Corner (50, 150); scale 256/100.
    np.testing.assert_allclose(out, (pts - [50.0, 150.0]) * 2.56, atol=1e-12)
    norm = to_numpy(full_to_normalized(as_backend(pts, backend), as_backend(center, backend), 100.0), backend)
    np.testing.assert_allclose(norm, (pts - center) / 50.0, atol=1e-12)


# ------------------------------------------------------------------------------------ consistency
def make_scene(shape, seed, n_points=40, depth_scale=1.0, pp_offset=(0.0, 0.0)):
    """Bodies ~1.7 m tall at Tz in [3, 8] m, the box around their projection, and the crop
    camera that a weak-perspective camera of that box would give."""
    rng = np.random.default_rng(seed)
    shape = tuple(shape)
    f = ref_focal(W_IMG, H_IMG)
    icx, icy = W_IMG / 2.0 + pp_offset[0], H_IMG / 2.0 + pp_offset[1]
    body = np.stack(
        [
            rng.uniform(-0.3, 0.3, size=shape + (n_points,)),
            rng.uniform(-0.85, 0.85, size=shape + (n_points,)),
            depth_scale * rng.uniform(-0.15, 0.15, size=shape + (n_points,)),
        ],
        axis=-1,
    )
    Tz = rng.uniform(3.0, 8.0, size=shape)
    T = np.stack([rng.uniform(-0.3, 0.3, size=shape) * Tz, rng.uniform(-0.2, 0.2, size=shape) * Tz, Tz], -1)
    pix = ref_project(body + T[..., None, :], f, f, icx, icy)
    lo, hi = pix.min(axis=-2), pix.max(axis=-2)
    center = (lo + hi) / 2.0
    b = (hi - lo).max(axis=-1) * 1.2
    s = 2.0 * f / (b * Tz)
    tx = T[..., 0] - 2.0 * (center[..., 0] - icx) / (b * s)
    ty = T[..., 1] - 2.0 * (center[..., 1] - icy) / (b * s)
    cam = np.stack([s, tx, ty], axis=-1)
    return {"body": body, "T": T, "f": f, "pp": (icx, icy), "center": center, "b": b, "cam": cam}


def weak_perspective_normalized(scene):
    s, tx, ty = scene["cam"][..., 0], scene["cam"][..., 1], scene["cam"][..., 2]
    t = np.stack([tx, ty], axis=-1)[..., None, :]
    return s[..., None, None] * (scene["body"][..., :2] + t)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape", [(6,), (2, 3)])
@pytest.mark.parametrize("pp_offset", [(0.0, 0.0), (40.0, -25.0)])
def test_crop_to_full_recovers_translation(backend, shape, pp_offset):
    sc = make_scene(shape, seed=14, pp_offset=pp_offset)
    T = crop_to_full(
        as_backend(sc["cam"], backend),
        as_backend(sc["center"], backend),
        as_backend(sc["b"], backend),
        sc["f"],
        sc["pp"],
    )
    np.testing.assert_allclose(to_numpy(T, backend), sc["T"], rtol=1e-12, atol=1e-12)
    # bbox_info of the box says how big and where it is, consistent with the same camera.
    info = to_numpy(
        bbox_info(as_backend(sc["center"], backend), as_backend(sc["b"], backend), sc["f"], sc["pp"]), backend
    )
    np.testing.assert_allclose(info, ref_bbox_info(sc["center"], sc["b"], sc["f"], sc["pp"]), rtol=1e-12)


def _full_projection_normalized(sc, backend):
    K = intrinsics(sc["f"], sc["pp"])
    pts = as_backend(sc["body"] + sc["T"][..., None, :], backend)
    pix = project(pts, K)
    return to_numpy(full_to_normalized(pix, as_backend(sc["center"], backend), as_backend(sc["b"], backend)), backend)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape", [(6,), (2, 3)])
def test_weak_perspective_is_exact_at_root_depth(backend, shape):
    # Points at the root's depth (Z = 0 in the body frame) project identically under the crop
    # weak-perspective camera and the full perspective camera.
    sc = make_scene(shape, seed=15, depth_scale=0.0, pp_offset=(25.0, 10.0))
    full = _full_projection_normalized(sc, backend)
    np.testing.assert_allclose(weak_perspective_normalized(sc), full, atol=1e-9)
    # The box was drawn around the projection, with a 20% margin.
    assert np.all(np.abs(full) <= 1.0 / 1.2 + 1e-9)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape", [(6,), (2, 3)])
def test_weak_perspective_approximates_full_projection(backend, shape):
    sc = make_scene(shape, seed=16)
    err = np.abs(weak_perspective_normalized(sc) - _full_projection_normalized(sc, backend))
    # The body's depth spread is +-0.15 m at 3-8 m: a few percent of the box (2 units wide).
    assert err.max() < 0.06
    # The error comes from the depth offset Z only: points close to the root's depth plane
    # (|Z| < 1 cm) match to a small fraction of that.
    near = np.abs(sc["body"][..., 2]) < 0.01
    assert near.sum() >= 5
    assert err[near].max() < 0.005
    # Shrinking the depth spread tenfold shrinks the error about tenfold.
    thin = make_scene(shape, seed=16, depth_scale=0.1)
    err_thin = np.abs(weak_perspective_normalized(thin) - _full_projection_normalized(thin, backend))
    assert err_thin.max() < 0.15 * err.max()


# ------------------------------------------------------------------------------------ kinds and dtypes
def test_numpy_and_torch_agree_everywhere():
    center, size = random_boxes((2, 3), seed=17)
    cam = random_crop_cams((2, 3), seed=18)
    pts3 = random_points_in_front((2, 3, 4), seed=19)
    f, pp = 1700.0, (950.0, 530.0)
    K = intrinsics(f, pp)
    outs = {}
    for backend in BACKENDS:
        c, b = as_backend(center, backend), as_backend(size, backend)
        pix = project(as_backend(pts3, backend), K)
        outs[backend] = [
            to_numpy(bbox_info(c, b, f, pp), backend),
            to_numpy(crop_to_full(as_backend(cam, backend), c, b, f, pp), backend),
            to_numpy(pix, backend),
            to_numpy(full_to_crop(pix, c, b), backend),
            to_numpy(full_to_normalized(pix, c, b), backend),
        ]
    for a, t in zip(outs["numpy"], outs["torch"], strict=True):
        np.testing.assert_allclose(a, t, rtol=1e-12, atol=1e-9)


def test_torch_float32_stays_float32():
    center = torch.tensor([[700.0, 400.0], [1200.0, 600.0]])
    size = torch.tensor([300.0, 500.0])
    cam = torch.tensor([[0.9, 0.05, -0.1], [1.2, -0.2, 0.3]])
    pts = torch.tensor([[[0.1, 0.2, 4.0], [-0.3, 0.5, 5.0]]] * 2)
    f, pp = 2000.0, (960.0, 540.0)
    pix = project(pts, intrinsics(f, pp))
    for out in (
        bbox_info(center, size, f, pp),
        crop_to_full(cam, center, size, f, pp),
        pix,
        full_to_crop(pix, center, size),
        full_to_normalized(pix, center, size),
    ):
        assert isinstance(out, torch.Tensor) and out.dtype == torch.float32
        assert torch.isfinite(out).all()
