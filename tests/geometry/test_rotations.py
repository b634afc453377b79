"""Tests for tar_core.geometry.rotations, checked against scipy's Rotation (an independent implementation).

Every conversion is exercised for numpy arrays and torch tensors and for several batch shapes.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from tar_core.geometry.rotations import (
    axis_angle_to_matrix,
    axis_angle_to_quaternion,
    matrix_to_axis_angle,
    matrix_to_quaternion,
    matrix_to_rot6d,
    quaternion_to_axis_angle,
    quaternion_to_matrix,
    rot6d_to_matrix,
)

BACKENDS = ["numpy", "torch"]
BATCH_SHAPES = [(5,), (2, 3), (2, 1, 4)]
ATOL64 = 1e-10


# --------------------------------------------------------------------------------------------- helpers
def as_backend(x: np.ndarray, backend: str):
    """A float64 numpy array as the requested kind of array (a copy, never a view)."""
    x = np.array(x, dtype=np.float64)
    return torch.from_numpy(x) if backend == "torch" else x


def to_numpy(x, backend: str) -> np.ndarray:
    """Back to numpy, asserting the kind of array matches the kind that went in."""
    if backend == "torch":
        assert isinstance(x, torch.Tensor), f"torch in must give torch out, got {type(x)}"
        return x.detach().cpu().numpy()
    assert isinstance(x, np.ndarray), f"numpy in must give numpy out, got {type(x)}"
    return x


def special_rotvecs() -> np.ndarray:
    """(K, 3) rotation vectors at the awkward angles: zero, tiny, near and at pi, beyond pi."""
    rng = np.random.default_rng(7)
    axes = rng.normal(size=(12, 3))
    axes /= np.linalg.norm(axes, axis=-1, keepdims=True)
    angles = np.array([0.0, 1e-12, 1e-8, 5e-7, 2e-6, 1e-4, 0.3, np.pi - 1e-3, np.pi - 1e-7, np.pi, np.pi + 0.2, 5.5])
    rv = axes * angles[:, None]
    # Rotations about the coordinate axes by pi: the quaternion has w = 0 and two zero components.
    coord_pi = np.eye(3) * np.pi
    return np.concatenate([rv, coord_pi, -coord_pi], axis=0)  # (18, 3)


def random_rotvecs(shape, seed=0, max_angle=np.pi) -> np.ndarray:
    """shape + (3,) random rotation vectors with angles in (0, max_angle)."""
    rng = np.random.default_rng(seed)
    axes = rng.normal(size=tuple(shape) + (3,))
    axes /= np.linalg.norm(axes, axis=-1, keepdims=True)
    return axes * rng.uniform(0.0, max_angle, size=tuple(shape) + (1,))


def random_matrices(shape, seed=0) -> np.ndarray:
    """shape + (3, 3) uniformly random rotation matrices (scipy)."""
    rng = np.random.default_rng(seed)
    n = int(np.prod(shape))
    quats = rng.normal(size=(n, 4))
    return Rotation.from_quat(quats).as_matrix().reshape(tuple(shape) + (3, 3))


def scipy_matrix(rotvecs: np.ndarray) -> np.ndarray:
    """Reference rotation matrices for any batch shape of rotation vectors."""
    flat = rotvecs.reshape(-1, 3)
    return Rotation.from_rotvec(flat).as_matrix().reshape(rotvecs.shape[:-1] + (3, 3))


def scipy_quat_wxyz(mats: np.ndarray) -> np.ndarray:
    """Reference (w, x, y, z) quaternions with w >= 0 (scipy stores x, y, z, w)."""
    xyzw = Rotation.from_matrix(mats.reshape(-1, 3, 3)).as_quat()
    wxyz = np.concatenate([xyzw[:, 3:], xyzw[:, :3]], axis=-1)
    wxyz = np.where(wxyz[:, :1] < 0, -wxyz, wxyz)
    return wxyz.reshape(mats.shape[:-2] + (4,))


def assert_proper_rotation(R: np.ndarray, atol: float = 1e-10) -> None:
    eye = np.broadcast_to(np.eye(3), R.shape)
    np.testing.assert_allclose(np.swapaxes(R, -1, -2) @ R, eye, atol=atol)
    np.testing.assert_allclose(np.linalg.det(R), 1.0, atol=atol)


def rz(theta: float) -> np.ndarray:
    c, s = np.cos(theta), np.sin(theta)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


# ------------------------------------------------------------------------------------ axis-angle
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape", BATCH_SHAPES)
def test_axis_angle_to_matrix_matches_scipy_random(backend, shape):
    rv = random_rotvecs(shape, seed=1, max_angle=2 * np.pi)
    R = to_numpy(axis_angle_to_matrix(as_backend(rv, backend)), backend)
    assert R.shape == tuple(shape) + (3, 3)
    np.testing.assert_allclose(R, scipy_matrix(rv), atol=ATOL64)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape", [(18,), (2, 9), (3, 3, 2)])
def test_axis_angle_to_matrix_matches_scipy_special_angles(backend, shape):
    rv = special_rotvecs().reshape(tuple(shape) + (3,))
    R = to_numpy(axis_angle_to_matrix(as_backend(rv, backend)), backend)
    np.testing.assert_allclose(R, scipy_matrix(rv), atol=ATOL64)
    assert_proper_rotation(R)


@pytest.mark.parametrize("backend", BACKENDS)
def test_axis_angle_to_matrix_zero_is_exact_identity(backend):
    R = to_numpy(axis_angle_to_matrix(as_backend(np.zeros((2, 3, 3)), backend)), backend)
    assert np.array_equal(R, np.broadcast_to(np.eye(3), (2, 3, 3, 3)))


@pytest.mark.parametrize("backend", BACKENDS)
def test_axis_angle_to_matrix_known_value(backend):
    # +90 degrees about +z maps +x to +y (column-vector convention v' = R v).
    R = to_numpy(axis_angle_to_matrix(as_backend([0.0, 0.0, np.pi / 2], backend)), backend)
    np.testing.assert_allclose(R, rz(np.pi / 2), atol=1e-12)
    np.testing.assert_allclose(R @ np.array([1.0, 0.0, 0.0]), [0.0, 1.0, 0.0], atol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape", BATCH_SHAPES)
def test_axis_angle_to_quaternion_matches_scipy(backend, shape):
    rv = random_rotvecs(shape, seed=2, max_angle=np.pi - 1e-3)  # w > 0, so no sign ambiguity
    q = to_numpy(axis_angle_to_quaternion(as_backend(rv, backend)), backend)
    assert q.shape == tuple(shape) + (4,)
    np.testing.assert_allclose(q, scipy_quat_wxyz(scipy_matrix(rv)), atol=ATOL64)


TINY_ANGLES = np.array([1e-30, 1e-12, 1e-8, 5e-7, 9.99e-7, 1.01e-6, 1e-5, 1e-3])


@pytest.mark.parametrize("backend", BACKENDS)
def test_small_angle_series_are_accurate_to_relative_precision(backend):
    # Both sides of the Taylor-series switch: checked relative to the (tiny) components, so an
    # error in the series terms would show even though it is invisible in absolute terms.
    axis = np.array([0.48, -0.6, 0.64])
    rv = axis * TINY_ANGLES[:, None]
    q = to_numpy(axis_angle_to_quaternion(as_backend(rv, backend)), backend)
    half = TINY_ANGLES / 2.0
    np.testing.assert_allclose(q[:, 1:], axis * np.sin(half)[:, None], rtol=1e-14, atol=0)
    np.testing.assert_allclose(q[:, 0], np.cos(half), rtol=1e-15, atol=0)
    aa = to_numpy(quaternion_to_axis_angle(as_backend(q, backend)), backend)
    np.testing.assert_allclose(aa, rv, rtol=1e-13, atol=0)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape", BATCH_SHAPES)
def test_matrix_to_axis_angle_inverts_below_pi(backend, shape):
    # Away from pi the axis-angle is unique, so it must come back exactly.
    rv = random_rotvecs(shape, seed=3, max_angle=np.pi - 1e-2)
    aa = to_numpy(matrix_to_axis_angle(as_backend(scipy_matrix(rv), backend)), backend)
    assert aa.shape == tuple(shape) + (3,)
    np.testing.assert_allclose(aa, rv, atol=1e-9)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape", [(18,), (2, 9)])
def test_matrix_to_axis_angle_round_trip_special(backend, shape):
    # Near and at pi the axis may flip sign, so compare the rotations, not the vectors.
    rv = special_rotvecs().reshape(tuple(shape) + (3,))
    R = scipy_matrix(rv)
    aa = to_numpy(matrix_to_axis_angle(as_backend(R, backend)), backend)
    assert np.all(np.isfinite(aa))
    assert np.all(np.linalg.norm(aa, axis=-1) <= np.pi + 1e-9)
    np.testing.assert_allclose(scipy_matrix(aa), R, atol=1e-9)
    # ...and through this library's own forward map.
    R_back = to_numpy(axis_angle_to_matrix(as_backend(aa, backend)), backend)
    np.testing.assert_allclose(R_back, R, atol=1e-9)


@pytest.mark.parametrize("backend", BACKENDS)
def test_matrix_to_axis_angle_wraps_large_angles(backend):
    # A rotation by 1.5*pi about +z is the rotation by 0.5*pi about -z.
    R = rz(1.5 * np.pi)
    aa = to_numpy(matrix_to_axis_angle(as_backend(R, backend)), backend)
    np.testing.assert_allclose(aa, [0.0, 0.0, -0.5 * np.pi], atol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_quaternion_to_axis_angle_handles_negative_w(backend):
    rv = random_rotvecs((6,), seed=4, max_angle=np.pi - 1e-2)
    q = scipy_quat_wxyz(scipy_matrix(rv))
    # -q is the same rotation; the result must still be the short (angle <= pi) axis-angle.
    aa = to_numpy(quaternion_to_axis_angle(as_backend(-q, backend)), backend)
    np.testing.assert_allclose(aa, rv, atol=1e-10)
    # A non-unit quaternion is normalised first.
    aa_scaled = to_numpy(quaternion_to_axis_angle(as_backend(3.0 * q, backend)), backend)
    np.testing.assert_allclose(aa_scaled, rv, atol=1e-10)


# ------------------------------------------------------------------------------------ quaternions
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape", BATCH_SHAPES)
def test_matrix_to_quaternion_matches_scipy(backend, shape):
    R = random_matrices(shape, seed=5)
    q = to_numpy(matrix_to_quaternion(as_backend(R, backend)), backend)
    assert q.shape == tuple(shape) + (4,)
    assert np.all(q[..., 0] >= 0.0)
    np.testing.assert_allclose(np.linalg.norm(q, axis=-1), 1.0, atol=1e-12)
    np.testing.assert_allclose(q, scipy_quat_wxyz(R), atol=ATOL64)


@pytest.mark.parametrize("backend", BACKENDS)
def test_matrix_to_quaternion_special_angles(backend):
    rv = special_rotvecs()
    R = scipy_matrix(rv)
    q = to_numpy(matrix_to_quaternion(as_backend(R, backend)), backend)
    ref = scipy_quat_wxyz(R)
    assert np.all(q[:, 0] >= 0.0)
    # q and -q are the same rotation; at w == 0 (angle pi) either sign is fine.
    np.testing.assert_allclose(np.abs(np.sum(q * ref, axis=-1)), 1.0, atol=1e-10)
    unambiguous = ref[:, 0] > 1e-6
    np.testing.assert_allclose(q[unambiguous], ref[unambiguous], atol=1e-10)
    np.testing.assert_allclose(q[0], [1.0, 0.0, 0.0, 0.0], atol=0)  # zero rotation: exact


@pytest.mark.parametrize("backend", BACKENDS)
def test_matrix_to_quaternion_known_values(backend):
    R = np.stack([np.eye(3), rz(np.pi / 2), np.diag([1.0, -1.0, -1.0])])
    q = to_numpy(matrix_to_quaternion(as_backend(R, backend)), backend)
    h = np.sqrt(0.5)
    np.testing.assert_allclose(q, [[1, 0, 0, 0], [h, 0, 0, h], [0, 1, 0, 0]], atol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape", BATCH_SHAPES)
def test_quaternion_to_matrix_matches_scipy_and_normalises(backend, shape):
    rng = np.random.default_rng(6)
    q = rng.normal(size=tuple(shape) + (4,)) * rng.uniform(0.2, 5.0, size=tuple(shape) + (1,))
    R = to_numpy(quaternion_to_matrix(as_backend(q, backend)), backend)
    assert R.shape == tuple(shape) + (3, 3)
    xyzw = np.concatenate([q[..., 1:], q[..., :1]], axis=-1).reshape(-1, 4)
    ref = Rotation.from_quat(xyzw).as_matrix().reshape(R.shape)
    np.testing.assert_allclose(R, ref, atol=ATOL64)
    assert_proper_rotation(R)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape", BATCH_SHAPES)
def test_quaternion_round_trips(backend, shape):
    R = random_matrices(shape, seed=8)
    q = matrix_to_quaternion(as_backend(R, backend))
    R_back = to_numpy(quaternion_to_matrix(q), backend)
    np.testing.assert_allclose(R_back, R, atol=ATOL64)
    # The other way round: a unit quaternion with w >= 0 comes back unchanged.
    q_np = to_numpy(q, backend)
    q_again = to_numpy(matrix_to_quaternion(quaternion_to_matrix(q)), backend)
    np.testing.assert_allclose(q_again, q_np, atol=ATOL64)


@pytest.mark.parametrize("backend", BACKENDS)
def test_quaternion_round_trip_special(backend):
    R = scipy_matrix(special_rotvecs())
    R_back = to_numpy(quaternion_to_matrix(matrix_to_quaternion(as_backend(R, backend))), backend)
    np.testing.assert_allclose(R_back, R, atol=ATOL64)


# ------------------------------------------------------------------------------------ 6D
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape", BATCH_SHAPES)
def test_rot6d_round_trip(backend, shape):
    R = random_matrices(shape, seed=9)
    r6 = matrix_to_rot6d(as_backend(R, backend))
    assert tuple(r6.shape) == tuple(shape) + (6,)
    R_back = to_numpy(rot6d_to_matrix(r6), backend)
    np.testing.assert_allclose(R_back, R, atol=ATOL64)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape", BATCH_SHAPES)
def test_rot6d_layout_is_first_two_columns(backend, shape):
    R = random_matrices(shape, seed=10)
    r6 = to_numpy(matrix_to_rot6d(as_backend(R, backend)), backend)
    expected = np.stack([R[..., 0, 0], R[..., 1, 0], R[..., 2, 0], R[..., 0, 1], R[..., 1, 1], R[..., 2, 1]], axis=-1)
    np.testing.assert_array_equal(r6, expected)


@pytest.mark.parametrize("backend", BACKENDS)
def test_rot6d_layout_known_value(backend):
    # Rz(90): columns are (0, 1, 0) and (-1, 0, 0); rows would give (0, -1, 0), (1, 0, 0).
    r6 = to_numpy(matrix_to_rot6d(as_backend(rz(np.pi / 2), backend)), backend)
    np.testing.assert_allclose(r6, [0.0, 1.0, 0.0, -1.0, 0.0, 0.0], atol=1e-15)
    R = to_numpy(rot6d_to_matrix(as_backend([0.0, 1.0, 0.0, -1.0, 0.0, 0.0], backend)), backend)
    np.testing.assert_allclose(R, rz(np.pi / 2), atol=1e-15)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape", BATCH_SHAPES)
def test_rot6d_to_matrix_of_arbitrary_vector_is_gram_schmidt(backend, shape):
    rng = np.random.default_rng(11)
    x = rng.normal(size=tuple(shape) + (6,)) * 3.0
    R = to_numpy(rot6d_to_matrix(as_backend(x, backend)), backend)
    assert R.shape == tuple(shape) + (3, 3)
    assert_proper_rotation(R)
    a1, a2 = x[..., :3], x[..., 3:]
    # First column: a1 normalised. Second column: a2 minus its a1 part, normalised.
    b1 = a1 / np.linalg.norm(a1, axis=-1, keepdims=True)
    np.testing.assert_allclose(R[..., :, 0], b1, atol=1e-12)
    u2 = a2 - np.sum(a2 * b1, axis=-1, keepdims=True) * b1
    np.testing.assert_allclose(R[..., :, 1], u2 / np.linalg.norm(u2, axis=-1, keepdims=True), atol=1e-12)
    np.testing.assert_allclose(R[..., :, 2], np.cross(R[..., :, 0], R[..., :, 1]), atol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_rot6d_to_matrix_ignores_scale_and_shear_of_columns(backend):
    R = random_matrices((7,), seed=12)
    c0, c1 = R[..., :, 0], R[..., :, 1]
    # Positive scalings of column 0 and adding any multiple of column 0 to column 1 leave the
    # Gram-Schmidt result unchanged.
    x = np.concatenate([2.5 * c0, 0.3 * c1 - 4.0 * c0], axis=-1)
    R_back = to_numpy(rot6d_to_matrix(as_backend(x, backend)), backend)
    np.testing.assert_allclose(R_back, R, atol=1e-12)


# ------------------------------------------------------------------------------------ gradients
def test_axis_angle_to_matrix_gradient_at_zero_is_finite_and_correct():
    aa = torch.zeros(2, 3, 3, dtype=torch.float64, requires_grad=True)
    W = torch.from_numpy(np.random.default_rng(13).normal(size=(2, 3, 3, 3)))
    (axis_angle_to_matrix(aa) * W).sum().backward()
    g = aa.grad
    assert torch.isfinite(g).all()
    # Near zero R = I + [aa]_x, so d(sum W*R)/d aa = (W21 - W12, W02 - W20, W10 - W01).
    expected = torch.stack(
        [W[..., 2, 1] - W[..., 1, 2], W[..., 0, 2] - W[..., 2, 0], W[..., 1, 0] - W[..., 0, 1]], dim=-1
    )
    torch.testing.assert_close(g, expected, atol=1e-12, rtol=0)


def test_axis_angle_to_matrix_gradient_at_zero_float32():
    aa = torch.zeros(4, 3, dtype=torch.float32, requires_grad=True)
    axis_angle_to_matrix(aa)[..., 1, 0].sum().backward()  # R10 = +aa_z near zero
    assert torch.isfinite(aa.grad).all()
    torch.testing.assert_close(aa.grad, torch.tensor([[0.0, 0.0, 1.0]] * 4))


def test_axis_angle_to_matrix_gradcheck():
    aa = torch.from_numpy(random_rotvecs((3,), seed=14)).requires_grad_(True)
    tiny = torch.tensor([[1e-3, -2e-3, 5e-4]], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(axis_angle_to_matrix, (aa,))
    assert torch.autograd.gradcheck(axis_angle_to_matrix, (tiny,))


def test_rot6d_to_matrix_gradients():
    x = torch.from_numpy(np.random.default_rng(15).normal(size=(2, 3, 6))).requires_grad_(True)
    assert torch.autograd.gradcheck(rot6d_to_matrix, (x,))
    # ...and at an exact rotation's 6D (the identity), which a network often starts from.
    ident = torch.tensor([[1.0, 0.0, 0.0, 0.0, 1.0, 0.0]], dtype=torch.float64, requires_grad=True)
    rot6d_to_matrix(ident).square().sum().backward()
    assert torch.isfinite(ident.grad).all()
    assert torch.autograd.gradcheck(rot6d_to_matrix, (ident.detach().requires_grad_(True),))


def test_matrix_to_axis_angle_gradient_at_identity_is_finite():
    # Regression: sqrt(0) in the Shepperd branches not taken once gave 0 * inf = NaN.
    R = torch.eye(3, dtype=torch.float64).repeat(2, 1, 1).requires_grad_(True)
    matrix_to_axis_angle(R).sum().backward()
    assert torch.isfinite(R.grad).all()


# ------------------------------------------------------------------------------------ dtypes
def _inputs(name: str, shape) -> np.ndarray:
    if name in ("axis_angle_to_matrix", "axis_angle_to_quaternion"):
        return random_rotvecs(shape, seed=16)
    if name in ("quaternion_to_matrix", "quaternion_to_axis_angle"):
        return scipy_quat_wxyz(random_matrices(shape, seed=17))
    if name == "rot6d_to_matrix":
        return np.random.default_rng(18).normal(size=tuple(shape) + (6,))
    return random_matrices(shape, seed=19)


FUNCTIONS = {
    "axis_angle_to_matrix": (axis_angle_to_matrix, (3, 3)),
    "axis_angle_to_quaternion": (axis_angle_to_quaternion, (4,)),
    "matrix_to_axis_angle": (matrix_to_axis_angle, (3,)),
    "matrix_to_quaternion": (matrix_to_quaternion, (4,)),
    "matrix_to_rot6d": (matrix_to_rot6d, (6,)),
    "quaternion_to_axis_angle": (quaternion_to_axis_angle, (3,)),
    "quaternion_to_matrix": (quaternion_to_matrix, (3, 3)),
    "rot6d_to_matrix": (rot6d_to_matrix, (3, 3)),
}


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
@pytest.mark.parametrize("shape", [(), (5,), (2, 3)])
def test_numpy_and_torch_agree_and_keep_kind_and_shape(name, shape):
    fn, tail = FUNCTIONS[name]
    x = _inputs(name, shape)
    out_np = fn(x.copy())
    out_t = fn(torch.from_numpy(x.copy()))
    assert isinstance(out_np, np.ndarray) and out_np.dtype == np.float64
    assert isinstance(out_t, torch.Tensor) and out_t.dtype == torch.float64
    assert out_np.shape == tuple(shape) + tail
    assert tuple(out_t.shape) == tuple(shape) + tail
    np.testing.assert_allclose(out_np, out_t.numpy(), atol=1e-12)


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_float32_stays_float32(name):
    fn, _ = FUNCTIONS[name]
    x64 = _inputs(name, (2, 3))
    ref = fn(x64)
    out_t = fn(torch.from_numpy(x64.astype(np.float32)))
    assert out_t.dtype == torch.float32
    out_np = fn(x64.astype(np.float32))
    assert isinstance(out_np, np.ndarray) and out_np.dtype == np.float32
    # Single precision should still be accurate to ~1e-6 on well-conditioned inputs.
    np.testing.assert_allclose(out_t.numpy(), ref, atol=1e-5)
    np.testing.assert_allclose(out_np, ref, atol=1e-5)


def test_float32_special_angles_stay_accurate():
    rv = special_rotvecs()
    R = scipy_matrix(rv)
    R32 = axis_angle_to_matrix(torch.from_numpy(rv.astype(np.float32)))
    assert R32.dtype == torch.float32
    np.testing.assert_allclose(R32.numpy(), R, atol=1e-6)
    aa32 = matrix_to_axis_angle(torch.from_numpy(R.astype(np.float32)))
    assert aa32.dtype == torch.float32 and torch.isfinite(aa32).all()
    np.testing.assert_allclose(scipy_matrix(aa32.double().numpy()), R, atol=1e-5)


def test_numpy_input_is_not_modified():
    R = random_matrices((4,), seed=20)
    before = R.copy()
    matrix_to_axis_angle(R)
    rot6d_to_matrix(matrix_to_rot6d(R))
    np.testing.assert_array_equal(R, before)
