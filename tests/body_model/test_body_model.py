"""Body models in the SMPL layout: the built-in mannequin, chumpy-free SMPL loading, refusing unsafe
files, and the geometry of the posed body (run through the real ``smplx``).

The licensed SMPL file is not available here, so the SMPL-kind tests build a SMPL-shaped model from
the mannequin's arrays and write it the way the official files are written: a Python-2-style
protocol-2 pickle that names ``chumpy.ch.Ch`` (a fake class, removed from ``sys.modules`` before
loading) and ``scipy.sparse.csc.csc_matrix``.
"""

from __future__ import annotations

import collections
import contextlib
import copy
import dataclasses
import importlib
import io
import itertools
import os
import pickle
import pickletools
import shlex
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import sparse
from scipy.sparse.csgraph import connected_components

from tar_core.body_model import (
    BODY_MODEL_ENV,
    JOINT_NAMES,
    MANNEQUIN_PATH,
    NUM_BETAS,
    NUM_JOINTS,
    PARENTS,
    SMPL_MARKER_IDS,
    Attached,
    BodyModel,
    convert_smpl_file,
    load_body_model,
    load_body_model_data,
    load_smpl_pickle,
)
from tar_core.errors import BodyModelError, UnsafePickleError
from tar_core.geometry.rotations import axis_angle_to_matrix

REPO_ROOT = Path(__file__).resolve().parents[2]
SMPL_NUM_VERTICES = 6890
J = {name: i for i, name in enumerate(JOINT_NAMES)}
# Joints that sit inside a limb (the brief's "limb joints"), and the limb bones (parent, child).
LIMB_JOINTS = [J[f"{side}_{part}"] for part in ("hip", "knee", "ankle", "shoulder", "elbow", "wrist")
               for side in ("left", "right")]  # fmt: skip
LIMB_BONES = [(J[f"{s}_{a}"], J[f"{s}_{b}"]) for s in ("left", "right") for a, b in (
    ("hip", "knee"), ("knee", "ankle"), ("ankle", "foot"), ("shoulder", "elbow"), ("elbow", "wrist"),
)]  # fmt: skip


@pytest.fixture(autouse=True)
def _no_body_model_env(monkeypatch):
    """Every test starts with $TAR_BODY_MODEL unset (the default body is then the mannequin)."""
    monkeypatch.delenv(BODY_MODEL_ENV, raising=False)


# --------------------------------------------------------------------------------------------------
# Writing official-style SMPL pickles with a fake chumpy


class _FakeCh:
    """Stands for ``chumpy.ch.Ch`` while writing test pickles: holds its value in ``x``."""

    def __init__(self, x, **state):
        self.x = x
        self.__dict__.update(state)


_FakeCh.__module__ = "chumpy.ch"
_FakeCh.__name__ = _FakeCh.__qualname__ = "Ch"

# What a real chumpy ``Ch`` pickles besides ``x`` (``Ch.__getstate__`` drops only _parents and
# _cache): a Python-2 pickle of it names ``__builtin__.set`` for ``_dirty_vars``.
_REAL_CHUMPY_STATE = {"_dirty_vars": {"x"}, "_itr": None, "_depends_on_deps": {},
                      "_make_dense": False, "_make_sparse": False}  # fmt: skip


@contextlib.contextmanager
def _modules_installed(modules: dict[str, types.ModuleType]):
    """Put fake modules into ``sys.modules`` for the block, then remove them again."""
    saved = {name: sys.modules.get(name) for name in modules}
    sys.modules.update(modules)
    try:
        yield
    finally:
        for name, old in saved.items():
            if old is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = old


def _fake_chumpy_modules() -> dict[str, types.ModuleType]:
    chumpy, ch = types.ModuleType("chumpy"), types.ModuleType("chumpy.ch")
    ch.Ch = _FakeCh
    chumpy.ch, chumpy.Ch = ch, _FakeCh
    return {"chumpy": chumpy, "chumpy.ch": ch}


_NDARRAY_RECONSTRUCT = np.zeros(0).__reduce__()[0]  # numpy.core.multiarray._reconstruct


class _Py2StylePickler(pickle.Pickler):
    """Writes numpy arrays as Python 2 did: raw data as a (latin-1) string, not as ``bytes``.

    Python 3 writes ``bytes`` at protocol 2 as a call to ``_codecs.encode``; Python 2 wrote a plain
    string, which ``encoding="latin1"`` turns back into text that numpy accepts.
    """

    def reducer_override(self, obj):
        if type(obj) is np.ndarray and not obj.dtype.hasobject:
            _, args, state = obj.__reduce__()
            version, shape, dtype, fortran, raw = state
            return (
                _NDARRAY_RECONSTRUCT,
                (np.ndarray, args[1], "b"),
                (version, shape, dtype, fortran, raw.decode("latin1")),
            )
        return NotImplemented


_CH_KEYS = ("v_template", "shapedirs", "posedirs", "weights", "J", "weights_prior")
_SPARSE_KEYS = ("J_regressor", "J_regressor_prior")


def _write_smpl_pickle(path: Path, arrays: dict, style: str = "py2") -> bytes:
    """Write ``arrays`` like an official SMPL ``.pkl``; returns the pickle's bytes.

    style: "py2" (official layout: chumpy Ch with plain state, scipy.sparse.csc, numpy data as
    strings), "py2-chumpy-state" (as py2, with the rest of a real Ch's state), "py3-proto2" and
    "py3-proto4" (the same dict re-pickled by Python 3 with chumpy still inside).
    """
    extra = _REAL_CHUMPY_STATE if style == "py2-chumpy-state" else {}
    obj = {}
    for key, value in arrays.items():
        if key in _CH_KEYS:
            value = _FakeCh(np.asarray(value), **copy.deepcopy(extra))
        elif key in _SPARSE_KEYS:
            value = sparse.csc_matrix(value)
        obj[key] = value
    buf = io.BytesIO()
    with _modules_installed(_fake_chumpy_modules()):
        if style.startswith("py2"):
            _Py2StylePickler(buf, protocol=2).dump(obj)
        else:
            pickle.Pickler(buf, protocol=int(style[-1])).dump(obj)
    raw = buf.getvalue()
    if style.startswith("py2"):  # the official files name scipy's old module
        raw = raw.replace(b"cscipy.sparse._csc\ncsc_matrix\n", b"cscipy.sparse.csc\ncsc_matrix\n")
    path.write_bytes(raw)
    return raw


def _pickle_globals(raw: bytes) -> set[tuple[str, str]]:
    """The (module, name) pairs a protocol <= 2 pickle names with GLOBAL."""
    return {tuple(arg.split(" ", 1)) for op, arg, _ in pickletools.genops(raw) if op.name == "GLOBAL"}


def _assert_chumpy_absent():
    assert "chumpy" not in sys.modules and "chumpy.ch" not in sys.modules
    with pytest.raises(ImportError):
        importlib.import_module("chumpy")


# --------------------------------------------------------------------------------------------------
# SMPL-shaped test models


