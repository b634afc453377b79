"""OpenCV camera conventions to Blender's, numpy only.

Placement (the motion-file convention): the Blender camera sits at the world origin looking along
+Y with +Z up, so an OpenCV camera-frame point (x, y, z) is at world (x, z, -y).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["CV_TO_WORLD", "CAMERA_EULER", "camera_settings"]

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
