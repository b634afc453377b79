"""Exact ground truth for a synthetic clip: body, camera and the motion-file arrays.

Pure torch/numpy (no bpy): the renderer only draws what this module computed, so the motion
file is exact by construction. World frame: y up, floor at y = 0. Camera frame: OpenCV.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import torch

from tar_core.body_model import NUM_BETAS, BodyModel
from tar_core.errors import UsageError
from tar_core.geometry import camera as cam
from tar_core.geometry.rotations import axis_angle_to_matrix, matrix_to_axis_angle
from tar_core.motion_file import Motion
from tar_core.synthetic.motions import make_motion

__all__ = ["BACKDROPS", "MAX_OCCLUSION", "ClipSpec", "GroundTruth", "look_at", "make_ground_truth",
           "occluder_mask", "occluder_mesh", "occlusion_fraction", "roll"]

BACKDROPS = ("plain", "textured")
TEXTURES = ("noise", "voronoi", "wave", "brick", "magic", "checker")  # Cycles procedural textures
MAX_OCCLUSION = 0.6  # occluders never cover more than this share of the body's projected area in any frame


CLIP_FPS = 30.0  # the frame rate of every clip unless its spec says otherwise (make-dataset never does)

@dataclass(frozen=True)
class ClipSpec:
    """What to render. Shape, clothing, camera height/distance vary with ``seed``."""

    motion: str = "walk"
    frames: int = 90
    width: int = 480
    height: int = 360
    fps: float = CLIP_FPS
    seed: int = 0
    samples: int = 16  # Cycles samples per pixel (denoised)
    focal: float | None = None  # pixels; None = sqrt(W^2 + H^2) like the engines assume
    # Opt-in variety; the defaults keep the original clips exactly (same seed, same ground truth and look).
    tilt: float = 0.0  # camera roll about the optical axis, radians; world up appears turned clockwise
    backdrop: str = "plain"  # "plain": wall + checker floor; "textured": seeded procedural textures and lighting
    occluders: int = 0  # objects between the camera and the person that hide part of the body
    planted_feet: bool = False  # the body travels by its standing foot (no foot slides), not as scripted

    def __post_init__(self):
        if self.backdrop not in BACKDROPS:
            raise UsageError(f"backdrop must be one of {', '.join(BACKDROPS)}, got {self.backdrop!r}")
        if self.occluders < 0:
            raise UsageError(f"occluders must be >= 0, got {self.occluders}")


@dataclass
class GroundTruth:
    spec: ClipSpec
    betas: np.ndarray  # (10,)
    poses_cam: np.ndarray  # (N, 72) global orientation in the camera frame
    trans_cam: np.ndarray  # (N, 3)
    verts_cam: np.ndarray  # (N, V, 3) float32
    joints_cam: np.ndarray  # (N, 24, 3)
    joints_2d: np.ndarray  # (N, 24, 2)
    K: np.ndarray  # (3, 3)
    R_wc: np.ndarray  # (3, 3) world -> camera rotation
    cam_center: np.ndarray  # (3,) camera position in the world
    look: dict  # seeded appearance: colours, sleeves, lights; "backdrop" and "occluders" when the spec asks

    def motion(self, body: BodyModel, provenance: dict) -> Motion:
        n = len(self.poses_cam)
        box = np.concatenate([self.verts_cam_2d.min(1), self.verts_cam_2d.max(1)], axis=1)
        return Motion(
            poses=self.poses_cam, trans=self.trans_cam, betas=self.betas,
            frame_ids=np.arange(n), frame_times=np.arange(n) / self.spec.fps,
            image_size=np.array([self.spec.width, self.spec.height]),
            camera_intrinsics=self.K, bbox_xyxy=box, joints_cam=self.joints_cam,
            joints_2d=self.joints_2d, confidence=np.ones(n), mocap_framerate=self.spec.fps,
            track_id=0, engine="ground-truth", body_model=body.kind, gender=body.data.gender,
            provenance=json.dumps(provenance, sort_keys=True),
        )  # fmt: skip

    @property
    def verts_cam_2d(self) -> np.ndarray:
        return cam.project(self.verts_cam, self.K)


def look_at(eye: np.ndarray, target: np.ndarray, up=(0.0, 1.0, 0.0)) -> np.ndarray:
    """World->camera rotation (rows = camera x right, y down, z forward) of a camera at ``eye``."""
    z = target - eye
    z = z / np.linalg.norm(z)
    x = np.cross(z, np.asarray(up, dtype=np.float64))
    x = x / np.linalg.norm(x)
    y = np.cross(z, x)
    return np.stack([x, y, z])


def roll(R_wc: np.ndarray, tilt: float) -> np.ndarray:
    """``R_wc`` with the camera rolled by ``tilt`` about its optical axis: in the image, world up turns
    clockwise by ``tilt`` (its direction goes from -v towards +u)."""
    c, s = np.cos(tilt), np.sin(tilt)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]) @ R_wc


def _appearance(rng: np.random.Generator) -> dict:
    skin_tones = [(0.80, 0.60, 0.48), (0.62, 0.44, 0.32), (0.42, 0.28, 0.20), (0.90, 0.72, 0.60),
                  (0.55, 0.38, 0.28)]  # fmt: skip
    def colour():
        return tuple(float(c) for c in rng.uniform(0.05, 0.85, 3))
    return {
        "skin": skin_tones[rng.integers(len(skin_tones))],
        "shirt": colour(),
        "trousers": colour(),
        "shoes": tuple(float(c) for c in rng.uniform(0.02, 0.25, 3)),
        "hair": tuple(float(c) for c in rng.uniform(0.02, 0.3) * np.array([1.0, 0.8, 0.6])),
        "long_sleeves": bool(rng.random() < 0.5),
        "floor": tuple(float(c) for c in rng.uniform(0.3, 0.7, 3)),
        "wall": tuple(float(c) for c in rng.uniform(0.4, 0.85, 3)),
        "sun_angle": float(rng.uniform(-0.8, 0.8)),
        "sun_strength": float(rng.uniform(2.0, 4.0)),
    }


_TEXTURE_SCALE = {"noise": (0.4, 4.0), "voronoi": (0.5, 5.0), "wave": (0.3, 2.5), "brick": (0.6, 3.0),
                  "magic": (0.2, 1.5), "checker": (0.5, 5.0)}  # fmt: skip


def _surface(rng: np.random.Generator, lo: float = 0.05, hi: float = 0.9) -> dict:
    """A seeded procedural texture: kind, scale (per metre), two colours and shape parameters."""
    kind = str(TEXTURES[rng.integers(len(TEXTURES))])
    return {
        "texture": kind,
        "scale": float(rng.uniform(*_TEXTURE_SCALE[kind])),
        "colour1": [float(c) for c in rng.uniform(lo, hi, 3)],
        "colour2": [float(c) for c in rng.uniform(lo, hi, 3)],
        "detail": float(rng.uniform(0.0, 6.0)),
        "distortion": float(rng.uniform(0.0, 4.0)),
        "roughness": float(rng.uniform(0.3, 1.0)),
    }


def _backdrop_look(rng: np.random.Generator) -> dict:
    """Textured wall and floor, sky colour and sun colour / elevation of a "textured" backdrop."""
    return {
        "wall": _surface(rng),
        "floor": _surface(rng),
        "world_colour": [float(c) for c in rng.uniform(0.15, 0.9, 3)],
        "world_strength": float(rng.uniform(0.2, 1.2)),
        "sun_elevation": float(np.deg2rad(rng.uniform(20.0, 70.0))),
        "sun_colour": [float(c) for c in 1.0 - rng.uniform(0.0, 0.3, 3)],
    }


def occluder_mesh(o: dict, t: float = 0.0) -> tuple[np.ndarray, list[tuple[int, ...]]]:
    """World vertices (V, 3) and faces of an occluder (see ``look["occluders"]``) at time ``t`` seconds."""
    if o["kind"] == "post":  # vertical cylinder standing on the floor
        a = np.linspace(0.0, 2 * np.pi, 16, endpoint=False)
        ring = np.stack([o["radius"] * np.cos(a), np.zeros_like(a), o["radius"] * np.sin(a)], -1)
        top = ring + [0.0, o["height"], 0.0]
        local = np.concatenate([ring, top])
        m = len(a)
        faces = [(i, (i + 1) % m, m + (i + 1) % m, m + i) for i in range(m)]
        faces += [tuple(range(m - 1, -1, -1)), tuple(range(m, 2 * m))]
    else:  # box on the floor, turned by its yaw about the vertical
        w, h, d = o["size"]
        x, z = np.array([-w, w, w, -w]) / 2, np.array([-d, -d, d, d]) / 2
        local = np.concatenate([np.stack([x, np.zeros(4), z], -1), np.stack([x, np.full(4, h), z], -1)])
        c, s = np.cos(o["yaw"]), np.sin(o["yaw"])
        local = local @ np.array([[c, 0.0, -s], [0.0, 1.0, 0.0], [s, 0.0, c]])
        faces = [(3, 2, 1, 0), (4, 5, 6, 7), (0, 1, 5, 4), (1, 2, 6, 5), (2, 3, 7, 6), (3, 0, 4, 7)]
    return local + np.asarray(o["base"]) + t * np.asarray(o["velocity"]), faces


def _mask_of(points_cam: np.ndarray, K: np.ndarray, W: int, H: int, mask: np.ndarray | None = None) -> np.ndarray:
    """Fill the image region of a convex object (its projected vertices' convex hull)."""
    import cv2

    if mask is None:
        mask = np.zeros((H, W), np.uint8)
    p = np.round(cam.project(points_cam, K) * 4).astype(np.int32)  # 2 fractional bits
    cv2.fillConvexPoly(mask, cv2.convexHull(p), 1, lineType=cv2.LINE_8, shift=2)
    return mask


def _occluders_mask(occluders: list[dict], i: int, fps: float, R, C, K, W: int, H: int) -> np.ndarray:
    mask = np.zeros((H, W), np.uint8)
    for o in occluders:
        _mask_of((occluder_mesh(o, i / fps)[0] - C) @ R.T, K, W, H, mask)
    return mask.astype(bool)


def occluder_mask(gt: GroundTruth, i: int) -> np.ndarray:
    """(H, W) bool: where the occluders of ``gt`` cover the image in frame ``i``."""
    s = gt.spec
    return _occluders_mask(gt.look.get("occluders", []), i, s.fps, gt.R_wc, gt.cam_center, gt.K, s.width, s.height)


class _BodyArea:
    """Projected triangles of the body per frame, to measure how much of it an image mask covers."""

    def __init__(self, verts_2d: np.ndarray, faces: np.ndarray, W: int, H: int):
        tri = verts_2d[:, faces]  # (N, F, 3, 2)
        e1, e2 = tri[:, :, 1] - tri[:, :, 0], tri[:, :, 2] - tri[:, :, 0]
        self.area = np.abs(e1[..., 0] * e2[..., 1] - e1[..., 1] * e2[..., 0]).astype(np.float32)
        c = tri.mean(2)
        self.cx = np.clip(np.floor(c[..., 0]), 0, W - 1).astype(np.int32)
        self.cy = np.clip(np.floor(c[..., 1]), 0, H - 1).astype(np.int32)

    def covered(self, i: int, mask: np.ndarray) -> float:
        return float((self.area[i] * mask[self.cy[i], self.cx[i]]).sum() / max(self.area[i].sum(), 1e-9))


def occlusion_fraction(gt: GroundTruth, faces: np.ndarray) -> np.ndarray:
    """(N,) share of the body's projected area that the occluders cover, per frame (area-weighted faces)."""
    s = gt.spec
    area = _BodyArea(gt.verts_cam_2d, np.asarray(faces), s.width, s.height)
    return np.array([area.covered(i, occluder_mask(gt, i)) for i in range(len(gt.verts_cam))])


def _place_occluders(spec: ClipSpec, verts_cam: np.ndarray, faces: np.ndarray, R, C, K) -> list[dict]:
    """Seeded occluders between the camera and the person, each hiding part of the body in some frames
    (at least 5 % of its area) and all together never more than ``MAX_OCCLUSION`` of it in any frame."""
    rng = np.random.default_rng([spec.seed, 2])
    W, H, n, fps = spec.width, spec.height, len(verts_cam), spec.fps
    uv = cam.project(verts_cam, K)
    area = _BodyArea(uv, faces, W, H)
    z_near = float(verts_cam[..., 2].min())
    Kinv = np.linalg.inv(K)
    side = R[0] * np.array([1.0, 0.0, 1.0])  # the camera's right, level with the floor
    side /= np.linalg.norm(side)
    placed: list[dict] = []
    for _ in range(spec.occluders):
        for _attempt in range(40):
            d = rng.uniform(0.4, 0.7) * z_near
            f = int(rng.integers(n))
            (x0, y0), (x1, y1) = uv[f].min(0), uv[f].max(0)
            px = np.array([x0 + rng.uniform(0.0, 1.0) * (x1 - x0), y0 + rng.uniform(0.3, 0.9) * (y1 - y0), 1.0])
            base = C + R.T @ (d * (Kinv @ px))
            base[1] = 0.0
            o = {"kind": "post" if rng.random() < 0.6 else "box", "base": [float(b) for b in base]}
            if o["kind"] == "post":
                o["radius"] = float(rng.uniform(0.02, 0.07) * d)
                o["height"] = float(rng.uniform(1.2, 2.6))
            else:
                o["size"] = [float(rng.uniform(0.15, 0.45) * d), float(rng.uniform(0.4, 1.3)),
                             float(rng.uniform(0.1, 0.3) * d)]  # fmt: skip
                o["yaw"] = float(rng.uniform(-0.6, 0.6))
            speed = rng.uniform(-0.25, 0.25) * d if rng.random() < 0.5 else 0.0  # some drift sideways
            o["velocity"] = [float(v) for v in speed * side]
            o["colour"] = [float(c) for c in rng.uniform(0.05, 0.9, 3)]
            o["surface"] = _surface(rng) if rng.random() < 0.6 else None
            depth = np.concatenate([(occluder_mesh(o, i / fps)[0] - C) @ R.T for i in (0, n - 1)])[:, 2]
            if depth.min() < 0.15 or depth.max() > z_near - 0.1:
                continue
            own = np.zeros(n)
            total = np.zeros(n)
            for i in range(n):
                m = _occluders_mask([o], i, fps, R, C, K, W, H)
                own[i] = area.covered(i, m)
                total[i] = area.covered(i, m | _occluders_mask(placed, i, fps, R, C, K, W, H)) if placed else own[i]
            if own.max() >= 0.05 and total.max() <= MAX_OCCLUSION:
                placed.append(o)
                break
    return placed


LEFT_FOOT, RIGHT_FOOT = (5, 7), (8, 10)  # big toe and heel among the extra joints (smplx order)
STANCE_SOFTNESS = 0.01  # metres of height difference over which the standing foot hands over


def _travel_by_standing_foot(body: BodyModel, poses: torch.Tensor, betas: torch.Tensor, trans: np.ndarray,
                             stance: np.ndarray | None) -> np.ndarray:
    """The motion's translation with its floor-plane part (x, z) replaced by the one that keeps the standing
    foot where it stands: each frame the root moves against that foot's move under the pose alone. Which
    foot stands: the motion's ``stance`` (N, 2) where it knows, else the lower one (both, blended, while
    they are level). Centred on the middle frame like the scripted paths."""
    rel = body(poses[:, :3], poses[:, 3:], betas, None, full_mesh=False).extra_joints.double().numpy()
    feet = [rel[:, list(ids)] for ids in (LEFT_FOOT, RIGHT_FOOT)]  # (N, 2, 3) each
    place = np.stack([f.mean(1)[:, [0, 2]] for f in feet], 1)  # (N, 2, 2) floor-plane position
    if stance is None:
        height = np.stack([f[..., 1].min(1) for f in feet], 1)  # (N, 2) lowest point of each foot
        left = 1.0 / (1.0 + np.exp(np.clip((height[:, 0] - height[:, 1]) / STANCE_SOFTNESS, -50, 50)))
        stance = np.stack([left, 1.0 - left], 1)
    w = (stance / np.maximum(stance.sum(1, keepdims=True), 1e-9))[:-1, :, None]  # at the start of each step
    step = (w * np.diff(place, axis=0)).sum(1)  # (N-1, 2) the standing foot's move, to undo
    path = np.concatenate([np.zeros((1, 2)), -np.cumsum(step, 0)])
    out = trans.astype(np.float64).copy()
    out[:, [0, 2]] = path - path[len(path) // 2]
    return out.astype(trans.dtype)


@torch.no_grad()
def make_ground_truth(spec: ClipSpec, body: BodyModel) -> GroundTruth:
    """Pose the body for the spec's motion, place a seeded camera that keeps it in view."""
    rng = np.random.default_rng(spec.seed)
    poses_w, trans_w, stance = make_motion(spec.motion, spec.frames, spec.fps, rng, spec.planted_feet)
    betas = np.clip(rng.normal(0.0, 0.8, NUM_BETAS), -2.0, 2.0).astype(np.float32)
    look = _appearance(rng)

    n = spec.frames
    tb = torch.from_numpy(np.tile(betas, (n, 1)))
    tp = torch.from_numpy(poses_w)
    if spec.planted_feet:
        trans_w = _travel_by_standing_foot(body, tp, tb, trans_w, stance)
    out = body(tp[:, :3], tp[:, 3:], tb, torch.from_numpy(trans_w).float())
    # Feet on the floor: lift or lower each frame so the lowest vertex touches y = 0.
    lowest = out.vertices[..., 1].min(dim=1).values.numpy().astype(np.float64)
    trans_w = trans_w.copy()
    trans_w[:, 1] -= lowest
    verts_w = out.vertices.numpy().astype(np.float64)
    verts_w[..., 1] -= lowest[:, None]
    joints_w = out.joints.numpy().astype(np.float64)
    joints_w[..., 1] -= lowest[:, None]

    W, H = spec.width, spec.height
    f = spec.focal or cam.default_focal(W, H)
    K = cam.intrinsics(f, cam.default_principal_point(W, H))
    # Camera in front of the body (+z side), seeded height; distance grows until all fits.
    centre = verts_w.reshape(-1, 3).mean(0)
    target = np.array([centre[0], rng.uniform(0.7, 1.1), centre[2]])
    cam_height = rng.uniform(0.6, 2.0)
    azimuth = rng.uniform(-0.5, 0.5)
    dist = rng.uniform(2.5, 3.5)
    lo, hi = np.array([0.04 * W, 0.04 * H]), np.array([0.96 * W, 0.96 * H])
    for _ in range(400):
        eye = target + np.array([dist * np.sin(azimuth), 0.0, dist * np.cos(azimuth)])
        eye[1] = cam_height
        R = look_at(eye, target)
        if spec.tilt:
            R = roll(R, spec.tilt)
        vc = (verts_w - eye) @ R.T
        if vc[..., 2].min() > 0.3:
            p = cam.project(vc[::4, ::7], K)
            if (p.min((0, 1)) >= lo).all() and (p.max((0, 1)) <= hi).all():
                break
        dist *= 1.05
    else:
        raise RuntimeError(f"could not fit the body in view for {spec}")
    verts_cam = (verts_w - eye) @ R.T
    joints_cam = (joints_w - eye) @ R.T

    # Camera-frame SMPL parameters: R' = R_wc R_g, trans' = R_wc (J0 + trans_w - C) - J0.
    J0 = body.rest_joints(torch.from_numpy(betas)[None])[0, 0].numpy().astype(np.float64)
    Rg = axis_angle_to_matrix(poses_w[:, :3].astype(np.float64))
    poses_cam = poses_w.copy()
    poses_cam[:, :3] = matrix_to_axis_angle(R @ Rg).astype(np.float32)
    trans_cam = (J0 + trans_w - eye) @ R.T - J0

    # Opt-in variety from generators of their own, so the draws above stay those of the original clips.
    if spec.backdrop == "textured":
        look["backdrop"] = _backdrop_look(np.random.default_rng([spec.seed, 1]))
    if spec.occluders:
        look["occluders"] = _place_occluders(spec, verts_cam, body.faces, R, eye, K)

    return GroundTruth(
        spec=spec, betas=betas, poses_cam=poses_cam.astype(np.float32),
        trans_cam=trans_cam.astype(np.float32), verts_cam=verts_cam.astype(np.float32),
        joints_cam=joints_cam.astype(np.float32),
        joints_2d=cam.project(joints_cam, K).astype(np.float32), K=K.astype(np.float32),
        R_wc=R, cam_center=eye, look=look,
    )  # fmt: skip
