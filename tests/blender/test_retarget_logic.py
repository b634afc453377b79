"""Retargeting, bone maps and smoothing: the add-on's pure logic (numpy), no bpy.

The references are independent of the code under test: source directions and heights come from
the motion file's own ``joints_cam`` (the engine's exact joints), the target is posed by a forward
kinematics written in ``retarget_rigs`` with 4x4 matrices the way Blender composes bones.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from retarget_rigs import (
    MIXAMO_BONES,
    MIXAMO_OBJECT,
    MIXAMO_SEGMENTS,
    angle_deg,
    contact_runs,
    pose_world,
    rig_arrays,
    synth_contacts,
)
from scipy.spatial.transform import Rotation

from tar_blender.logic.bone_maps import (
    BUILTIN_MAPS,
    BoneMapError,
    auto_map,
    builtin_map,
    load_bone_map,
    parse_bone_map,
    resolve_bone_map,
)
from tar_blender.logic.camera import CV_TO_WORLD
from tar_blender.logic.keys import root_motion
from tar_blender.logic.motion import read_motion
from tar_blender.logic.retarget import RetargetOptions, TargetRig, min_rotation, retarget, source_from_motion
from tar_blender.logic.rotations import axis_angle_to_quaternion, matrix_to_quaternion
from tar_blender.logic.skeleton import JOINT_NAMES, PARENTS, load_body_arrays
from tar_blender.logic.smoothing import gaussian_kernel, smooth_quaternions, smooth_series

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "data" / "sample" / "sample_walk.npz"
J = {n: i for i, n in enumerate(JOINT_NAMES)}
RZ90 = np.eye(4)
RZ90[:3, :3] = Rotation.from_euler("z", 90, degrees=True).as_matrix()


@pytest.fixture(scope="module")
def clip():
    m = read_motion(SAMPLE)
    rest = load_body_arrays(m.body_model).rest_joints(m.betas)
    world = m.joints_cam @ CV_TO_WORLD.T  # where the importer puts the joints (its tested contract)
    return m, rest, world


def _mixamo(obj=MIXAMO_OBJECT):
    names, parents, rest, tails = rig_arrays()
    return TargetRig(names, parents, rest, tails, obj)


def _posed(rig: TargetRig, res) -> np.ndarray:
    keyed = dict(zip(res.bones, np.moveaxis(res.quaternions, 1, 0), strict=True))
    return pose_world(rig.names, rig.parents, rig.rest, rig.matrix_world, keyed, res.root_bone, res.root_location)


def _leg(points) -> float:
    return float(np.mean([np.linalg.norm(points[h] - points[k]) + np.linalg.norm(points[k] - points[a])
                          for h, k, a in points["legs"]]))


# --------------------------------------------------------------------------------------------
# transfer
# --------------------------------------------------------------------------------------------


def test_onto_the_capture_rig_itself_is_the_identity(clip):
    """SMPL names onto an SMPL rig with the same rest pose: every joint rotation comes back as it was."""
    m, rest, world = clip
    src = source_from_motion(m.poses, m.trans, rest)
    R = np.tile(np.eye(4), (24, 1, 1))
    R[:, :3, 3] = rest
    rig = TargetRig(list(JOINT_NAMES), np.array(PARENTS), R, rest + [0, 0.08, 0], src.matrix_world)
    res = retarget(src, rig, builtin_map("smpl"))
    q = axis_angle_to_quaternion(m.poses.reshape(-1, 24, 3))
    q[:, 0] = matrix_to_quaternion(root_motion(m.poses, m.trans, rest[0])[0])
    err = np.minimum(np.abs(res.quaternions - q).max(-1), np.abs(res.quaternions + q).max(-1))
    assert err.max() < 1e-9, err.max()
    assert res.scale == pytest.approx(1.0)
    # The rig moves as the source does, placed at its own rest position over the floor.
    heads = res.heads["pelvis"] @ src.matrix_world[:3, :3].T  # the object has no translation
    offset = heads - world[:, 0]
    assert np.ptp(offset, axis=0).max() < 1e-5  # joints_cam is float32


@pytest.mark.parametrize("turn", ["facing -Y", "turned 90 deg"])
def test_mixamo_like_rig_directions_follow_the_source(clip, turn):
    """A-pose rest, centimetres, other bone rolls: each limb and spine segment points where the source's does."""
    m, rest, world = clip
    obj = MIXAMO_OBJECT if turn == "facing -Y" else RZ90 @ MIXAMO_OBJECT
    rig = _mixamo(obj)
    res = retarget(source_from_motion(m.poses, m.trans, rest), rig, builtin_map("mixamo"))
    X = _posed(rig, res)
    heads = X[..., :3, 3]
    turn_m = obj[:3, :3] @ np.linalg.inv(MIXAMO_OBJECT[:3, :3])  # the rig's facing relative to the source's
    idx = rig.index()
    worst = 0.0
    for j, c, b, e in MIXAMO_SEGMENTS:
        got = heads[:, idx[e]] - heads[:, idx[b]]
        want = (world[:, J[c]] - world[:, J[j]]) @ turn_m.T
        worst = max(worst, angle_deg(got, want).max())
    assert worst < 0.01, worst  # joints_cam: float32 joints of the engine, ~1e-6 m
    # Quaternions are unit length and continuous frame to frame (no sign jumps for the fcurves).
    np.testing.assert_allclose(np.linalg.norm(res.quaternions, axis=-1), 1.0, atol=1e-9)
    assert np.sum(res.quaternions[1:] * res.quaternions[:-1], axis=-1).min() > 0


