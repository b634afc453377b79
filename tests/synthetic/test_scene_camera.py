"""The renderer's camera comes from the add-on's one K -> Blender implementation, checked with Blender's own
projection for non-square pixels (fx != fy) and an off-centre principal point."""

import numpy as np
import pytest

from tar_blender.logic.camera import CV_TO_WORLD

CAMERAS = [  # (fx, fy, cx, cy, W, H)
    (1100.0, 850.0, 300.0, 260.5, 640, 480),  # fx > fy
    (700.0, 910.0, 205.0, 330.0, 384, 640),  # fx < fy, portrait
    (800.0, 800.0, 331.7, 228.2, 640, 480),  # off-centre principal point
]


@pytest.mark.parametrize(("fx", "fy", "cx", "cy", "W", "H"), CAMERAS)
def test_render_camera_projects_like_K(fx, fy, cx, cy, W, H):
    bpy = pytest.importorskip("bpy")
    from bpy_extras.object_utils import world_to_camera_view
    from mathutils import Vector

    from tar_core.synthetic.scene import _setup_camera

    bpy.ops.wm.read_homefile(use_empty=True)
    scene = bpy.context.scene
    K = np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1.0]])
    cam = _setup_camera(bpy, scene, K, W, H)
    bpy.context.view_layer.update()
    rng = np.random.default_rng(0)
    pts = np.stack([rng.uniform(-1, 1, 50), rng.uniform(-1, 1, 50), rng.uniform(2, 8, 50)], -1)  # OpenCV camera
    expected = pts @ K.T
    expected = expected[:, :2] / expected[:, 2:]
    seen = []
    for p in pts @ CV_TO_WORLD.T:
        ndc = world_to_camera_view(scene, cam, Vector(p))
        seen.append((ndc.x * W - 0.5, (1.0 - ndc.y) * H - 0.5))  # pixel centres at integers (OpenCV)
    np.testing.assert_allclose(np.array(seen), expected, atol=1e-3)
