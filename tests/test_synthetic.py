"""Synthetic clips: exact ground truth, scripted motions, and renders that match it."""

from __future__ import annotations

import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch

from tar_core import camera
from tar_core.body_model import JOINT_NAMES, load_body_model
from tar_core.motion_file import read_motion
from tar_core.rotations import axis_angle_to_matrix
from tar_core.synthetic.groundtruth import ClipSpec, make_ground_truth
from tar_core.synthetic.motions import MOTIONS

J = {n: i for i, n in enumerate(JOINT_NAMES)}


@pytest.fixture(scope="module")
def body():
    return load_body_model()


@pytest.mark.parametrize("motion", sorted(MOTIONS))
def test_ground_truth_is_exact_in_the_camera_frame(body, motion):
    spec = ClipSpec(motion=motion, frames=40, width=320, height=240, seed=5)
    gt = make_ground_truth(spec, body)
    n = spec.frames
    p = torch.from_numpy(gt.poses_cam)
    out = body(p[:, :3], p[:, 3:], torch.from_numpy(np.tile(gt.betas, (n, 1))), torch.from_numpy(gt.trans_cam))
    # The motion-file convention: joints_cam = SMPL(poses, betas).joints + trans.
    np.testing.assert_allclose(out.joints.numpy(), gt.joints_cam, atol=2e-5)
    np.testing.assert_allclose(out.vertices.numpy(), gt.verts_cam, atol=2e-5)
    np.testing.assert_allclose(gt.joints_2d, camera.project(gt.joints_cam, gt.K), atol=1e-3)
    # The whole body is in front of the camera and inside the image.
    assert gt.verts_cam[..., 2].min() > 0.5
    uv = camera.project(gt.verts_cam, gt.K)
    assert uv[..., 0].min() >= 0 and uv[..., 0].max() < spec.width
    assert uv[..., 1].min() >= 0 and uv[..., 1].max() < spec.height
    # Feet on the floor: the lowest vertex of every frame touches the floor plane.
    floor_normal_cam = gt.R_wc @ np.array([0.0, 1.0, 0.0])
    heights = (gt.verts_cam @ floor_normal_cam) - ((-gt.cam_center) @ np.array([0.0, 1.0, 0.0]))
    np.testing.assert_allclose(heights.min(1), 0.0, atol=1e-4)


def _world_joints(gt):
    """Joints back in the world frame (y up): X_w = R^T X_c + C."""
    return gt.joints_cam @ gt.R_wc + gt.cam_center


def test_motions_do_what_their_names_say(body):
    walk = make_ground_truth(ClipSpec(motion="walk", frames=60, seed=2), body)
    jw = _world_joints(walk)
    # Walking: the pelvis travels and the ankles take turns in front.
    assert np.linalg.norm(jw[-1, 0, [0, 2]] - jw[0, 0, [0, 2]]) > 1.0
    ahead = np.einsum("nc,c->n", jw[:, J["left_ankle"]] - jw[:, J["right_ankle"]],
                      np.array([np.sin(0), 0, 1.0]))
    assert (np.diff(np.sign(ahead)) != 0).sum() >= 2

    sq = _world_joints(make_ground_truth(ClipSpec(motion="squat", frames=60, seed=2), body))
    assert sq[:, 0, 1].max() - sq[:, 0, 1].min() > 0.2  # the pelvis goes down and up

    arms = _world_joints(make_ground_truth(ClipSpec(motion="arms", frames=90, seed=2), body))
    assert (arms[:, J["left_wrist"], 1] > arms[:, J["head"], 1]).any()  # a hand above the head
    assert (arms[:, J["right_wrist"], 1] > arms[:, J["head"], 1]).any()
    assert (arms[:, J["left_wrist"], 1] < arms[:, J["pelvis"], 1] + 0.1).any()  # and hanging

    turn = make_ground_truth(ClipSpec(motion="turn", frames=90, seed=2), body)
    Rg = axis_angle_to_matrix(turn.poses_cam[:, :3].astype(np.float64))
    facing = Rg[:, :, 2] @ turn.R_wc  # body +z in the world
    yaw = np.unwrap(np.arctan2(facing[:, 0], facing[:, 2]))
    assert abs(yaw[-1] - yaw[0]) > np.deg2rad(180)


def test_seed_varies_shape_and_camera_and_is_reproducible(body):
    a = make_ground_truth(ClipSpec(frames=5, seed=1), body)
    b = make_ground_truth(ClipSpec(frames=5, seed=1), body)
    c = make_ground_truth(ClipSpec(frames=5, seed=2), body)
    np.testing.assert_array_equal(a.joints_cam, b.joints_cam)
    assert not np.allclose(a.betas, c.betas)
    assert abs(a.cam_center[1] - c.cam_center[1]) > 1e-3 or not np.allclose(a.R_wc, c.R_wc)
    assert a.look != c.look


def test_rendered_silhouette_covers_joints_2d(body):
    """The Blender camera and the ground truth agree: every joint projects onto the body."""
    from tar_core.synthetic.scene import render_frames

    for motion, seed in (("arms", 4), ("walk", 7)):
        spec = ClipSpec(motion=motion, frames=24, width=200, height=150, seed=seed, samples=2)
        gt = make_ground_truth(spec, body)
        frames = [0, 12]
        gt.verts_cam = gt.verts_cam[frames]
        for i, img in zip(frames, render_frames(gt, body, backdrop=False), strict=True):
            assert img.shape == (150, 200, 4)
            mask = img[..., 3] > 127
            assert 0.03 < mask.mean() < 0.6  # a body, not an empty or a full frame
            mask = cv2.dilate(mask.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0  # 1-px slack
            uv = np.round(gt.joints_2d[i]).astype(int)
            covered = mask[uv[:, 1], uv[:, 0]]
            assert covered.all(), [JOINT_NAMES[k] for k in np.flatnonzero(~covered)]
            # and the silhouette is where the mesh projects: its box matches the vertices' box
            ys, xs = np.nonzero(img[..., 3] > 127)
            proj = camera.project(gt.verts_cam[frames.index(i)], gt.K)
            assert abs(xs.min() - proj[:, 0].min()) < 2.5 and abs(xs.max() - proj[:, 0].max()) < 2.5
            assert abs(ys.min() - proj[:, 1].min()) < 2.5 and abs(ys.max() - proj[:, 1].max()) < 2.5


def test_render_clip_cli_writes_video_and_valid_ground_truth(tmp_path):
    out = tmp_path / "clip é.mp4"
    res = subprocess.run(
        [sys.executable, "-m", "tar_core", "render-clip", "--motion", "squat", "--frames", "3",
         "--size", "96x72", "--samples", "1", "--seed", "3", "-o", str(out)],
        capture_output=True, text=True, timeout=300,
    )
    assert res.returncode == 0, res.stderr
    assert "mannequin" in res.stderr  # says which body was used
    cap = cv2.VideoCapture(str(out))
    frames = []
    while True:
        ok, img = cap.read()
        if not ok:
            break
        frames.append(img)
    assert len(frames) == 3 and frames[0].shape == (72, 96, 3)
    assert frames[0].std() > 5  # an actual picture
    m = read_motion(out.with_suffix(".npz"))
    assert m.engine == "ground-truth" and m.body_model == "mannequin" and m.num_frames == 3
    assert m.provenance_dict["motion"] == "squat"
    np.testing.assert_allclose(m.joints_2d, camera.project(m.joints_cam, m.camera_intrinsics), atol=1e-3)
    assert not list(tmp_path.glob(".*"))  # no temporary files left