def test_rest_pose_correction_turns_an_a_pose_into_the_source_t_pose(clip):
    m, rest, _ = clip
    rig = _mixamo()
    zero = np.zeros((3, 72))
    zero[:, 0] = np.pi  # upright in the camera frame (y down): the rest pose, standing
    res = retarget(source_from_motion(zero, np.zeros((3, 3)), rest), rig, builtin_map("mixamo"))
    heads = _posed(rig, res)[0, :, :3, 3]
    idx = rig.index()
    arm = heads[idx["mixamorig:LeftForeArm"]] - heads[idx["mixamorig:LeftArm"]]
    src_arm = (rest[J["left_elbow"]] - rest[J["left_shoulder"]])  # SMPL frame, y up
    src_arm_world = np.array([src_arm[0], -src_arm[2], src_arm[1]])
    assert angle_deg(arm, src_arm_world) < 1e-4
    rest_arm = np.subtract(MIXAMO_BONES[8][3], MIXAMO_BONES[8][2])  # LeftArm in the A-pose, cm
    assert angle_deg(rest_arm[[0, 2, 1]] * [1, -1, 1], arm) > 30  # it really moved from its rest pose


def test_root_height_follows_the_source_scaled_by_leg_length(clip):
    m, rest, world = clip
    rig = _mixamo()
    res = retarget(source_from_motion(m.poses, m.trans, rest), rig, builtin_map("mixamo"))
    idx = rig.index()
    rest_world = np.einsum("ij,bj->bi", rig.matrix_world, np.c_[rig.rest[:, :3, 3], np.ones(len(rig.names))])[:, :3]
    tgt = {n: rest_world[idx["mixamorig:" + n]] for n in
           ("LeftUpLeg", "LeftLeg", "LeftFoot", "RightUpLeg", "RightLeg", "RightFoot")}
    tgt["legs"] = [("LeftUpLeg", "LeftLeg", "LeftFoot"), ("RightUpLeg", "RightLeg", "RightFoot")]
    src = {n: world[0, J[n]] for n in ("left_hip", "left_knee", "left_ankle", "right_hip", "right_knee", "right_ankle")}
    src["legs"] = [("left_hip", "left_knee", "left_ankle"), ("right_hip", "right_knee", "right_ankle")]
    k = _leg(tgt) / _leg(src)
    assert 0.5 < k < 1.5 and res.scale == pytest.approx(k, rel=1e-6)
    heads = _posed(rig, res)[..., :3, 3]
    hip_t = 0.5 * (heads[:, idx["mixamorig:LeftUpLeg"]] + heads[:, idx["mixamorig:RightUpLeg"]])
    hip_s = 0.5 * (world[:, J["left_hip"]] + world[:, J["right_hip"]])
    err = (hip_t - hip_t[0]) - k * (hip_s - hip_s[0])  # height and travel both scaled
    assert np.abs(err).max() < 1e-6, np.abs(err).max()
    assert np.ptp(hip_s[:, 2]) > 0.02  # the walk bobs: the check has something to follow
    # Standing on the target's floor: the lowest foot joint over the clip sits near the rest one.
    low_t = heads[:, [idx["mixamorig:LeftToeBase"], idx["mixamorig:RightToeBase"]], 2].min()
    assert abs(low_t - rest_world[idx["mixamorig:LeftToeBase"], 2]) < 0.03


