"""Exact ground truth for a synthetic clip: body, camera and the motion-file arrays.

Pure torch/numpy (no bpy): the renderer only draws what this module computed, so the motion
file is exact by construction. World frame: y up, floor at y = 0. Camera frame: OpenCV.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import torch

from .. import camera as cam
from ..body_model import NUM_BETAS, BodyModel
from ..motion_file import Motion
from ..rotations import axis_angle_to_matrix, matrix_to_axis_angle
from .motions import make_motion

__all__ = ["ClipSpec", "GroundTruth", "make_ground_truth", "look_at"]


@dataclass(frozen=True)
class ClipSpec:
    """What to render. Shape, clothing, camera height/distance vary with ``seed``."""

    motion: str = "walk"
    frames: int = 90
    width: int = 480
    height: int = 360
    fps: float = 30.0
    seed: int = 0
    samples: int = 16  # Cycles samples per pixel (denoised)
    focal: float | None = None  # pixels; None = sqrt(W^2 + H^2) like the engines assume


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
    look: dict  # seeded appearance: colours, sleeves, lights

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


@torch.no_grad()
def make_ground_truth(spec: ClipSpec, body: BodyModel) -> GroundTruth:
    """Pose the body for the spec's motion, place a seeded camera that keeps it in view."""
    rng = np.random.default_rng(spec.seed)
    poses_w, trans_w = make_motion(spec.motion, spec.frames, spec.fps, rng)
    betas = np.clip(rng.normal(0.0, 0.8, NUM_BETAS), -2.0, 2.0).astype(np.float32)
    look = _appearance(rng)

    n = spec.frames
    tb = torch.from_numpy(np.tile(betas, (n, 1)))
    tp = torch.from_numpy(poses_w)
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
    for _ in range(200):
        eye = target + np.array([dist * np.sin(azimuth), 0.0, dist * np.cos(azimuth)])
        eye[1] = cam_height
        R = look_at(eye, target)
        vc = (verts_w - eye) @ R.T
        if vc[..., 2].min() > 0.3:
            p = cam.project(vc[::4, ::7], K)
            if (p.min((0, 1)) >= lo).all() and (p.max((0, 1)) <= hi).all():
                break
        dist *= 1.05
    verts_cam = (verts_w - eye) @ R.T
    joints_cam = (joints_w - eye) @ R.T

    # Camera-frame SMPL parameters: R' = R_wc R_g, trans' = R_wc (J0 + trans_w - C) - J0.
    J0 = body.rest_joints(torch.from_numpy(betas)[None])[0, 0].numpy().astype(np.float64)
    Rg = axis_angle_to_matrix(poses_w[:, :3].astype(np.float64))
    poses_cam = poses_w.copy()
    poses_cam[:, :3] = matrix_to_axis_angle(R @ Rg).astype(np.float32)
    trans_cam = (J0 + trans_w - eye) @ R.T - J0

    return GroundTruth(
        spec=spec, betas=betas, poses_cam=poses_cam.astype(np.float32),
        trans_cam=trans_cam.astype(np.float32), verts_cam=verts_cam.astype(np.float32),
        joints_cam=joints_cam.astype(np.float32),
        joints_2d=cam.project(joints_cam, K).astype(np.float32), K=K.astype(np.float32),
        R_wc=R, cam_center=eye, look=look,
    )  # fmt: skip
