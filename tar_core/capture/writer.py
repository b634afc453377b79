"""Writes one motion file per finished track (atomically) and remembers it for the summary."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from tar_core.errors import OutputError
from tar_core.geometry import camera as cam
from tar_core.motion_file import Motion, write_motion

__all__ = ["MotionWriter"]


class MotionWriter:
    """``write`` turns a track's SMPL parameters into a motion file with joints, 2D joints and provenance."""

    def __init__(self, out_dir: Path, info, K: np.ndarray, body, engine: str, provenance: dict, progress):
        self.out_dir, self.info, self.K, self.body = Path(out_dir), info, K, body
        self.engine, self.provenance, self.progress = engine, provenance, progress
        self.people: list[dict] = []

    def _joints(self, poses: np.ndarray, trans: np.ndarray, betas: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            n = len(poses)
            p = torch.from_numpy(poses.astype(np.float32))
            out = self.body(p[:, :3], p[:, 3:], torch.from_numpy(np.tile(betas, (n, 1)).astype(np.float32)),
                            torch.from_numpy(trans.astype(np.float32)), full_mesh=False)
        return out.joints.numpy().astype(np.float64)  # (N, 24, 3)

    def set_camera(self, K: np.ndarray, provenance: dict) -> None:
        """An engine that estimated the intrinsics writes them (and how it got them) into every later file."""
        self.K = np.asarray(K, dtype=np.float64)
        self.provenance = {**self.provenance, **provenance}

    def write(self, track, poses: np.ndarray, trans: np.ndarray, betas: np.ndarray, confidence: np.ndarray,
              extras: dict | None = None, provenance: dict | None = None) -> Path:
        """``track`` has frame_ids, times, boxes and track_id (a TrackData or the like); ``extras``: the motion
        file's optional arrays (contacts, ground_plane, poses_raw, trans_raw); ``provenance``: entries of this
        file's provenance that differ from the engine's."""
        joints = self._joints(poses, trans, betas)
        motion = Motion(
            poses=poses, trans=trans, betas=betas, frame_ids=np.asarray(track.frame_ids),
            frame_times=np.asarray(track.times, dtype=np.float64),
            image_size=np.array([self.info.width, self.info.height]), camera_intrinsics=self.K,
            bbox_xyxy=np.asarray(track.boxes), joints_cam=joints, joints_2d=cam.project(joints, self.K),
            confidence=np.clip(confidence, 0.0, 1.0), mocap_framerate=self.info.fps, track_id=track.track_id,
            engine=self.engine, body_model=self.body.kind, gender=self.body.data.gender,
            provenance=json.dumps({**self.provenance, **(provenance or {}), "track_id": track.track_id},
                                  sort_keys=True),
            **(extras or {}),
        )  # fmt: skip
        path = self.out_dir / f"person_{track.track_id}.npz"
        try:
            write_motion(path, motion)  # atomic: a failed write leaves no partial file
        except OSError as exc:
            raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None
        n = len(poses)
        self.people.append({
            "track_id": track.track_id, "path": str(path), "rows": n,
            "first_frame": int(track.frame_ids[0]), "last_frame": int(track.frame_ids[-1]),
            "first_time": float(track.times[0]), "last_time": float(track.times[-1]),
        })  # fmt: skip
        self.progress.emit("output", path=str(path), track_id=track.track_id, frames=n)
        return path