def test_planted_feet_stay_put_with_contacts(clip):
    m, rest, world = clip
    rig = _mixamo()
    contacts = synth_contacts(world, m.fps)
    assert contacts[:, 0].sum() >= 4 and contacts[:, 2].sum() >= 4
    src = source_from_motion(m.poses, m.trans, rest, contacts)
    with_ik = retarget(src, rig, builtin_map("mixamo"))
    no_ik = retarget(src, rig, builtin_map("mixamo"), RetargetOptions(foot_ik=False))
    idx = rig.index()
    slide = {}
    for label, res in (("ik", with_ik), ("fk", no_ik)):
        heads = _posed(rig, res)[..., :3, 3]
        worst = 0.0
        for side, col in (("Left", 0), ("Right", 2)):
            ankle = heads[:, idx[f"mixamorig:{side}Foot"]]
            for a, b in contact_runs(contacts[:, col] > 0.5):
                seg = ankle[a:b]
                worst = max(worst, np.linalg.norm(seg - seg[0], axis=-1).max())
        slide[label] = worst
    assert slide["ik"] <= 0.01, slide
    assert slide["fk"] > 0.01, slide  # without the IK the same feet slide: the check bites
    # The IK touches the legs only: arms and spine are as without it.
    for b in ("mixamorig:LeftArm", "mixamorig:Spine1", "mixamorig:Head"):
        i = with_ik.bones.index(b)
        np.testing.assert_allclose(with_ik.quaternions[:, i], no_ik.quaternions[:, i], atol=1e-12)


def test_toe_only_contact_pins_the_ball_of_the_foot(clip):
    m, rest, world = clip
    rig = _mixamo()
    contacts = np.zeros((m.num_frames, 4))
    contacts[30:36, 3] = 1.0  # right toe only
    res = retarget(source_from_motion(m.poses, m.trans, rest, contacts), rig, builtin_map("mixamo"))
    heads = _posed(rig, res)[..., :3, 3]
    toe = heads[30:36, rig.index()["mixamorig:RightToeBase"]]
    assert np.linalg.norm(toe - toe.mean(0), axis=-1).max() < 1e-3


def test_missing_bones_are_listed_in_one_error(clip):
    m, rest, _ = clip
    names, parents, R, tails = rig_arrays()
    names = [n.replace("LeftForeArm", "LeftLowerArm").replace("RightToeBase", "RightToe") for n in names]
    rig = TargetRig(names, parents, R, tails, MIXAMO_OBJECT)
    with pytest.raises(BoneMapError) as e:
        retarget(source_from_motion(m.poses[:2], m.trans[:2], rest), rig, builtin_map("mixamo"), rig_name="Bob")
    assert e.value.missing == ["mixamorig:RightToeBase", "mixamorig:LeftForeArm"]  # SMPL joint order
    assert "'Bob'" in str(e.value) and "mixamorig:RightToeBase, mixamorig:LeftForeArm" in str(e.value)


def test_min_rotation_takes_u_to_v_including_opposite():
    rng = np.random.default_rng(3)
    u = rng.normal(size=(200, 3))
    v = rng.normal(size=(200, 3))
    v[:5] = -u[:5]
    v[5:10] = u[5:10] * 3
    R = min_rotation(u, v)
    got = np.einsum("nij,nj->ni", R, u / np.linalg.norm(u, axis=1, keepdims=True))
    np.testing.assert_allclose(got, v / np.linalg.norm(v, axis=1, keepdims=True), atol=1e-12)
    np.testing.assert_allclose(R @ np.swapaxes(R, 1, 2), np.broadcast_to(np.eye(3), R.shape), atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(R), 1.0, atol=1e-12)