def _smpl_like_arrays(mannequin, seed: int = 0) -> dict:
    """A SMPL-shaped model (6890 vertices, like SMPL) cut from the mannequin and perturbed.

    Keeps every vertex the mannequin's joint regressor uses, so the joints stay in the body; adds
    pose correctives and six extra shape directions (loaders use the first 10).
    """
    rng = np.random.default_rng(seed)
    V0 = mannequin.num_vertices
    used = np.flatnonzero(np.abs(mannequin.J_regressor).sum(0) > 0)
    rest = np.setdiff1d(np.arange(V0), used)
    keep = np.sort(np.concatenate([used, rng.choice(rest, SMPL_NUM_VERTICES - len(used), replace=False)]))
    new_id = np.full(V0, -1)
    new_id[keep] = np.arange(len(keep))
    faces = mannequin.faces[(new_id[mannequin.faces] >= 0).all(1)]
    V = len(keep)
    v_template = mannequin.v_template[keep].astype(np.float64) * 0.97 + rng.normal(0, 1e-3, (V, 3))
    shapedirs = np.concatenate([mannequin.shapedirs[keep] * 0.9, rng.normal(0, 1e-3, (V, 3, 6))], axis=2)
    weights = mannequin.weights[keep].astype(np.float64) + rng.uniform(0, 0.01, (V, NUM_JOINTS))
    weights /= weights.sum(1, keepdims=True)
    J_regressor = mannequin.J_regressor[:, keep].astype(np.float64)
    return {
        "v_template": v_template,
        "shapedirs": shapedirs.astype(np.float64),
        "posedirs": rng.normal(0, 2e-3, (V, 3, 9 * (NUM_JOINTS - 1))),
        "J_regressor": J_regressor,
        "weights": weights,
        "f": new_id[faces].astype(np.uint32),
        "kintree_table": np.array([[4294967295, *PARENTS[1:]], list(range(NUM_JOINTS))], dtype=np.int64),
        "J": J_regressor @ v_template,
        "bs_style": "lbs",
        "bs_type": "lrotmin",
        "vert_sym_idxs": np.arange(V),
    }


def _tiny_smpl_arrays(n_verts: int, seed: int = 1) -> dict:
    """A random SMPL-layout model with few vertices (valid shapes, meaningless geometry)."""
    rng = np.random.default_rng(seed)
    reg = rng.uniform(0, 1, (NUM_JOINTS, n_verts))
    w = rng.uniform(0, 1, (n_verts, NUM_JOINTS))
    return {
        "v_template": rng.normal(0, 0.3, (n_verts, 3)),
        "shapedirs": rng.normal(0, 1e-2, (n_verts, 3, NUM_BETAS)),
        "posedirs": rng.normal(0, 1e-3, (n_verts, 3, 9 * (NUM_JOINTS - 1))),
        "J_regressor": reg / reg.sum(1, keepdims=True),
        "weights": w / w.sum(1, keepdims=True),
        "f": rng.integers(0, n_verts, (2 * n_verts, 3)).astype(np.uint32),
        "kintree_table": np.array([[4294967295, *PARENTS[1:]], list(range(NUM_JOINTS))], dtype=np.int64),
    }


def _pad_vertices(arrays: dict, n_verts: int) -> dict:
    """Append vertices (copies of vertex 0, skinned to the pelvis, unused by the regressor)."""
    out = dict(arrays)
    V = arrays["v_template"].shape[0]
    extra = n_verts - V
    out["v_template"] = np.concatenate([arrays["v_template"], np.repeat(arrays["v_template"][:1], extra, 0)])
    out["shapedirs"] = np.concatenate([arrays["shapedirs"], np.zeros((extra, *arrays["shapedirs"].shape[1:]))])
    out["posedirs"] = np.concatenate([arrays["posedirs"], np.zeros((extra, *arrays["posedirs"].shape[1:]))])
    out["J_regressor"] = np.concatenate([arrays["J_regressor"], np.zeros((NUM_JOINTS, extra))], axis=1)
    pelvis = np.zeros((extra, NUM_JOINTS))
    pelvis[:, 0] = 1.0
    out["weights"] = np.concatenate([arrays["weights"], pelvis])
    return out


# --------------------------------------------------------------------------------------------------
# Geometry helpers (numpy, float64)


def _rodrigues(aa: np.ndarray) -> np.ndarray:
    """(..., 3) axis-angle -> (..., 3, 3) rotation matrices."""
    aa = np.asarray(aa, dtype=np.float64)
    theta = np.linalg.norm(aa, axis=-1, keepdims=True)
    k = aa / np.maximum(theta, 1e-12)
    K = np.zeros(aa.shape[:-1] + (3, 3))
    K[..., 0, 1], K[..., 0, 2], K[..., 1, 2] = -k[..., 2], k[..., 1], -k[..., 0]
    K = K - np.swapaxes(K, -1, -2)
    s, c = np.sin(theta)[..., None], np.cos(theta)[..., None]
    return np.eye(3) + s * K + (1 - c) * (K @ K)


def _reference_lbs(data, global_orient, body_pose, betas, transl=None):
    """SMPL's linear blend skinning written out plainly, for one body: (vertices (V,3), joints (24,3))."""
    v_shaped = data.v_template.astype(np.float64) + data.shapedirs.astype(np.float64) @ betas
    joints = data.J_regressor.astype(np.float64) @ v_shaped
    R = _rodrigues(np.concatenate([global_orient[None], body_pose.reshape(NUM_JOINTS - 1, 3)]))
    v_posed = v_shaped
    if data.posedirs is not None:
        v_posed = v_shaped + data.posedirs.astype(np.float64) @ (R[1:] - np.eye(3)).reshape(-1)
    G = np.zeros((NUM_JOINTS, 4, 4))
    for i in range(NUM_JOINTS):
        local = np.eye(4)
        local[:3, :3] = R[i]
        local[:3, 3] = joints[i] - (joints[PARENTS[i]] if i else 0.0)
        G[i] = local if i == 0 else G[PARENTS[i]] @ local
    posed_joints = G[:, :3, 3].copy()
    A = G.copy()
    A[:, :3, 3] -= np.einsum("jab,jb->ja", G[:, :3, :3], joints)
    T = np.einsum("vj,jab->vab", data.weights.astype(np.float64), A)
    verts = np.einsum("vab,vb->va", T[:, :3, :3], v_posed) + T[:, :3, 3]
    t = np.zeros(3) if transl is None else transl
    return verts + t, posed_joints + t


# Fixed, generic ray directions (no axis alignment, so rays do not run along mesh edges).
_RAY_DIRS = np.array([[0.5377, 0.8622, -0.1198], [-0.4336, 0.2343, 0.8703], [0.3188, -0.6341, 0.7046]])
_RAY_DIRS = _RAY_DIRS / np.linalg.norm(_RAY_DIRS, axis=1, keepdims=True)


