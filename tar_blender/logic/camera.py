"""OpenCV camera conventions to Blender's, numpy only.

Placement (the motion-file convention): the Blender camera sits at the world origin looking along
+Y with +Z up, so an OpenCV camera-frame point (x, y, z) is at world (x, z, -y).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["CV_TO_WORLD", "CAMERA_EULER", "camera_settings", "floor_matrix"]

CV_TO_WORLD = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])  # rotation -90 deg about X
CAMERA_EULER = (math.pi / 2, 0.0, 0.0)  # a Blender camera looks down its -Z: this turns it to +Y


def camera_settings(K: np.ndarray, width: int, height: int, sensor_width: float = 36.0) -> dict:
    """Blender camera data settings that reproduce pinhole K on a width x height render.

    The principal-point shift uses pixel centres ((W - 1) / 2), OpenCV's convention; dropping the
    half pixel would cost 0.7 px. fx != fy becomes a pixel aspect ratio.
    """
    fx, fy, cx, cy = float(K[0, 0]), float(K[1, 1]), float(K[0, 2]), float(K[1, 2])
    aspect_x, aspect_y = (1.0, fx / fy) if fx >= fy else (fy / fx, 1.0)
    return {
        "sensor_fit": "HORIZONTAL",
        "sensor_width": sensor_width,
        "lens": fx * sensor_width / width,
        "shift_x": ((width - 1) / 2.0 - cx) / width,
        "shift_y": (cy - (height - 1) / 2.0) / width * fx / fy,
        "resolution": (int(width), int(height)),
        "pixel_aspect": (aspect_x, aspect_y),
    }


def floor_matrix(ground_plane) -> np.ndarray:
    """(4, 4) Blender world transform that puts a motion file's ground plane (camera frame, OpenCV axes:
    unit normal up, ``n . p + d = 0``) at z = 0 with its normal along +z, for the default placement
    (camera at the origin, OpenCV (x, y, z) -> Blender (x, z, -y)). The smallest rotation that levels the
    floor, so the camera keeps its heading; a parent with this matrix moves camera and rigs together."""
    g = np.asarray(ground_plane, dtype=np.float64)
    n = np.array([g[0], g[2], -g[1]])  # the normal in Blender axes
    z = np.array([0.0, 0.0, 1.0])
    axis = np.cross(n, z)
    s, c = np.linalg.norm(axis), float(n @ z)
    if s < 1e-12:
        R = np.eye(3) if c > 0 else np.diag([1.0, -1.0, -1.0])
    else:
        k = axis / s
        kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
        R = np.eye(3) + s * kx + (1 - c) * kx @ kx
    M = np.eye(4)
    M[:3, :3] = R
    M[2, 3] = g[3]  # on the floor n . p = -d, so after turning, z = -d: lift by d
    return M