# --------------------------------------------------------------------------------------------
# bone maps
# --------------------------------------------------------------------------------------------

_METARIG = list(BUILTIN_MAPS["rigify_metarig"].named_bones()) + ["heel.02.L", "pelvis.L", "breast.R"]
_CONTROLS = list(BUILTIN_MAPS["rigify"].named_bones()) + ["root", "MCH-torso.parent"]
_DEFORM = list(BUILTIN_MAPS["rigify_deform"].named_bones()) + ["DEF-spine.005"]


@pytest.mark.parametrize("names, expect", [(_CONTROLS + _DEFORM, "rigify"), (_METARIG, "rigify_metarig"),
                                           (_DEFORM, "rigify_deform")])
def test_rigify_family_picks_the_variant_the_rig_has(names, expect):
    m, notes = resolve_bone_map("rigify", names)
    assert m.name == expect and notes == []


def test_rigify_controls_map_drives_both_legs_arms_and_spine():
    m = builtin_map("rigify")
    assert m.root == "torso" and m.directions == "bones"
    assert m.bones["left_shoulder"] == ["upper_arm_fk.L"] and m.bones["right_knee"] == ["shin_fk.R"]
    assert m.settings["thigh_parent.R"]["IK_FK"] == 1.0  # FK chains in use


def test_mixamo_with_another_namespace_prefix():
    names = [n.replace("mixamorig:", "mixamorig7:") for n, *_ in MIXAMO_BONES]
    m, _ = resolve_bone_map("mixamo", names)
    assert m.bones["left_elbow"] == ["mixamorig7:LeftForeArm"] and not m.missing_in(names)
    stripped = [n.replace("mixamorig:", "") for n, *_ in MIXAMO_BONES]
    assert resolve_bone_map("mixamo", stripped)[0].bones["pelvis"] == ["Hips"]


def test_smpl_family_accepts_smplx_and_fbx_names():
    assert resolve_bone_map("smpl", JOINT_NAMES)[0].name == "smpl"
    assert resolve_bone_map("smpl", JOINT_NAMES[:22] + ("jaw", "left_eye_smplhf"))[0].name == "smplx"
    fbx = ["m_avg_" + n for n in BUILTIN_MAPS["smpl_fbx"].named_bones()]
    m, _ = resolve_bone_map("smpl", fbx)
    assert m.bones["left_hip"] == ["m_avg_L_Hip"] and m.bones["spine3"] == ["m_avg_Spine3"]


def test_family_with_missing_bones_names_them_all():
    names = [n for n, *_ in MIXAMO_BONES if n not in ("mixamorig:LeftHand", "mixamorig:Neck")]
    with pytest.raises(BoneMapError) as e:
        resolve_bone_map("mixamo", names)
    assert e.value.missing == ["mixamorig:Neck", "mixamorig:LeftHand"]
    assert "mixamorig:Neck, mixamorig:LeftHand" in str(e.value)


def test_json_bone_map_round_trip(tmp_path):
    p = tmp_path / "studio.json"
    data = {"bones": {"pelvis": "Root_M", "left_hip": "Hip_L", "spine1": ["Spine1_M", "SpineFK1"]},
            "root": "Root_M", "refs": {"SpineFK1": "Spine1_M"}, "settings": {"Leg_L": {"FKIKBlend": 0}}}
    p.write_text(json.dumps(data))
    m = load_bone_map(p)
    assert m.name == "studio" and m.bones["spine1"] == ["Spine1_M", "SpineFK1"] and m.root == "Root_M"
    assert m.named_bones() == ["Root_M", "Hip_L", "Spine1_M", "SpineFK1", "Leg_L"]
    assert parse_bone_map(m.to_json()).bones == m.bones
    m2, _ = resolve_bone_map(str(p), m.named_bones())
    assert m2.bones == m.bones


