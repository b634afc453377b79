"""Person detection with MediaPipe BlazePose (the pose model bundled in ``mediapipe==0.10.21``).

What it can do: find one person per frame, with no download, at ~37 frames/s on one CPU core, and
give 33 landmarks (image pixels + visibility, and metric "world" coordinates) that the keypoints
engine fits. What it cannot: several people at once (it follows the most prominent one), people
whose face and upper body are hidden (its detector starts from the face), very small people. For
several people, give boxes from another detector with ``--boxes FILE``.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import numpy as np

from tar_core.capture.tracking import Detection

__all__ = ["Landmarks", "PoseDetector", "landmarks_box"]


@dataclass
class Landmarks:
    image_xy: np.ndarray  # (33, 2) pixels
    visibility: np.ndarray  # (33,) 0..1
    world: np.ndarray  # (33, 3) metres, hip-centred (MediaPipe's world landmarks)


def landmarks_box(lm: Landmarks, width: int, height: int, min_visibility: float = 0.3) -> np.ndarray | None:
    """(4,) person box around the visible landmarks, padded to cover the body's surface."""
    vis = lm.visibility >= min_visibility
    if vis.sum() < 4:
        return None
    pts = lm.image_xy[vis]
    x0, y0 = pts.min(0)
    x1, y1 = pts.max(0)
    # Landmarks are joints and face points: pad to reach the skin and the top of the head.
    head = np.linalg.norm(lm.image_xy[7] - lm.image_xy[8])  # ear to ear
    pad = 0.08 * max(x1 - x0, y1 - y0)
    box = np.array([x0 - pad, y0 - pad - 0.6 * head, x1 + pad, y1 + pad], dtype=np.float64)
    box[[0, 2]] = box[[0, 2]].clip(0, width - 1)
    box[[1, 3]] = box[[1, 3]].clip(0, height - 1)
    return box if box[2] - box[0] > 4 and box[3] - box[1] > 4 else None


class PoseDetector:
    """BlazePose in video mode (it tracks between frames), ``model_complexity=1`` (the only model
    that ships in the wheel; 0 and 2 would try to download)."""

    def __init__(self, min_detection_confidence: float = 0.5, min_tracking_confidence: float = 0.5):
        os.environ.setdefault("GLOG_minloglevel", "2")  # keep MediaPipe's C++ logging quiet
        import mediapipe as mp

        with open(os.devnull, "w") as devnull, contextlib.redirect_stderr(devnull):
            self._pose = mp.solutions.pose.Pose(
                static_image_mode=False, model_complexity=1, smooth_landmarks=True, enable_segmentation=False,
                min_detection_confidence=min_detection_confidence, min_tracking_confidence=min_tracking_confidence,
            )  # fmt: skip

    def __call__(self, image_rgb: np.ndarray) -> list[Detection]:
        """One frame (H, W, 3) uint8 RGB -> zero or one detection carrying its Landmarks."""
        h, w = image_rgb.shape[:2]
        res = self._pose.process(image_rgb)
        if res.pose_landmarks is None:
            return []
        lm2 = np.array([(p.x * w, p.y * h, p.visibility) for p in res.pose_landmarks.landmark])
        world = np.array([(p.x, p.y, p.z) for p in res.pose_world_landmarks.landmark])
        lm = Landmarks(image_xy=lm2[:, :2], visibility=lm2[:, 2], world=world)
        box = landmarks_box(lm, w, h)
        if box is None:
            return []
        return [Detection(box=box, score=float(np.mean(lm.visibility)), payload=lm)]

    def close(self) -> None:
        self._pose.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