def _ray_crossings(points: np.ndarray, verts: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Signed crossings of rays from each point with the triangles: (n_dirs, P).

    Moller-Trumbore, vectorised over points and triangles; with the direction fixed, u, v and t are
    linear in the point, so each is one (P, 3) @ (3, F) product. A crossing counts +1 where the ray
    leaves the surface (direction . outward normal > 0) and -1 where it enters.
    """
    points = np.asarray(points, dtype=np.float64)
    verts = np.asarray(verts, dtype=np.float64)
    v0 = verts[faces[:, 0]]
    e1, e2 = verts[faces[:, 1]] - v0, verts[faces[:, 2]] - v0
    n = np.cross(e1, e2)
    out = []
    for d in _RAY_DIRS:
        h = np.cross(d, e2)
        det = np.einsum("fc,fc->f", e1, h)  # = -d . n
        ok = np.abs(det) > 1e-14
        det = np.where(ok, det, 1.0)
        g = np.cross(e1, d)
        u = (points @ h.T - np.einsum("fc,fc->f", v0, h)) / det
        v = (points @ g.T - np.einsum("fc,fc->f", v0, g)) / det
        t = (points @ n.T - np.einsum("fc,fc->f", v0, n)) / det
        hit = ok & (u >= 0) & (v >= 0) & (u + v <= 1) & (t > 0)
        out.append((hit * -np.sign(det)).sum(1))
    return np.array(out)


def _inside(points, verts, faces) -> np.ndarray:
    """Point-in-mesh by ray casting, majority vote over the ray directions: (P,) bool.

    A closed, outward-oriented surface is crossed an odd number of times (parity) from inside; we
    count the crossings with their sign (the nonzero winding rule), which is the same on a surface
    without self-intersections, and stays right where posed limbs interpenetrate (two layers of
    skin there give parity 0 although the point is inside the body).
    """
    votes = _ray_crossings(points, verts, faces) > 0
    return votes.sum(0) > len(_RAY_DIRS) // 2


def _inside_by_parity(points, verts, faces) -> np.ndarray:
    votes = np.abs(_ray_crossings(points, verts, faces)) % 2 == 1
    return votes.sum(0) > len(_RAY_DIRS) // 2


def _cube(center, half):
    """A closed, outward-oriented cube mesh: (8, 3) vertices, (12, 3) faces."""
    c = np.array(center, dtype=np.float64)
    verts = c + half * np.array(list(itertools.product((-1, 1), repeat=3)), dtype=np.float64)
    quads = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
    faces = np.array([f for a, b, c_, d in quads for f in ((a, b, c_), (a, c_, d))])
    return verts, faces


def _main_component_faces(faces: np.ndarray, n_verts: int) -> np.ndarray:
    """The faces of the largest connected piece of the mesh (the body, without eyeballs or teeth)."""
    e = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    adj = sparse.coo_matrix((np.ones(len(e)), (e[:, 0], e[:, 1])), shape=(n_verts, n_verts))
    _, label = connected_components(adj, directed=False)
    main = np.bincount(label).argmax()
    return faces[label[faces[:, 0]] == main]


def _signed_volume(verts, faces) -> float:
    v = np.asarray(verts, dtype=np.float64)[faces]
    return float(np.einsum("fc,fc->f", v[:, 0], np.cross(v[:, 1], v[:, 2])).sum() / 6.0)


# --------------------------------------------------------------------------------------------------
# Fixtures


@pytest.fixture(scope="module")
def mannequin_data():
    return load_body_model_data(MANNEQUIN_PATH)


@pytest.fixture(scope="module")
def mannequin(mannequin_data):
    return BodyModel(mannequin_data)


@pytest.fixture(scope="module")
def body_faces(mannequin_data):
    return _main_component_faces(mannequin_data.faces, mannequin_data.num_vertices)


@pytest.fixture(scope="module")
def smpl_files(mannequin_data, tmp_path_factory):
    """A SMPL-shaped model written as an official-style pickle and converted to .npz."""
    root = tmp_path_factory.mktemp("smpl")
    arrays = _smpl_like_arrays(mannequin_data)
    pkl = root / "basicModel_f_lbs_10_207_0_v1.0.0.pkl"
    raw = _write_smpl_pickle(pkl, arrays, style="py2")
    npz = convert_smpl_file(pkl, root / "converted" / "smpl_model.npz")
    return types.SimpleNamespace(root=root, arrays=arrays, pkl=pkl, raw=raw, npz=npz)


def _random_pose(n: int, seed: int, pose_std: float = 0.3, orient_std: float = 1.0):
    g = torch.Generator().manual_seed(seed)
    global_orient = torch.randn(n, 3, generator=g) * orient_std
    body_pose = torch.randn(n, 3 * (NUM_JOINTS - 1), generator=g) * pose_std
    betas = torch.randn(n, NUM_BETAS, generator=g)
    return global_orient, body_pose, betas


# --------------------------------------------------------------------------------------------------
# 1. The mannequin is the default body


def test_default_body_is_the_mannequin():
    assert BODY_MODEL_ENV not in os.environ
    model = load_body_model()
    d = model.data
    assert model.kind == d.kind == "mannequin"
    assert "mannequin" in model.describe().lower()
    assert Path(d.source).resolve() == MANNEQUIN_PATH.resolve()
    assert d.gender == "neutral" and d.meta.get("name") == "mannequin"
    V = d.num_vertices
    assert V == d.meta["vertices"] == 13718
    assert d.v_template.shape == (V, 3) and d.shapedirs.shape == (V, 3, NUM_BETAS)
    assert d.posedirs is None
    assert d.J_regressor.shape == (NUM_JOINTS, V) and d.weights.shape == (V, NUM_JOINTS)
    assert len(JOINT_NAMES) == len(PARENTS) == NUM_JOINTS == 24
    # markers: 67 distinct vertex ids
    assert d.marker_ids.shape == (67,) and model.num_markers == 67
    assert len(np.unique(d.marker_ids)) == 67
    assert d.marker_ids.min() >= 0 and d.marker_ids.max() < V
    # faces: valid, non-degenerate triangles that use every vertex
    f = d.faces
    assert f.ndim == 2 and f.shape[1] == 3 and f.shape[0] == d.meta["faces"]
    assert f.min() >= 0 and f.max() < V
    assert np.all((f[:, 0] != f[:, 1]) & (f[:, 1] != f[:, 2]) & (f[:, 0] != f[:, 2]))
    assert len(np.unique(f)) == V
    # skinning weights are convex combinations; the regressor's rows sum to one
    assert d.weights.min() >= 0
    np.testing.assert_allclose(d.weights.sum(1), 1.0, atol=1e-5)
    np.testing.assert_allclose(d.J_regressor.sum(1), 1.0, atol=1e-5)
    # smplx's extra joints: the SMPL-H vertex names, on valid vertices
    from smplx.vertex_ids import vertex_ids

    assert set(d.extra_vertex_ids) == set(vertex_ids["smplh"])
    assert all(0 <= i < V for i in d.extra_vertex_ids.values())


def test_mannequin_output_shapes_and_markers(mannequin):
    go, bp, betas = _random_pose(3, seed=5)
    with torch.no_grad():
        out = mannequin(go, bp, betas)
    V = mannequin.data.num_vertices
    assert out.vertices.shape == (3, V, 3)
    assert out.joints.shape == (3, NUM_JOINTS, 3)
    assert out.extra_joints.shape == (3, 21, 3)
    assert out.markers.shape == (3, 67, 3)
    assert torch.equal(out.markers, out.vertices[:, torch.as_tensor(mannequin.data.marker_ids)])
    assert torch.isfinite(out.vertices).all()
    # betas=None means the mean shape
    with torch.no_grad():
        a = mannequin(go, bp)
        b = mannequin(go, bp, torch.zeros(3, NUM_BETAS))
    torch.testing.assert_close(a.vertices, b.vertices, rtol=0, atol=0)


def test_attached_points_move_with_their_bone(mannequin):
    """A point attached to a bone sits at its offset from the joint, turned by the bone frame's rotation; a
    zero offset is the joint itself."""
    g = torch.manual_seed(0)
    R = axis_angle_to_matrix(0.5 * torch.randn(3, NUM_JOINTS, 3, generator=g))
    betas, transl = 0.5 * torch.randn(3, NUM_BETAS, generator=g), torch.randn(3, 3, generator=g)
    off = (0.03, -0.02, 0.05)
    pts = mannequin.skeleton(R, betas, transl, (), (Attached(4, 1, off), Attached(7, 7, (0.0, 0.0, 0.0))))
    joints = pts[:, :NUM_JOINTS]
    # the thigh's world rotation: pelvis then hip (the hip joint carries the thigh and so the knee)
    thigh = R[:, 0] @ R[:, 1]
    expected = joints[:, 4] + (thigh @ torch.tensor(off))
    torch.testing.assert_close(pts[:, NUM_JOINTS], expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(pts[:, NUM_JOINTS + 1], joints[:, 7], atol=1e-6, rtol=0)


def test_mannequin_mesh_is_closed_and_outward(mannequin_data, body_faces):
    f = mannequin_data.faces
    edges = np.sort(np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]]), axis=1)
    _, counts = np.unique(edges, axis=0, return_counts=True)
    assert np.all(counts == 2), "every edge of a closed surface borders exactly two triangles"
    # directed edges appear once each: consistently oriented
    directed = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
    assert len(np.unique(directed, axis=0)) == len(directed)
    volume = _signed_volume(mannequin_data.v_template, body_faces)
    assert 0.04 < volume < 0.15, f"body volume {volume:.4f} m^3 (outward normals give a positive volume)"


def test_mannequin_frame_and_t_pose(mannequin_data):
    """SMPL's frame: y up, the body faces +z, +x is the subject's left; arms along +-x (T-pose)."""
    d = mannequin_data
    v = d.v_template.astype(np.float64)
    jt = d.J_regressor.astype(np.float64) @ v
    y = jt[:, 1]
    assert y[J["head"]] > y[J["neck"]] > y[J["spine3"]] > y[J["spine1"]] > y[J["pelvis"]]
    assert y[J["pelvis"]] > y[J["left_knee"]] > y[J["left_ankle"]]
    for name in JOINT_NAMES:
        if name.startswith("left_"):
            other = J["right_" + name[5:]]
            assert jt[J[name], 0] > 0.01 and jt[other, 0] < -0.01, name
            np.testing.assert_allclose(jt[J[name]] * [-1, 1, 1], jt[other], atol=0.01, err_msg=name)
    for side, sign in (("left", 1), ("right", -1)):
        chain = [jt[J[f"{side}_{p}"]] for p in ("shoulder", "elbow", "wrist")]
        assert sign * chain[0][0] < sign * chain[1][0] < sign * chain[2][0]
        assert abs(chain[2][1] - chain[0][1]) < 0.02 and abs(chain[1][1] - chain[0][1]) < 0.02
    extra = {k: v[i] for k, i in d.extra_vertex_ids.items()}
    assert extra["nose"][2] > jt[J["head"], 2] + 0.05, "the face points to +z"
    assert extra["leye"][0] > 0 > extra["reye"][0]
    assert extra["LBigToe"][2] > extra["LHeel"][2] + 0.1 and extra["LHeel"][0] > 0
    assert extra["lthumb"][0] > 0.5 and extra["rthumb"][0] < -0.5
    # every body part carries at least one feedback marker
    parts = d.weights[d.marker_ids].argmax(1)
    assert set(parts.tolist()) == set(range(NUM_JOINTS))


# --------------------------------------------------------------------------------------------------
# 2. A SMPL-layout body (official-style pickle, without chumpy) and its conversion


def test_official_style_pickle_names_chumpy_and_loads_without_it(smpl_files):
    names = _pickle_globals(smpl_files.raw)
    assert ("chumpy.ch", "Ch") in names
    assert ("scipy.sparse.csc", "csc_matrix") in names
    assert not any(m in ("_codecs", "builtins", "__builtin__") for m, _ in names)
    _assert_chumpy_absent()

    arrays = load_smpl_pickle(smpl_files.pkl)
    _assert_chumpy_absent()
    src = smpl_files.arrays
    for key in ("v_template", "shapedirs", "posedirs", "weights", "J", "J_regressor"):
        assert isinstance(arrays[key], np.ndarray), key
        np.testing.assert_array_equal(arrays[key], src[key], err_msg=key)
    np.testing.assert_array_equal(arrays["f"], src["f"])
    np.testing.assert_array_equal(arrays["kintree_table"], src["kintree_table"])
    assert arrays["bs_style"] == "lbs" and arrays["bs_type"] == "lrotmin"

    model = load_body_model(smpl_files.pkl)
    d = model.data
    assert model.kind == d.kind == "smpl"
    assert d.gender == "female"
    assert "SMPL" in model.describe() and "female" in model.describe()
    assert d.num_vertices == SMPL_NUM_VERTICES
    assert d.shapedirs.shape == (SMPL_NUM_VERTICES, 3, NUM_BETAS), "only the first 10 shape directions"
    assert d.posedirs.shape == (SMPL_NUM_VERTICES, 3, 207)
    assert d.extra_vertex_ids is None
    np.testing.assert_array_equal(d.marker_ids, SMPL_MARKER_IDS)
    assert model.num_markers == len(SMPL_MARKER_IDS) == 67


@pytest.mark.parametrize("style", ["py2-chumpy-state", "py3-proto2", "py3-proto4"])
def test_other_pickles_of_a_smpl_model_load(smpl_files, tmp_path, style):
    """The same model as a real chumpy pickles it (its ``Ch`` state holds a set), or re-pickled by
    Python 3 (protocol 2 writes numpy's bytes through ``_codecs.encode``), still loads."""
    pkl = tmp_path / "SMPL_FEMALE.pkl"
    _write_smpl_pickle(pkl, smpl_files.arrays, style=style)
    _assert_chumpy_absent()
    arrays = load_smpl_pickle(pkl)
    for key in ("v_template", "posedirs", "J_regressor", "weights"):
        np.testing.assert_array_equal(arrays[key], smpl_files.arrays[key], err_msg=key)
    assert load_body_model_data(pkl).kind == "smpl"


def _assert_same_model_data(a, b):
    for key in ("v_template", "shapedirs", "posedirs", "J_regressor", "weights", "faces", "marker_ids"):
        np.testing.assert_array_equal(getattr(a, key), getattr(b, key), err_msg=key)
    assert (a.kind, a.gender, a.extra_vertex_ids) == (b.kind, b.gender, b.extra_vertex_ids)


def test_converted_npz_matches_the_pickle(smpl_files):
    npz = smpl_files.npz
    assert npz.is_file() and npz.parent.exists()
    assert sorted(p.name for p in npz.parent.iterdir()) == [npz.name], "no temporary files left behind"
    with np.load(npz, allow_pickle=False) as z:  # plain arrays only
        stored = {k: z[k] for k in z.files}
    assert not any(v.dtype.hasobject for v in stored.values())
    assert str(stored["body_model"]) == "smpl" and str(stored["gender"]) == "female"

    from_pkl, from_npz = load_body_model_data(smpl_files.pkl), load_body_model_data(npz)
    assert from_npz.kind == "smpl" and from_npz.gender == "female", "gender comes from the original name"
    _assert_same_model_data(from_pkl, from_npz)

    go, bp, betas = _random_pose(6, seed=11)
    transl = torch.randn(6, 3, generator=torch.Generator().manual_seed(12))
    with torch.no_grad():
        a = BodyModel(from_pkl)(go, bp, betas, transl)
        b = BodyModel(from_npz)(go, bp, betas, transl)
    for name in ("vertices", "joints", "extra_joints", "markers"):
        torch.testing.assert_close(getattr(a, name), getattr(b, name), rtol=0, atol=1e-7, msg=name)


def test_smpl_forward_is_smpl_linear_blend_skinning(smpl_files):
    """BodyModel (through smplx) equals SMPL's skinning written out, pose correctives included."""
    data = load_body_model_data(smpl_files.npz)
    model = BodyModel(data, dtype=torch.float64)
    go, bp, betas = _random_pose(4, seed=21, pose_std=0.5)
    transl = torch.tensor([[0.1, -0.2, 3.0]], dtype=torch.float64).repeat(4, 1)
    with torch.no_grad():
        out = model(go.double(), bp.double(), betas.double(), transl)
    for i in range(4):
        verts, joints = _reference_lbs(
            data, go[i].double().numpy(), bp[i].double().numpy(), betas[i].double().numpy(), transl[i].numpy()
        )
        np.testing.assert_allclose(out.joints[i].numpy(), joints, atol=1e-6)
        np.testing.assert_allclose(out.vertices[i].numpy(), verts, atol=1e-6)
    # the pose correctives matter here: without them the vertices differ
    no_pd = dataclasses.replace(data, posedirs=None)
    verts0, _ = _reference_lbs(
        no_pd, go[0].double().numpy(), bp[0].double().numpy(), betas[0].double().numpy(), transl[0].numpy()
    )
    assert np.abs(out.vertices[0].numpy() - verts0).max() > 1e-3


def test_cli_smpl_convert(smpl_files, tmp_path):
    out = tmp_path / "cli" / "SMPL_FEMALE.npz"
    env = {k: v for k, v in os.environ.items() if k != BODY_MODEL_ENV}
    proc = subprocess.run(
        [sys.executable, "-m", "tar_core", "smpl-convert", str(smpl_files.pkl), str(out)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert out.is_file()
    _assert_same_model_data(load_body_model_data(out), load_body_model_data(smpl_files.npz))


def test_cli_smpl_convert_refuses_an_unsafe_pickle(tmp_path):
    marker = tmp_path / "pwned"
    pkl = tmp_path / "evil.pkl"
    pkl.write_bytes(pickle.dumps({"v_template": _RunsShell(f"touch {shlex.quote(str(marker))}")}, protocol=2))
    out = tmp_path / "evil.npz"
    env = {k: v for k, v in os.environ.items() if k != BODY_MODEL_ENV}
    proc = subprocess.run(
        [sys.executable, "-m", "tar_core", "smpl-convert", str(pkl), str(out)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode != 0
    assert "refusing" in (proc.stdout + proc.stderr).lower(), proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, "a clear error, not a crash"
    assert not out.exists() and not marker.exists()


def test_body_model_env_var_selects_the_file(smpl_files, monkeypatch):
    monkeypatch.setenv(BODY_MODEL_ENV, str(smpl_files.npz))
    assert load_body_model().kind == "smpl"
    assert load_body_model_data().source == str(smpl_files.npz)
    assert load_body_model(MANNEQUIN_PATH).kind == "mannequin", "an explicit path wins over the variable"
    monkeypatch.setenv(BODY_MODEL_ENV, "")
    assert load_body_model().kind == "mannequin"


def test_smpl_marker_ids_need_enough_vertices(tmp_path):
    tiny = _tiny_smpl_arrays(300)
    small_pkl = tmp_path / "small_model.pkl"
    _write_smpl_pickle(small_pkl, tiny)
    with pytest.raises(BodyModelError, match="marker"):
        load_body_model_data(small_pkl)
    converted = convert_smpl_file(small_pkl, tmp_path / "small_model.npz")  # converting is fine
    with pytest.raises(BodyModelError, match="marker"):
        load_body_model(converted)

    padded_pkl = tmp_path / "padded_model.pkl"
    _write_smpl_pickle(padded_pkl, _pad_vertices(tiny, SMPL_NUM_VERTICES))
    model = load_body_model(padded_pkl)
    assert model.kind == "smpl" and model.data.num_vertices == SMPL_NUM_VERTICES
    np.testing.assert_array_equal(model.data.marker_ids, SMPL_MARKER_IDS)
    go, bp, betas = _random_pose(2, seed=3)
    with torch.no_grad():
        out = model(go, bp, betas)
    assert out.vertices.shape == (2, SMPL_NUM_VERTICES, 3) and out.markers.shape == (2, 67, 3)
    assert torch.equal(out.markers, out.vertices[:, list(SMPL_MARKER_IDS)])
    # the padded vertices are not used by the regressor: the joints are those of the tiny model
    rest = torch.as_tensor(tiny["J_regressor"] @ tiny["v_template"], dtype=torch.float32)
    torch.testing.assert_close(model.rest_joints(torch.zeros(1, NUM_BETAS))[0], rest, atol=1e-5, rtol=0)


# --------------------------------------------------------------------------------------------------
# 3. Pickles that name anything else are refused, and nothing runs


class _RunsShell:
    def __init__(self, cmd):
        self.cmd = cmd

    def __reduce__(self):
        return os.system, (self.cmd,)


class _RunsExec:
    def __init__(self, code):
        self.code = code

    def __reduce__(self):
        return exec, (self.code,)


def _evil_module(marker: Path) -> types.ModuleType:
    evil = types.ModuleType("evil")

    class Payload:
        def __setstate__(self, state):
            marker.write_text("ran")

        def __reduce__(self):
            return Payload, (), {"x": 1}

    Payload.__module__, Payload.__qualname__ = "evil", "Payload"
    evil.Payload = Payload
    return evil


def _unsafe_pickle(kind: str, marker: Path, smpl: dict) -> bytes:
    touch = f"touch {shlex.quote(str(marker))}"
    if kind == "os.system":
        return pickle.dumps({**smpl, "v_template": _RunsShell(touch)}, protocol=2)
    if kind == "exec":
        return pickle.dumps({**smpl, "bs_style": _RunsExec(f"open({str(marker)!r}, 'w').close()")}, protocol=2)
    if kind == "os.system-inside-chumpy":
        with _modules_installed(_fake_chumpy_modules()):
            return pickle.dumps({**smpl, "v_template": _FakeCh(_RunsShell(touch))}, protocol=2)
    if kind == "OrderedDict":
        return pickle.dumps(collections.OrderedDict(smpl), protocol=2)
    if kind == "evil-module":
        with _modules_installed({"evil": _evil_module(marker)}):
            return pickle.dumps({**smpl, "weights": sys.modules["evil"].Payload()}, protocol=2)
    if kind == "reconstructor-on-ndarray":  # copy_reg._reconstructor(chumpy.ch.Ch, numpy.ndarray, None)
        return b"\x80\x02ccopy_reg\n_reconstructor\ncchumpy.ch\nCh\ncnumpy\nndarray\nN\x87R."
    raise AssertionError(kind)


@pytest.mark.parametrize("kind, named", [("os.system", "system"), ("exec", "exec"),
                                         ("os.system-inside-chumpy", "system"),
                                         ("OrderedDict", "collections.OrderedDict"),
                                         ("evil-module", "evil.Payload"),
                                         ("reconstructor-on-ndarray", "ndarray")])  # fmt: skip
def test_unsafe_pickles_are_refused(tmp_path, kind, named):
    marker = tmp_path / "pwned"
    smpl = {"bs_style": "lbs", "bs_type": "lrotmin"}  # no arrays: the payload is the first class named
    pkl = tmp_path / "model.pkl"
    pkl.write_bytes(_unsafe_pickle(kind, marker, smpl))
    evil = {"evil": _evil_module(marker)} if kind == "evil-module" else {}
    with _modules_installed(evil):  # the named class exists: it is refused, not merely missing
        with pytest.raises(UnsafePickleError, match="refusing") as exc:
            load_smpl_pickle(pkl)
        assert named in str(exc.value)
        with pytest.raises(UnsafePickleError):
            load_body_model(pkl)
        out = tmp_path / "out.npz"
        with pytest.raises(UnsafePickleError):
            convert_smpl_file(pkl, out)
    assert not out.exists()
    assert not marker.exists(), "the pickle's payload ran"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pkl"]


def test_chumpy_expression_without_value_is_refused(tmp_path):
    pkl = tmp_path / "expr.pkl"
    ch = _FakeCh(None)
    del ch.x  # a chumpy expression (e.g. a product) has terms but no value of its own
    ch.a = np.ones(3)
    buf = io.BytesIO()
    with _modules_installed(_fake_chumpy_modules()):
        _Py2StylePickler(buf, protocol=2).dump({"v_template": ch})
    pkl.write_bytes(buf.getvalue())
    with pytest.raises(UnsafePickleError, match="v_template"):
        load_smpl_pickle(pkl)


# --------------------------------------------------------------------------------------------------
# 4. Files that are not loadable body models


def test_npz_with_objects_is_refused_with_a_hint(mannequin_data, tmp_path):
    """An .npz saved straight from the pickle's dict holds chumpy objects: refused, pointing to smpl-convert."""
    path = tmp_path / "SMPL_NEUTRAL.npz"
    d = mannequin_data
    with _modules_installed(_fake_chumpy_modules()):
        np.savez(
            path,
            v_template=np.array(_FakeCh(d.v_template), dtype=object),
            shapedirs=d.shapedirs,
            J_regressor=d.J_regressor,
            weights=d.weights,
            f=d.faces,
            kintree_table=np.zeros((2, 24), dtype=np.int64),
        )
    _assert_chumpy_absent()
    with pytest.raises(BodyModelError, match="smpl-convert"):
        load_body_model_data(path)
    with pytest.raises(BodyModelError, match="smpl-convert"):
        load_body_model(path)


def test_missing_file_raises(tmp_path, monkeypatch):
    for name in ("nothing.npz", "nothing.pkl"):
        with pytest.raises(BodyModelError, match="not found"):
            load_body_model(tmp_path / name)
    monkeypatch.setenv(BODY_MODEL_ENV, str(tmp_path / "gone.npz"))
    with pytest.raises(BodyModelError, match="gone.npz"):
        load_body_model()
    with pytest.raises(BodyModelError):
        convert_smpl_file(tmp_path / "nothing.pkl", tmp_path / "out.npz")
    assert not (tmp_path / "out.npz").exists()


def _npz_variant(d, change: str) -> dict:
    arrays = {
        "v_template": d.v_template,
        "shapedirs": d.shapedirs,
        "J_regressor": d.J_regressor,
        "weights": d.weights,
        "f": d.faces,
        "kintree_table": np.zeros((2, 24), dtype=np.int64),
        "body_model": np.array("smpl"),
        "posedirs": np.zeros((d.num_vertices, 3, 207), np.float32),
    }
    if change == "no weights":
        del arrays["weights"]
    elif change == "regressor shape":
        arrays["J_regressor"] = d.J_regressor[:, :-1]
    elif change == "few betas":
        arrays["shapedirs"] = d.shapedirs[:, :, :5]
    elif change == "smpl without posedirs":
        del arrays["posedirs"]
    return arrays


@pytest.mark.parametrize("change, message", [("no weights", "missing weights"),
                                             ("regressor shape", "J_regressor"),
                                             ("few betas", "shapedirs"),
                                             ("smpl without posedirs", "posedirs")])  # fmt: skip
def test_malformed_npz_is_refused(mannequin_data, tmp_path, change, message):
    path = tmp_path / "model.npz"
    np.savez(path, **_npz_variant(mannequin_data, change))
    with pytest.raises(BodyModelError, match=message):
        load_body_model_data(path)


def test_other_file_types_are_refused(tmp_path):
    path = tmp_path / "model.obj"
    path.write_text("v 0 0 0\n")
    with pytest.raises(BodyModelError, match=r"\.pkl or \.npz"):
        load_body_model(path)


# --------------------------------------------------------------------------------------------------
# 5. Posed mannequin: joints where the regressor puts them, and inside the body


def test_point_in_mesh_helper():
    verts, faces = _cube((0.0, 0.0, 0.0), 1.0)
    assert _signed_volume(verts, faces) == pytest.approx(8.0)
    pts = np.array([[0, 0, 0], [0.9, -0.9, 0.9], [1.1, 0, 0], [0, 0, -3], [5, 5, 5]], dtype=np.float64)
    np.testing.assert_array_equal(_inside(pts, verts, faces), [True, True, False, False, False])
    np.testing.assert_array_equal(_inside_by_parity(pts, verts, faces), [True, True, False, False, False])
    # two overlapping boxes (like interpenetrating limbs): inside the overlap is inside the body
    v2, f2 = _cube((1.0, 0.0, 0.0), 1.0)
    verts2, faces2 = np.concatenate([verts, v2]), np.concatenate([faces, f2 + len(verts)])
    pts2 = np.array([[0.5, 0, 0], [-0.5, 0, 0], [1.5, 0, 0], [2.5, 0, 0]])
    np.testing.assert_array_equal(_inside(pts2, verts2, faces2), [True, True, True, False])
    assert not _inside_by_parity(pts2[:1], verts2, faces2)[0], "parity alone is fooled by the overlap"


def test_zero_pose_joints_are_the_regressed_shaped_rest_mesh(mannequin, mannequin_data):
    d = mannequin_data
    _, _, betas = _random_pose(5, seed=31)
    zeros = torch.zeros(5, 3 * (NUM_JOINTS - 1))
    with torch.no_grad():
        out = mannequin(torch.zeros(5, 3), zeros, betas)
    b = betas.double().numpy()
    shaped = d.v_template.astype(np.float64)[None] + np.einsum("vcl,bl->bvc", d.shapedirs.astype(np.float64), b)
    expected = np.einsum("jv,bvc->bjc", d.J_regressor.astype(np.float64), shaped)
    np.testing.assert_allclose(out.joints.double().numpy(), expected, atol=2e-5)
    np.testing.assert_allclose(out.vertices.double().numpy(), shaped, atol=2e-5)


def test_mannequin_forward_is_linear_blend_skinning(mannequin, mannequin_data):
    go, bp, betas = _random_pose(3, seed=41, pose_std=0.5)
    with torch.no_grad():
        out = mannequin(go, bp, betas)
    for i in range(3):
        verts, joints = _reference_lbs(
            mannequin_data, go[i].double().numpy(), bp[i].double().numpy(), betas[i].double().numpy()
        )
        np.testing.assert_allclose(out.joints[i].double().numpy(), joints, atol=1e-4)
        np.testing.assert_allclose(out.vertices[i].double().numpy(), verts, atol=1e-4)


COLLARS = [J["left_collar"], J["right_collar"]]


def _posed_batch(model, n: int, seed: int, collar_std: float = 0.3):
    """n random bodies: N(0, 0.3) rad per axis on the body joints (collars: N(0, collar_std)),
    betas N(0, 1), global orientations random and a few turned (upside down, lying)."""
    go, bp, betas = _random_pose(n, seed=seed)
    go[:4] = torch.tensor([[0.0, 0.0, 0.0], [np.pi, 0.0, 0.0], [-np.pi / 2, 0.0, 0.0], [0.0, 0.0, np.pi / 2]])
    bp = bp.reshape(n, NUM_JOINTS - 1, 3)
    bp[:, [j - 1 for j in COLLARS]] *= collar_std / 0.3
    bp = bp.reshape(n, -1)
    with torch.no_grad():
        out = model(go, bp, betas)
        rest = model(torch.zeros(n, 3), torch.zeros_like(bp), betas)
    return types.SimpleNamespace(
        body_pose=bp,
        verts=out.vertices.double().numpy(),
        joints=out.joints.double().numpy(),
        rest_verts=rest.vertices.double().numpy(),
        rest_joints=rest.joints.double().numpy(),
    )


@pytest.fixture(scope="module")
def posed_mannequin(mannequin):
    """48 bodies with N(0, 0.3) rad per axis on every body joint but the collars (N(0, 0.15)).

    Clavicles move little in people; at ~0.35 rad the mannequin's shoulder joint (16 cm from the
    collar joint at the sternum) can end up a few millimetres outside the deltoid skin."""
    return _posed_batch(mannequin, 48, seed=2024, collar_std=0.15)


@pytest.fixture(scope="module")
def posed_mannequin_calm_collars(mannequin):
    """32 bodies as above, with the collars (clavicles) at N(0, 0.15) rad, about their real range."""
    return _posed_batch(mannequin, 32, seed=7, collar_std=0.15)


def test_rest_pose_joints_and_bones_are_inside_the_body(mannequin_data, body_faces):
    v = mannequin_data.v_template.astype(np.float64)
    jt = mannequin_data.J_regressor.astype(np.float64) @ v
    assert _inside(jt, v, body_faces).all()
    assert _inside_by_parity(jt, v, body_faces).all(), "no self-intersection in the rest pose"
    bone_pts = np.array([jt[a] + t * (jt[b] - jt[a]) for a, b in LIMB_BONES for t in (0.25, 0.5, 0.75)])
    assert _inside(bone_pts, v, body_faces).all()
    # and points well away from the body are outside
    away = jt + np.array([0.0, 0.0, 0.6])
    assert not _inside(away, v, body_faces).any()


def test_posed_joints_lie_inside_the_body(posed_mannequin, body_faces):
    """All 24 joints inside the posed mesh (N(0, 0.3) rad per axis, collars N(0, 0.15))."""
    pm = posed_mannequin
    failures = []
    for b in range(len(pm.verts)):
        inside = _inside(pm.joints[b], pm.verts[b], body_faces)
        if not inside.all():
            collars = pm.body_pose[b].reshape(-1, 3)[[j - 1 for j in COLLARS]].numpy().round(2).tolist()
            failures.append((b, [JOINT_NAMES[j] for j in np.flatnonzero(~inside)], f"collar pose {collars}"))
    assert not failures, f"joints outside the posed body: {failures}"


def test_posed_joints_and_limb_bones_lie_inside_the_body(posed_mannequin_calm_collars, body_faces):
    """Joints and the points along each limb bone are inside the posed mesh; points pushed away
    from the body are outside."""
    pm = posed_mannequin_calm_collars
    bone_rows = np.repeat(np.array(LIMB_BONES), 3, axis=0)
    failures = []
    for b in range(len(pm.verts)):
        jb = pm.joints[b]
        bones = np.array([jb[a] + t * (jb[c] - jb[a]) for a, c in LIMB_BONES for t in (0.25, 0.5, 0.75)])
        away = jb[[J["head"], J["left_hand"], J["right_foot"]]]
        away = away + 0.3 * np.array([0.0, 1.0, 0.0]) + 2.0 * (away - pm.verts[b].mean(0))
        inside = _inside(np.concatenate([jb, bones, away]), pm.verts[b], body_faces)
        outside_joints = [JOINT_NAMES[j] for j in np.flatnonzero(~inside[:NUM_JOINTS])]
        outside_bones = sorted(
            {
                f"{JOINT_NAMES[a]}-{JOINT_NAMES[c]}"
                for (a, c), ok in zip(bone_rows, inside[NUM_JOINTS:-3], strict=True)
                if not ok
            }
        )
        if outside_joints or outside_bones:
            failures.append((b, outside_joints, outside_bones))
        assert not inside[-3:].any(), f"body {b}: a point far from the body counts as inside"
    assert not failures, f"joints / limb bones outside the posed body: {failures}"


def _limb_vertex_sets(mannequin_data, k=200):
    """Per limb joint: the k rest-pose vertices nearest to it among those skinned mainly to the
    joint or its parent."""
    d = mannequin_data
    v = d.v_template.astype(np.float64)
    jt = d.J_regressor.astype(np.float64) @ v
    part = d.weights.argmax(1)
    sets = {}
    for j in LIMB_JOINTS:
        cand = np.flatnonzero(np.isin(part, [j, PARENTS[j]]))
        sets[j] = cand[np.argsort(np.linalg.norm(v[cand] - jt[j], axis=1))[:k]]
    return sets


def test_posed_limb_joints_stay_with_their_limb(posed_mannequin, mannequin_data):
    pm = posed_mannequin
    sets = _limb_vertex_sets(mannequin_data)
    for j, ids in sets.items():
        name = JOINT_NAMES[j]
        centroid = pm.verts[:, ids].mean(1)
        dist = np.linalg.norm(centroid - pm.joints[:, j], axis=1)
        assert dist.max() < 0.06, f"{name}: {dist.max():.3f} m from the centroid of its nearby vertices"
        rest_dist = np.linalg.norm(pm.rest_verts[:, ids].mean(1) - pm.rest_joints[:, j], axis=1)
        assert np.abs(dist - rest_dist).max() < 0.03, f"{name} moved against its limb"
        nearest = np.linalg.norm(pm.verts - pm.joints[:, j, None], axis=2).min(1)
        bound = 0.10 if "hip" in name else 0.07  # the hip joints sit deep in the pelvis
        assert nearest.max() < bound, f"{name}: nearest skin {nearest.max():.3f} m away"


# --------------------------------------------------------------------------------------------------
# 6. Shape space


def _heights(d, betas: np.ndarray) -> np.ndarray:
    y = d.v_template[:, 1].astype(np.float64) + betas @ d.shapedirs[:, 1, : betas.shape[1]].astype(np.float64).T
    return y.max(1) - y.min(1)


def test_betas_change_height_smoothly(mannequin_data):
    d = mannequin_data
    grid = np.arange(-3.0, 3.0 + 1e-9, 0.5)
    ranges = []
    for k in range(NUM_BETAS):
        betas = np.zeros((len(grid), NUM_BETAS))
        betas[:, k] = grid
        h = _heights(d, betas)
        d1, d2 = np.diff(h), np.diff(h, 2)
        assert np.all(np.abs(d2) <= 0.25 * np.abs(d1).max() + 1e-3), f"beta {k}: height jumps {h.round(4)}"
        assert np.all(np.abs(d1) < 0.1), f"beta {k}: > 10 cm per 0.5 step"
        ranges.append(h.max() - h.min())
    assert max(ranges) > 0.10, f"no beta changes the height by 10 cm: {np.round(ranges, 3)}"

    g = np.arange(-2.0, 2.0 + 1e-9, 0.5)
    box = np.array(list(itertools.product(g, g, g)))
    h = _heights(d, box)
    print(
        f"\nmannequin height over betas[:3] in [-2, 2]^3: {h.min():.3f} .. {h.max():.3f} m "
        f"(mean shape {_heights(d, np.zeros((1, 3)))[0]:.3f} m)"
    )
    assert 1.3 < h.min() < h.max() < 2.4 and h.max() - h.min() > 0.3
    lo, hi = d.meta["sampled_height_m"]
    assert h.min() < lo + 0.1 and h.max() > hi - 0.1, "the box spans the sampled adult heights"


def test_some_beta_changes_girth_monotonically(mannequin_data):
    d = mannequin_data
    grid = np.arange(-3.0, 3.0 + 1e-9, 0.5)
    torso = np.isin(d.weights.argmax(1), [J["pelvis"], J["spine1"]])
    monotone = {}
    for k in range(NUM_BETAS):
        betas = np.zeros((len(grid), NUM_BETAS))
        betas[:, k] = grid
        v = d.v_template[None].astype(np.float64) + np.einsum("vcl,bl->bvc", d.shapedirs.astype(np.float64), betas)
        pelvis_y = np.einsum("v,bv->b", d.J_regressor[0].astype(np.float64), v[..., 1])
        girth = []
        for i in range(len(grid)):
            band = torso & (np.abs(v[i, :, 1] - pelvis_y[i]) < 0.02)
            assert band.sum() > 20
            girth.append(np.ptp(v[i, band, 0]))
        step = np.diff(girth)
        if np.all(step > 0) or np.all(step < 0):
            monotone[k] = abs(girth[-1] - girth[0])
    assert monotone and max(monotone.values()) > 0.03, f"monotone girth changes: {monotone}"


# --------------------------------------------------------------------------------------------------
# 7. rest_joints, translation, global orientation


def test_rest_joints_equal_zero_pose_forward(mannequin):
    _, _, betas = _random_pose(4, seed=51)
    with torch.no_grad():
        out = mannequin(torch.zeros(4, 3), torch.zeros(4, 69), betas)
        rest = mannequin.rest_joints(betas)
    assert rest.shape == (4, NUM_JOINTS, 3)
    torch.testing.assert_close(rest, out.joints, atol=1e-6, rtol=0)
    assert (rest[0] - rest[1]).abs().max() > 1e-3, "betas change the rest joints"


def test_transl_adds_exactly(mannequin):
    go, bp, betas = _random_pose(4, seed=61)
    transl = torch.tensor([[0.0, 0.0, 0.0], [1.5, -2.0, 7.25], [-0.3, 0.1, 0.2], [100.0, 0.0, -50.0]])
    with torch.no_grad():
        a = mannequin(go, bp, betas)
        b = mannequin(go, bp, betas, transl)
    for name in ("vertices", "joints", "extra_joints", "markers"):
        assert torch.equal(getattr(b, name), getattr(a, name) + transl[:, None]), name


def test_global_orientation_turns_about_the_pelvis(mannequin):
    n = 6
    _, bp, betas = _random_pose(n, seed=71)
    go = torch.randn(n, 3, generator=torch.Generator().manual_seed(72)) * 1.5
    with torch.no_grad():
        ref = mannequin(torch.zeros(n, 3), bp, betas)
        out = mannequin(go, bp, betas)
    assert ref.joints[:, 0].abs().max() > 1e-4, "betas move the pelvis off the origin (a real test)"
    torch.testing.assert_close(out.joints[:, 0], ref.joints[:, 0], atol=1e-6, rtol=0)
    R = torch.as_tensor(_rodrigues(go.double().numpy()), dtype=torch.float32)
    pelvis = ref.joints[:, :1]
    for name in ("joints", "vertices", "markers"):
        expected = torch.einsum("bij,bvj->bvi", R, getattr(ref, name) - pelvis) + pelvis
        torch.testing.assert_close(getattr(out, name), expected, atol=2e-5, rtol=0, msg=name)


def test_rotation_matrix_input_equals_axis_angle(mannequin):
    go, bp, betas = _random_pose(3, seed=81)
    R_go = torch.as_tensor(_rodrigues(go.double().numpy()), dtype=torch.float32)
    R_bp = torch.as_tensor(_rodrigues(bp.reshape(3, 23, 3).double().numpy()), dtype=torch.float32)
    with torch.no_grad():
        a = mannequin(go, bp, betas)
        b = mannequin(R_go, R_bp, betas)
        c = mannequin(R_go[:, None], R_bp.reshape(3, 23 * 9), betas)
    torch.testing.assert_close(b.vertices, a.vertices, atol=2e-5, rtol=0)
    torch.testing.assert_close(c.joints, a.joints, atol=2e-5, rtol=0)