@pytest.mark.parametrize("data, key", [
    ([], "file"),
    ({"bones": {}}, "bones"),
    ({"bones": {"pelvis": "a"}, "colour": 1}, "colour"),
    ({"bones": {"pelvis": "a", "tail": "b"}}, "bones.tail"),
    ({"bones": {"left_hip": "a"}}, "bones.pelvis"),
    ({"bones": {"pelvis": "a", "left_hip": "a"}}, "bones.left_hip"),
    ({"bones": {"pelvis": ["a", 3]}}, "bones.pelvis"),
    ({"bones": {"pelvis": "a"}, "root": 5}, "root"),
    ({"bones": {"pelvis": "a"}, "refs": {"b": "a"}}, "refs.b"),
    ({"bones": {"pelvis": "a"}, "settings": {"a": {"x": "on"}}}, "settings.a"),
    ({"bones": {"pelvis": "a"}, "format": "other"}, "format"),
    ({"bones": {"pelvis": "a"}, "version": 2}, "version"),
    ({"bones": {"pelvis": "a"}, "directions": "tails"}, "directions"),
])  # fmt: skip
def test_bad_json_bone_maps_name_the_key(data, key):
    with pytest.raises(BoneMapError, match=f"rig.json: {key}:"):
        parse_bone_map(data, "rig.json")


def test_unreadable_bone_map_files(tmp_path):
    with pytest.raises(BoneMapError, match="nope.json: file: does not exist"):
        load_bone_map(tmp_path / "nope.json")
    (tmp_path / "bad.json").write_text("{bones: ")
    with pytest.raises(BoneMapError, match="bad.json: file: not valid JSON"):
        load_bone_map(tmp_path / "bad.json")
    with pytest.raises(BoneMapError, match="unknown bone map"):
        resolve_bone_map("blender-default", ["a"])


def _parents_of(bones):
    names = [b[0] for b in bones]
    return names, [names.index(b[1]) if b[1] else -1 for b in bones]


def test_auto_map_mixamo_names():
    names, parents = _parents_of(MIXAMO_BONES)
    m, unmapped = auto_map(names, parents)
    assert unmapped == ["left_hand", "right_hand"]  # SMPL's hand joints: fingers, which this rig lacks
    assert m.bones == {j: bs for j, bs in builtin_map("mixamo").bones.items()}


def test_auto_map_unreal_style_names_and_reports_the_rest():
    bones = [("root", None), ("pelvis", "root"), ("spine_01", "pelvis"), ("spine_02", "spine_01"),
             ("spine_03", "spine_02"), ("spine_04", "spine_03"), ("spine_05", "spine_04"), ("neck_01", "spine_05"),
             ("head", "neck_01"), ("clavicle_l", "spine_05"), ("upperarm_l", "clavicle_l"),
             ("lowerarm_l", "upperarm_l"), ("hand_l", "lowerarm_l"), ("upperarm_twist_01_l", "upperarm_l"),
             ("thigh_l", "pelvis"), ("calf_l", "thigh_l"), ("foot_l", "calf_l"), ("ball_l", "foot_l"),
             ("ik_foot_l", "root"), ("thigh_r", "pelvis"), ("calf_r", "thigh_r"), ("foot_r", "calf_r")]
    names = [b[0] for b in bones]
    parents = [names.index(b[1]) if b[1] else -1 for b in bones]
    m, unmapped = auto_map(names, parents)
    assert m.bones["pelvis"] == ["pelvis"] and m.bones["neck"] == ["neck_01"] and m.bones["head"] == ["head"]
    assert [m.bones[s][0] for s in ("spine1", "spine2", "spine3")] == ["spine_01", "spine_03", "spine_05"]
    assert m.bones["left_shoulder"] == ["upperarm_l"] and m.bones["left_elbow"] == ["lowerarm_l"]
    assert m.bones["left_knee"] == ["calf_l"] and m.bones["left_ankle"] == ["foot_l"]
    assert m.bones["left_foot"] == ["ball_l"]
    assert set(unmapped) == {"right_foot", "right_collar", "right_shoulder", "right_elbow", "right_wrist",
                             "left_hand", "right_hand"}


