"""Synthetic clips: exact ground truth, scripted motions, and renders that match it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from conftest import read_video

from tar_core.body_model import JOINT_NAMES, load_body_model
from tar_core.geometry import camera
from tar_core.geometry.rotations import axis_angle_to_matrix
from tar_core.motion_file import read_motion
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
         "--size", "96x72", "--samples", "1", "--seed", "3", "--tilt", "0.1", "--backdrop", "textured",
         "--occluders", "1", "-o", str(out)],
        capture_output=True, text=True, timeout=300,
    )
    assert res.returncode == 0, res.stderr
    assert "mannequin" in res.stderr  # says which body was used
    frames, _ = read_video(out)
    assert len(frames) == 3 and frames[0].shape == (72, 96, 3)
    assert frames[0].std() > 5  # an actual picture
    m = read_motion(out.with_suffix(".npz"))
    assert m.engine == "ground-truth" and m.body_model == "mannequin" and m.num_frames == 3
    prov = m.provenance_dict
    assert prov["motion"] == "squat" and prov["camera_roll"] == 0.1 and prov["backdrop"] == "textured"
    assert prov["occluders_requested"] == 1 and "backdrop" in prov["appearance"]
    np.testing.assert_allclose(m.joints_2d, camera.project(m.joints_cam, m.camera_intrinsics), atol=1e-3)
    assert not list(tmp_path.glob(".*"))  # no temporary files left


# --- variety: random motion, camera roll and focal, textured backdrops, occluders -----------------------------


def _joint_angles(poses):
    from tar_core.synthetic.motions import JOINT_ORDER, euler_angles

    R = axis_angle_to_matrix(poses.reshape(len(poses), 24, 3).astype(np.float64))
    return {n: euler_angles(R[:, J[n]], JOINT_ORDER.get(n, "xyz")) for n in JOINT_NAMES}


def test_random_motion_is_smooth_and_inside_the_joint_limits():
    from tar_core.synthetic.motions import JOINT_LIMITS, make_motion

    fps = 30.0
    runs = [make_motion("random", 150, fps, np.random.default_rng(s)) for s in range(4)]
    for poses, trans, stance in runs:
        assert stance is None  # no foot schedule: a body would travel by its lower foot
        assert poses.shape == (150, 72) and trans.shape == (150, 3)
        angles = _joint_angles(poses)
        for name, lim in JOINT_LIMITS.items():
            a = angles[name]
            assert (a >= lim[:, 0] - 1e-4).all() and (a <= lim[:, 1] + 1e-4).all(), name
            # Smooth: at most ~6 rad/s, and no jerks (bounded frame-to-frame acceleration).
            assert np.abs(np.diff(a, axis=0)).max() < 0.2, name
            assert np.abs(np.diff(a, 2, axis=0)).max() < 0.06, name
        for name in ("left_hand", "right_hand"):
            np.testing.assert_allclose(angles[name], 0.0, atol=1e-6)
        # It starts from a relaxed stand: arms hanging, legs nearly straight.
        assert np.rad2deg(angles["left_shoulder"][0, 2]) < -45 and np.rad2deg(angles["right_shoulder"][0, 2]) > 45
        assert np.rad2deg(angles["left_knee"][0, 0]) < 40 and np.rad2deg(angles["right_knee"][0, 0]) < 40
        # The root turns smoothly and drifts only a little.
        yaw = np.unwrap(np.arctan2(*axis_angle_to_matrix(poses[:, :3].astype(np.float64))[:, [0, 2], 2].T))
        assert np.abs(np.diff(yaw)).max() < 0.15
        assert np.abs(np.diff(trans, axis=0)).max() < 0.05 and np.abs(trans).max() < 1.5
        # Every joint actually moves.
        spread = np.array([np.ptp(angles[n], axis=0).max() for n in JOINT_LIMITS if n not in ("left_knee",)])
        assert (spread > np.deg2rad(1)).all()
    again = make_motion("random", 150, fps, np.random.default_rng(0))
    np.testing.assert_array_equal(again[0], runs[0][0])
    assert np.abs(runs[0][0] - runs[1][0]).max() > 0.3


def test_default_variety_fields_keep_the_original_clips(body):
    """Specs that do not ask for the new variety give the same ground truth and look as before."""
    import json

    from tar_core.motion_file import read_motion
    from tar_core.synthetic.groundtruth import ClipSpec as Spec

    # The committed sample was rendered by the original code (scripts/make_sample.py).
    sample = read_motion(Path(__file__).resolve().parents[2] / "data" / "sample" / "sample_walk.npz")
    gt = make_ground_truth(Spec(motion="walk", frames=72, width=384, height=288, fps=24, seed=1), body)
    # to float32 rounding: the body model's matrix products differ in their last bits between CPUs (7e-7 m seen)
    np.testing.assert_allclose(gt.joints_cam, sample.joints_cam, rtol=0, atol=1e-5)
    np.testing.assert_allclose(gt.poses_cam, sample.poses, rtol=0, atol=1e-6)
    np.testing.assert_allclose(gt.trans_cam, sample.trans, rtol=0, atol=1e-6)
    np.testing.assert_allclose(gt.K, sample.camera_intrinsics, rtol=0, atol=1e-3)
    assert json.loads(json.dumps(gt.look)) == sample.provenance_dict["appearance"]

    a = make_ground_truth(Spec(motion="squat", frames=6, seed=9), body)
    b = make_ground_truth(Spec(motion="squat", frames=6, seed=9, tilt=0.0, backdrop="plain", occluders=0), body)
    for key in ("poses_cam", "trans_cam", "verts_cam", "joints_cam", "joints_2d", "K", "R_wc", "cam_center"):
        np.testing.assert_array_equal(getattr(a, key), getattr(b, key))
    assert a.look == b.look and "backdrop" not in a.look and "occluders" not in a.look
    # Textures and occluders come from generators of their own: body and camera stay the same.
    c = make_ground_truth(Spec(motion="squat", frames=6, seed=9, backdrop="textured", occluders=1), body)
    np.testing.assert_array_equal(a.joints_cam, c.joints_cam)
    assert {k: v for k, v in c.look.items() if k not in ("backdrop", "occluders")} == a.look
    with pytest.raises(ValueError, match="backdrop"):
        Spec(backdrop="grey")


def _check_exact(gt, body):
    n = len(gt.poses_cam)
    p = torch.from_numpy(gt.poses_cam)
    out = body(p[:, :3], p[:, 3:], torch.from_numpy(np.tile(gt.betas, (n, 1))), torch.from_numpy(gt.trans_cam))
    np.testing.assert_allclose(out.joints.numpy(), gt.joints_cam, atol=2e-5)
    np.testing.assert_allclose(gt.joints_2d, camera.project(gt.joints_cam, gt.K), atol=1e-3)
    assert gt.verts_cam[..., 2].min() > 0.3
    uv = camera.project(gt.verts_cam, gt.K)
    W, H = gt.spec.width, gt.spec.height
    assert uv[..., 0].min() >= 0 and uv[..., 0].max() < W and uv[..., 1].min() >= 0 and uv[..., 1].max() < H


def test_camera_tilt_rolls_the_image_and_keeps_the_ground_truth_exact(body):
    for tilt in (0.15, -0.17):
        gt = make_ground_truth(ClipSpec(motion="random", frames=20, width=160, height=120, seed=3, tilt=tilt), body)
        _check_exact(gt, body)
        up = gt.R_wc @ np.array([0.0, 1.0, 0.0])  # world up in the camera frame
        assert np.arctan2(up[0], -up[1]) == pytest.approx(tilt, abs=1e-9)  # clockwise on screen by tilt
        # The person's image axis (ankles' midpoint -> head) rolls with the camera.
        flat = make_ground_truth(ClipSpec(motion="random", frames=20, width=160, height=120, seed=3), body)

        def screen_angle(g):
            j = g.joints_2d[0]
            d = j[J["head"]] - (j[J["left_ankle"]] + j[J["right_ankle"]]) / 2
            return np.arctan2(d[0], -d[1])

        assert screen_angle(gt) - screen_angle(flat) == pytest.approx(tilt, abs=0.06)


@pytest.mark.parametrize("motion,scale,tilt", [("walk", 0.5, 0.17), ("random", 2.0, -0.17), ("arms", 1.8, 0.3)])
def test_body_stays_in_view_for_extreme_focal_and_tilt(body, motion, scale, tilt):
    W, H = 128, 96
    spec = ClipSpec(motion=motion, frames=45, width=W, height=H, seed=11, focal=scale * camera.default_focal(W, H),
                    tilt=tilt)  # fmt: skip
    gt = make_ground_truth(spec, body)
    assert gt.K[0, 0] == pytest.approx(spec.focal)
    _check_exact(gt, body)


def test_occluders_hide_part_of_the_body_never_all(body):
    from tar_core.synthetic.groundtruth import MAX_OCCLUSION, occluder_mask, occlusion_fraction

    drawn = 0
    for seed, motion in [(0, "walk"), (1, "random"), (2, "squat"), (3, "turn")]:
        spec = ClipSpec(motion=motion, frames=30, width=128, height=128, seed=seed, occluders=2, tilt=0.1)
        gt = make_ground_truth(spec, body)
        occ = gt.look["occluders"]
        assert 1 <= len(occ) <= 2
        drawn += len(occ)
        frac = occlusion_fraction(gt, body.faces)
        assert frac.max() <= MAX_OCCLUSION and frac.max() >= 0.05, frac
        z_body = gt.verts_cam[..., 2].min()
        for o in occ:
            assert o["kind"] in ("post", "box") and o["base"][1] == 0.0  # standing on the floor
        masks = np.stack([occluder_mask(gt, i) for i in range(spec.frames)])
        assert masks.any()  # and they are in view
        # in front of the person, behind the camera
        from tar_core.synthetic.groundtruth import occluder_mesh

        for o in occ:
            for i in (0, spec.frames - 1):
                z = ((occluder_mesh(o, i / spec.fps)[0] - gt.cam_center) @ gt.R_wc.T)[:, 2]
                assert 0.1 < z.min() and z.max() < z_body
        again = make_ground_truth(spec, body)
        assert again.look == gt.look
    assert drawn > 4


def test_textured_backdrop_and_occluder_render(body):
    """A tiny render: the wall and floor are textured, and the occluder hides part of the silhouette where the
    ground truth says it stands."""
    import copy

    from tar_core.synthetic.groundtruth import occluder_mask, occlusion_fraction
    from tar_core.synthetic.scene import render_frames

    W = H = 64
    for seed in range(40):  # a clip whose first frame is partly hidden
        spec = ClipSpec(motion="random", frames=2, width=W, height=H, seed=seed, samples=1, backdrop="textured",
                        occluders=1, tilt=0.1)  # fmt: skip
        gt = make_ground_truth(spec, body)
        if gt.look["occluders"] and 0.15 < occlusion_fraction(gt, body.faces)[0] < 0.5:
            break
    else:
        pytest.fail("no partly occluded clip")
    assert gt.look["backdrop"]["wall"]["texture"] in ("noise", "voronoi", "wave", "brick", "magic", "checker")
    gt.verts_cam = gt.verts_cam[:1]
    img = next(iter(render_frames(gt, body))).astype(np.float64)
    silhouette = next(iter(render_frames(gt, body, backdrop=False)))[..., 3] > 127
    bare = copy.copy(gt)
    bare.look = {k: v for k, v in gt.look.items() if k != "occluders"}
    no_occ = next(iter(render_frames(bare, body))).astype(np.float64)
    assert img.shape == (H, W, 3)

    occ = occluder_mask(gt, 0)
    hidden = (occ & silhouette).sum() / silhouette.sum()
    assert 0.05 < hidden < 0.7  # part of the body, not all of it
    # The occluder is drawn where the ground truth puts it: the picture changes there, much less elsewhere.
    inside = cv2.erode(occ.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    outside = cv2.dilate(occ.astype(np.uint8), np.ones((5, 5), np.uint8)) == 0
    change = np.abs(img - no_occ).mean(-1)
    assert inside.sum() > 5 and change[inside].mean() > 20
    assert change[inside].mean() > 3 * change[outside].mean()
    # The backdrop (away from the body and the occluder) is not one flat colour.
    back = outside & ~(cv2.dilate(silhouette.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0)
    assert back.sum() > 500
    assert no_occ[back].std(0).max() > 8


@pytest.mark.parametrize("motion", ["walk", "squat"])
def test_planted_feet_stand_still_and_the_walk_still_travels(body, motion):
    """With ``planted_feet`` the body travels by its standing foot: that foot does not slide (the scripted
    walk's feet slide all the time), and the walk still covers ground at a walking pace."""
    spec = ClipSpec(motion=motion, frames=60, seed=4, planted_feet=True)
    gt = make_ground_truth(spec, body)
    scripted = make_ground_truth(ClipSpec(motion=motion, frames=60, seed=4), body)
    n = spec.frames
    p = torch.from_numpy(gt.poses_cam)
    out = body(p[:, :3], p[:, 3:], torch.from_numpy(np.tile(gt.betas, (n, 1))), torch.from_numpy(gt.trans_cam))
    feet = out.extra_joints.double().numpy()[:, [5, 7, 8, 10]]  # toes and heels, camera frame
    step = np.linalg.norm(np.diff(feet, axis=0), axis=-1).reshape(n - 1, 2, 2).max(-1)  # (N-1, 2) per foot
    standing = step.min(1)  # the stiller foot of each step
    sfeet = scripted.joints_cam[:, [10, 11]].astype(np.float64)
    s_standing = np.linalg.norm(np.diff(sfeet, axis=0), axis=-1).min(1)
    assert np.median(standing) < 0.001  # metres per frame
    if motion == "walk":
        assert np.median(s_standing) > 0.01
        speed = np.linalg.norm(np.diff(gt.joints_cam[[0, -1], 0].astype(np.float64), axis=0)) / (n / spec.fps)
        assert 0.7 < speed < 1.8  # m/s
        assert (step.max(1) > 0.05).mean() > 0.3  # and the other foot swings