def test_auto_map_rigify_metarig_names():
    names = _METARIG
    # metarig parents: spine chain, limbs hang off it (enough structure for the spine order)
    parent = {"spine": None, "spine.001": "spine", "spine.002": "spine.001", "spine.003": "spine.002",
              "spine.004": "spine.003", "spine.006": "spine.004", "heel.02.L": "foot.L", "pelvis.L": "spine",
              "breast.R": "spine.003"}
    for s in "LR":
        parent.update({f"shoulder.{s}": "spine.003", f"upper_arm.{s}": f"shoulder.{s}",
                       f"forearm.{s}": f"upper_arm.{s}", f"hand.{s}": f"forearm.{s}", f"thigh.{s}": "spine",
                       f"shin.{s}": f"thigh.{s}", f"foot.{s}": f"shin.{s}", f"toe.{s}": f"foot.{s}"})
    parents = [names.index(parent[n]) if parent[n] else -1 for n in names]
    m, unmapped = auto_map(names, parents)
    assert m.bones["pelvis"] == ["spine"] and m.bones["left_elbow"] == ["forearm.L"]
    assert m.bones["right_foot"] == ["toe.R"]
    assert m.bones["left_collar"] == ["shoulder.L"] and "left_hand" in unmapped


def test_auto_map_without_hips_fails_clearly():
    with pytest.raises(BoneMapError, match="no hips/pelvis"):
        auto_map(["Bone", "Bone.001"], [-1, 0])


# --------------------------------------------------------------------------------------------
# smoothing
# --------------------------------------------------------------------------------------------


def test_smoothing_is_zero_phase_and_keeps_trends():
    t = np.arange(200, dtype=float)
    wave = np.sin(2 * np.pi * t / 80)
    noisy = wave + np.random.default_rng(0).normal(0, 0.2, t.shape)
    out = smooth_series(noisy, 2.0)
    # No lag: the smoothed wave correlates best with the clean one at shift 0.
    shifts = range(-5, 6)
    corr = [np.corrcoef(np.roll(out, s)[20:-20], wave[20:-20])[0, 1] for s in shifts]
    assert list(shifts)[int(np.argmax(corr))] == 0
    assert np.abs(out - wave)[10:-10].std() < np.abs(noisy - wave).std() / 2
    line = 0.3 * t + 2.0  # a steady trend (walking) is untouched, ends included
    np.testing.assert_allclose(smooth_series(line, 4.0), line, atol=1e-9)
    np.testing.assert_array_equal(smooth_series(noisy, 0.0), noisy)
    assert gaussian_kernel(2.0).sum() == pytest.approx(1.0) and len(gaussian_kernel(2.0)) == 13
    # Short clips and several channels at once.
    assert smooth_series(np.ones((3, 2, 5)), 5.0).shape == (3, 2, 5)
    np.testing.assert_allclose(smooth_series(np.ones((3, 2, 5)), 5.0), 1.0)


def test_quaternion_smoothing_ignores_sign_flips():
    rng = np.random.default_rng(1)
    t = np.linspace(0, 2, 120)
    rotvec = np.stack([np.sin(3 * t), 0.5 * np.cos(2 * t), t], axis=1)
    q = Rotation.from_rotvec(rotvec).as_quat()[:, [3, 0, 1, 2]]
    noisy = Rotation.from_rotvec(rotvec + rng.normal(0, 0.05, rotvec.shape)).as_quat()[:, [3, 0, 1, 2]]
    flips = np.where(rng.random(len(q)) < 0.4, -1.0, 1.0)[:, None]
    a = smooth_quaternions(noisy, 2.0)
    b = smooth_quaternions(noisy * flips, 2.0)
    np.testing.assert_allclose(np.abs(np.sum(a * b, axis=1)), 1.0, atol=1e-12)  # same rotations
    np.testing.assert_allclose(np.linalg.norm(b, axis=1), 1.0, atol=1e-12)
    assert np.sum(b[1:] * b[:-1], axis=1).min() > 0  # one hemisphere
    err_in = angle_between(noisy, q).mean()
    err_out = angle_between(b, q)[5:-5].mean()
    assert err_out < 0.6 * err_in, (err_in, err_out)


def angle_between(a, b):
    return 2 * np.degrees(np.arccos(np.clip(np.abs(np.sum(a * b, axis=-1)), 0, 1)))


# --------------------------------------------------------------------------------------------
# options and the contacts key
# --------------------------------------------------------------------------------------------


def test_in_place_and_scale_options(clip):
    m, rest, world = clip
    rig = _mixamo()
    src = source_from_motion(m.poses, m.trans, rest)
    idx = rig.index()

    def hips(res):
        heads = _posed(rig, res)[..., :3, 3]
        return 0.5 * (heads[:, idx["mixamorig:LeftUpLeg"]] + heads[:, idx["mixamorig:RightUpLeg"]])

    in_place = hips(retarget(src, rig, builtin_map("mixamo"), RetargetOptions(root_motion=False)))
    assert np.ptp(in_place[:, :2], axis=0).max() < 1e-9 and np.ptp(in_place[:, 2]) > 0.02  # height still follows
    none = retarget(src, rig, builtin_map("mixamo"), RetargetOptions(scale="none"))
    hip_s = 0.5 * (world[:, J["left_hip"]] + world[:, J["right_hip"]])
    assert none.scale == 1.0
    np.testing.assert_allclose(hips(none) - hips(none)[0], hip_s - hip_s[0], atol=1e-5)
    by_hip = retarget(src, rig, builtin_map("mixamo"), RetargetOptions(scale="hip"))
    by_leg = retarget(src, rig, builtin_map("mixamo"))
    assert by_hip.scale != by_leg.scale and abs(by_hip.scale / by_leg.scale - 1) < 0.15
    with pytest.raises(ValueError, match="scale must be"):
        retarget(src, rig, builtin_map("mixamo"), RetargetOptions(scale="arm"))


def test_contacts_key_in_motion_files(tmp_path):
    with np.load(SAMPLE, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    n = len(arrays["poses"])
    good = tmp_path / "good.npz"
    np.savez(good, **arrays, contacts=np.linspace(0, 1, 4 * n).reshape(n, 4).astype(np.float32))
    m = read_motion(good)
    assert m.contacts.shape == (n, 4) and m.contacts.dtype == np.float64
    assert read_motion(SAMPLE).contacts is None  # optional
    from tar_blender.logic.motion import MotionError

    for bad in (np.zeros((n, 3)), np.full((n, 4), 1.5), np.full((n, 4), np.nan), np.zeros((n + 1, 4))):
        path = tmp_path / "bad.npz"
        np.savez(path, **arrays, contacts=bad)
        with pytest.raises(MotionError, match="contacts"):
            read_motion(path)


def test_auto_map_vroid_names():
    chain = ["J_Bip_C_Hips", "J_Bip_C_Spine", "J_Bip_C_Chest", "J_Bip_C_UpperChest", "J_Bip_C_Neck", "J_Bip_C_Head"]
    bones = [(n, chain[i - 1] if i else None) for i, n in enumerate(chain)]
    for S in "LR":
        bones += [(f"J_Bip_{S}_Shoulder", "J_Bip_C_UpperChest"), (f"J_Bip_{S}_UpperArm", f"J_Bip_{S}_Shoulder"),
                  (f"J_Bip_{S}_LowerArm", f"J_Bip_{S}_UpperArm"), (f"J_Bip_{S}_Hand", f"J_Bip_{S}_LowerArm"),
                  (f"J_Bip_{S}_UpperLeg", "J_Bip_C_Hips"), (f"J_Bip_{S}_LowerLeg", f"J_Bip_{S}_UpperLeg"),
                  (f"J_Bip_{S}_Foot", f"J_Bip_{S}_LowerLeg"), (f"J_Bip_{S}_ToeBase", f"J_Bip_{S}_Foot")]
    names, parents = _parents_of(bones)
    m, unmapped = auto_map(names, parents)
    assert unmapped == ["left_hand", "right_hand"]
    assert m.bones["right_knee"] == ["J_Bip_R_LowerLeg"] and m.bones["spine3"] == ["J_Bip_C_UpperChest"]
    assert m.bones["left_collar"] == ["J_Bip_L_Shoulder"] and m.bones["pelvis"] == ["J_Bip_C_Hips"]
