"""Retargeting in Blender (the real ``bpy`` module): a captured clip onto the Rigify human metarig,
a generated Rigify rig and a Mixamo-style armature; what Blender evaluates is measured, frame by
frame, against the source rig in the same scene. Also: contacts, bad maps, FBX round trip, the
batch script, the operator and smoothing at import."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from retarget_rigs import MIXAMO_BONES, angle_deg, bone_matrix, build_mixamo, contact_runs, synth_contacts

bpy = pytest.importorskip("bpy")

import tar_blender  # noqa: E402
from tar_blender import actions, importer  # noqa: E402
from tar_blender import retarget as rt  # noqa: E402
from tar_blender.logic.bone_maps import BoneMapError, builtin_map  # noqa: E402
from tar_blender.logic.camera import CV_TO_WORLD  # noqa: E402
from tar_blender.logic.motion import read_motion  # noqa: E402
from tar_blender.logic.retarget import RetargetOptions  # noqa: E402
from tar_blender.logic.skeleton import JOINT_NAMES  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "data" / "sample" / "sample_walk.npz"
J = {n: i for i, n in enumerate(JOINT_NAMES)}
FIGURES: dict[str, float] = {}  # measured worst cases, printed at the end of the module (pytest -s)


@pytest.fixture(scope="module", autouse=True)
def registered():
    tar_blender.register()
    bpy.ops.preferences.addon_enable(module="rigify")
    yield
    bpy.ops.preferences.addon_disable(module="rigify")
    tar_blender.unregister()
    if FIGURES:
        print("\nretarget figures:", json.dumps({k: f"{v:.3g}" for k, v in FIGURES.items()}, indent=1))


@pytest.fixture()
def scene():
    bpy.ops.wm.read_homefile(use_empty=True)
    return bpy.context.scene


def _import(path=SAMPLE):
    return importer.load(bpy.context, [str(path)], with_mesh=False, with_camera=False, set_scene="YES").armatures[0]


@pytest.fixture(scope="module")
def rigify_blend(tmp_path_factory):
    """A .blend with the Rigify human metarig ("metarig") and the rig generated from it ("rig")."""
    bpy.ops.wm.read_homefile(use_empty=True)
    assert bpy.ops.object.armature_human_metarig_add() == {"FINISHED"}
    meta = bpy.context.active_object
    assert bpy.ops.pose.rigify_generate() == {"FINISHED"}
    assert "rig" in bpy.data.objects and len(bpy.data.objects["rig"].data.bones) > 300
    meta.location.x = 1.5  # side by side
    path = tmp_path_factory.mktemp("rigify") / "rigify.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(path))
    return path


def _heads_world(obj, names) -> np.ndarray:
    M = np.array(obj.matrix_world)
    h = np.array([list(obj.pose.bones[n].head) for n in names])
    return h @ M[:3, :3].T + M[:3, 3]


def _rest_heads_world(obj, names) -> np.ndarray:
    M = np.array(obj.matrix_world)
    h = np.array([list(obj.data.bones[n].head_local) for n in names])
    return h @ M[:3, :3].T + M[:3, 3]


# Which bones measure each segment, per rig: the segment runs from the head of the first bone to
# the head of the second. On the generated Rigify rig the deform (DEF-) bones are measured: they
# are what moves the mesh, driven through Rigify's own constraints from the keyed controls.
def _segments(kind: str) -> list[tuple[str, str, str, str]]:
    f = {
        "mixamo": dict(upper_arm="mixamorig:{S}Arm", forearm="mixamorig:{S}ForeArm", hand="mixamorig:{S}Hand",
                       thigh="mixamorig:{S}UpLeg", shin="mixamorig:{S}Leg", foot="mixamorig:{S}Foot",
                       spine=["mixamorig:Hips", "mixamorig:Spine", "mixamorig:Spine1", "mixamorig:Spine2",
                              "mixamorig:Neck"]),
        "metarig": dict(upper_arm="upper_arm.{s}", forearm="forearm.{s}", hand="hand.{s}", thigh="thigh.{s}",
                        shin="shin.{s}", foot="foot.{s}", spine=["spine", "spine.001", "spine.002", "spine.003",
                                                                 "spine.004"]),
        "rigify": dict(upper_arm="DEF-upper_arm.{s}", forearm="DEF-forearm.{s}", hand="DEF-hand.{s}",
                       thigh="DEF-thigh.{s}", shin="DEF-shin.{s}", foot="DEF-foot.{s}",
                       spine=["DEF-spine", "DEF-spine.001", "DEF-spine.002", "DEF-spine.003", "DEF-spine.004"]),
    }[kind]
    out = []
    for side, s, S in (("left", "L", "Left"), ("right", "R", "Right")):
        def b(part, s=s, S=S):
            return f[part].format(s=s, S=S)
        out += [(b("upper_arm"), b("forearm"), f"{side}_shoulder", f"{side}_elbow"),
                (b("forearm"), b("hand"), f"{side}_elbow", f"{side}_wrist"),
                (b("thigh"), b("shin"), f"{side}_hip", f"{side}_knee"),
                (b("shin"), b("foot"), f"{side}_knee", f"{side}_ankle")]
    sp = f["spine"]
    out += [(sp[0], sp[1], "pelvis", "spine1"), (sp[1], sp[2], "spine1", "spine2"), (sp[2], sp[3], "spine2", "spine3"),
            (sp[3], sp[4], "spine3", "neck")]
    return out


def _legs(kind):
    seg = _segments(kind)
    thighs = [seg[2][0], seg[6][0]]
    return thighs, [(seg[i][0], seg[i][1], seg[i + 1][1]) for i in (2, 6)]


def _target(kind, rigify_blend=None):
    if kind == "mixamo":
        bpy.ops.wm.read_homefile(use_empty=True)
        return build_mixamo(), "mixamo"
    bpy.ops.wm.open_mainfile(filepath=str(rigify_blend))
    return bpy.data.objects["metarig" if kind == "metarig" else "rig"], "rigify"


def _measure(scene, src, tgt, kind, frames):
    seg = _segments(kind)
    names = sorted({a for a, *_ in seg} | {b for _, b, *_ in seg})
    thighs, legs = _legs(kind)
    worst = {}
    hips_t, hips_s = [], []
    for f in frames:
        scene.frame_set(f)
        sj = importer.joints_world(src)
        th = dict(zip(names, _heads_world(tgt, names), strict=True))
        for a, b, j, c in seg:
            worst[a] = max(worst.get(a, 0.0), float(angle_deg(th[b] - th[a], sj[J[c]] - sj[J[j]])))
        hips_t.append(0.5 * (th[thighs[0]] + th[thighs[1]]))
        hips_s.append(0.5 * (sj[J["left_hip"]] + sj[J["right_hip"]]))
    return worst, np.array(hips_t), np.array(hips_s)


def _leg_ratio(src, tgt, kind) -> float:
    _, legs = _legs(kind)
    rest = dict(zip([n for leg in legs for n in leg], _rest_heads_world(tgt, [n for leg in legs for n in leg]),
                    strict=True))
    t = np.mean([np.linalg.norm(rest[a] - rest[b]) + np.linalg.norm(rest[b] - rest[c]) for a, b, c in legs])
    joints = _rest_heads_world(src, list(JOINT_NAMES))
    s = np.mean([np.linalg.norm(joints[J[f"{x}_hip"]] - joints[J[f"{x}_knee"]])
                 + np.linalg.norm(joints[J[f"{x}_knee"]] - joints[J[f"{x}_ankle"]]) for x in ("left", "right")])
    return float(t / s)


@pytest.mark.parametrize("kind", ["mixamo", "metarig", "rigify"])
def test_retargeted_limbs_follow_the_source_every_frame(kind, rigify_blend):
    """Upper arms, forearms, thighs, shins and the spine point where the source's do (5 deg), on every
    frame; the hips' height follows the source's scaled by the leg-length ratio (2 cm)."""
    tgt, family = _target(kind, rigify_blend)
    scene = bpy.context.scene
    src = _import()
    out = rt.retarget_armature(bpy.context, src, tgt, family, options=RetargetOptions(foot_ik=False))
    expect_map = {"mixamo": "mixamo", "metarig": "rigify_metarig", "rigify": "rigify"}[kind]
    assert out.bone_map.name == expect_map
    # Baked into an action on an NLA track named after the take; the active action is left alone.
    ad = tgt.animation_data
    assert [t.name for t in ad.nla_tracks] == ["sample_walk"] and ad.action is None
    strip = ad.nla_tracks[0].strips[0]
    assert strip.action == out.action and strip.frame_start == 1 and strip.frame_end == 72
    fcurves = actions.action_fcurves(tgt, out.action)
    assert len(fcurves) == 4 * len(out.result.bones) + 3
    assert all(len(fc.keyframe_points) == 72 for fc in fcurves)
    frames = range(scene.frame_start, scene.frame_end + 1)
    worst, hips_t, hips_s = _measure(scene, src, tgt, kind, frames)
    FIGURES[f"{kind} worst direction error (deg)"] = max(worst.values())
    assert max(worst.values()) < 5.0, worst
    k = _leg_ratio(src, tgt, kind)
    assert out.result.scale == pytest.approx(k, rel=1e-4)
    height_err = np.abs((hips_t[:, 2] - hips_t[0, 2]) - k * (hips_s[:, 2] - hips_s[0, 2])).max()
    FIGURES[f"{kind} root height error (m)"] = float(height_err)
    assert height_err < 0.02
    travel = np.linalg.norm((hips_t[-1] - hips_t[0]) - k * (hips_s[-1] - hips_s[0]))
    assert travel < 0.02  # it walks as far as the source, scaled


@pytest.mark.parametrize("kind", ["mixamo", "rigify"])
def test_planted_feet_do_not_slide(kind, rigify_blend, tmp_path):
    m = read_motion(SAMPLE)
    world = m.joints_cam @ CV_TO_WORLD.T
    contacts = synth_contacts(world, m.fps)
    with np.load(SAMPLE, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["contacts"] = contacts.astype(np.float32)
    path = tmp_path / "walk_contacts.npz"
    np.savez(path, **arrays)
    tgt, family = _target(kind, rigify_blend)
    scene = bpy.context.scene
    src = _import(path)
    assert len(src["tar_contacts"]) == 4 * m.num_frames
    rt.retarget_armature(bpy.context, src, tgt, family)
    feet = {"mixamo": ("mixamorig:LeftFoot", "mixamorig:RightFoot"), "rigify": ("DEF-foot.L", "DEF-foot.R")}[kind]
    ankles = []
    for f in range(scene.frame_start, scene.frame_end + 1):
        scene.frame_set(f)
        ankles.append(_heads_world(tgt, list(feet)))
    ankles = np.array(ankles)
    slide = 0.0
    runs = 0
    for side, col in ((0, 0), (1, 2)):
        for a, b in contact_runs(contacts[:, col] > 0.5):
            seg = ankles[a:b, side]
            slide = max(slide, float(np.linalg.norm(seg - seg[0], axis=-1).max()))
            runs += 1
    FIGURES[f"{kind} planted foot slide (m)"] = slide
    assert runs >= 4 and slide <= 0.01, slide


def _scene_state():
    objs = []
    for o in bpy.data.objects:
        ad = o.animation_data
        pose = [(pb.name, pb.rotation_mode, tuple(sorted(pb.keys()))) for pb in o.pose.bones] if o.pose else []
        objs.append((o.name, ad.action.name if ad and ad.action else None,
                     [t.name for t in ad.nla_tracks] if ad else None, pose, tuple(sorted(o.keys()))))
    return sorted(objs, key=lambda x: x[0]), sorted(a.name for a in bpy.data.actions)


def test_missing_bones_are_listed_and_nothing_changes(scene):
    bones = [tuple(b) for b in MIXAMO_BONES]
    renamed = {"mixamorig:LeftForeArm": "mixamorig:LeftLowerArm", "mixamorig:Spine1": "mixamorig:Chest"}
    bones = [(renamed.get(n, n), renamed.get(p, p), h, t, r) for n, p, h, t, r in bones]
    src = _import()
    tgt = build_mixamo(bones=bones)
    before = _scene_state()
    with pytest.raises(BoneMapError) as e:
        rt.retarget_armature(bpy.context, src, tgt, "mixamo")
    msg = str(e.value)
    assert "'Armature'" in msg and "mixamorig:Spine1, mixamorig:LeftForeArm" in msg and msg.count("\n") == 0
    assert e.value.missing == ["mixamorig:Spine1", "mixamorig:LeftForeArm"]
    assert _scene_state() == before
    # The same through the operator: one error report, nothing changed.
    s = scene.tar_retarget
    s.source, s.target, s.bone_map = src, tgt, "mixamo"
    with pytest.raises(RuntimeError, match="mixamorig:Spine1, mixamorig:LeftForeArm"):
        bpy.ops.tar.retarget()
    assert _scene_state() == before
    # A map with settings for bones the rig lacks is refused before any setting is applied.
    with pytest.raises(BoneMapError, match="upper_arm_parent.L"):
        rt.retarget_armature(bpy.context, src, tgt, builtin_map("rigify"))
    assert _scene_state() == before


def test_operator_and_panel(scene, tmp_path):
    src = _import()
    tgt = build_mixamo()
    s = scene.tar_retarget
    s.target, s.bone_map, s.take = tgt, "mixamo", "walk take"
    bpy.context.view_layer.objects.active = src  # the source defaults to the active object
    assert bpy.ops.tar.retarget() == {"FINISHED"}
    assert [t.name for t in tgt.animation_data.nla_tracks] == ["walk take"]
    assert bpy.ops.tar.retarget() == {"FINISHED"}  # a second take gets its own track
    assert [t.name for t in tgt.animation_data.nla_tracks] == ["walk take", "walk take.001"]
    assert bpy.types.TAR_PT_retarget.bl_label == "Retarget to…"
    # Map from a JSON file.
    path = tmp_path / "map.json"
    path.write_text(json.dumps(builtin_map("mixamo").to_json()))
    s.bone_map, s.map_file, s.take = "FILE", str(path), "from file"
    assert bpy.ops.tar.retarget() == {"FINISHED"}
    assert tgt.animation_data.nla_tracks[-1].name == "from file"


def test_bone_spaces_match_blender(scene):
    """The test rig's rest matrices computed in numpy are Blender's (the logic tests rely on them)."""
    tgt = build_mixamo()
    for n, _, h, t, r in MIXAMO_BONES:
        np.testing.assert_allclose(np.array(tgt.data.bones[n].matrix_local), bone_matrix(h, t, r), atol=2e-5)


def _fbx_heads(obj, frames, names=None):
    scene = bpy.context.scene
    names = names or [b.name for b in obj.data.bones]
    out = []
    for f in frames:
        scene.frame_set(f)
        out.append(_heads_world(obj, names))
    return names, np.array(out)


@pytest.mark.parametrize("kind", ["mixamo", "rigify"])
def test_fbx_export_reimports_with_the_same_bone_positions(kind, rigify_blend, tmp_path):
    """Every bone of the Mixamo-style rig; of the generated Rigify rig, the deform bones (the usual game
    export: its helper bones' scale-inheritance modes have no FBX equivalent)."""
    tgt, family = _target(kind, rigify_blend)
    scene = bpy.context.scene
    src = _import()
    rt.retarget_armature(bpy.context, src, tgt, family)
    frames = list(range(scene.frame_start, scene.frame_end + 1, 7))
    deform_only = kind == "rigify"
    names, before = _fbx_heads(tgt, frames, [b.name for b in tgt.data.bones if b.use_deform or not deform_only])
    bpy.ops.preferences.addon_enable(module="io_scene_fbx")
    for o in bpy.context.view_layer.objects:
        o.select_set(o is tgt)
    bpy.context.view_layer.objects.active = tgt
    fbx = tmp_path / f"{kind}.fbx"
    assert bpy.ops.export_scene.fbx(filepath=str(fbx), use_selection=True, object_types={"ARMATURE"},
                                    add_leaf_bones=False, bake_anim=True, bake_anim_use_nla_strips=False,
                                    bake_anim_use_all_actions=False, bake_anim_simplify_factor=0.0,
                                    use_armature_deform_only=deform_only) == {"FINISHED"}
    fps, start, end = scene.render.fps, scene.frame_start, scene.frame_end
    bpy.ops.wm.read_homefile(use_empty=True)
    scene = bpy.context.scene
    scene.render.fps, scene.frame_start, scene.frame_end = fps, start, end
    assert bpy.ops.import_scene.fbx(filepath=str(fbx), anim_offset=0.0) == {"FINISHED"}  # frame f comes back at f
    back = next(o for o in scene.objects if o.type == "ARMATURE")
    assert set(names) <= {b.name for b in back.data.bones}
    _, after = _fbx_heads(back, frames, names)
    err = float(np.abs(after - before).max())
    FIGURES[f"{kind} FBX round trip (m)"] = err
    assert err <= 1e-4, err


def _write_rig_blend(path: Path) -> None:
    bpy.ops.wm.read_homefile(use_empty=True)
    tgt = build_mixamo("Character")
    bpy.data.libraries.write(str(path), {tgt}, fake_user=True)


def test_batch_retargets_headless(tmp_path):
    rig = tmp_path / "character.blend"
    _write_rig_blend(rig)
    out = tmp_path / "scene.blend"
    cmd = [sys.executable, str(ROOT / "scripts" / "batch.py"), "--", "--motion", str(SAMPLE),
           "--retarget-to", str(rig), "--rig-object", "Character", "--bone-map", "mixamo", "--out", str(out)]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "NLA track 'sample_walk'" in res.stdout
    bpy.ops.wm.open_mainfile(filepath=str(out))
    tgt = bpy.data.objects["Character"]
    src = bpy.data.objects["MANNEQUIN_0"]
    assert [t.name for t in tgt.animation_data.nla_tracks] == ["sample_walk"]
    worst, _, _ = _measure(bpy.context.scene, src, tgt, "mixamo", [1, 30, 60])
    assert max(worst.values()) < 5.0
    # A JSON map works the same; a map the rig does not fit fails with the missing bones, writes nothing.
    m = tmp_path / "map.json"
    m.write_text(json.dumps(builtin_map("mixamo").to_json()))
    res = subprocess.run(cmd[:-3] + [str(m), "--out", str(tmp_path / "b.blend")], capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0, res.stderr
    bad = subprocess.run(cmd[:-3] + ["rigify", "--out", str(tmp_path / "c.blend")], capture_output=True, text=True,
                         timeout=300)
    assert bad.returncode != 0 and "lacks" in bad.stderr and "upper_arm_fk.L" in bad.stderr
    assert not (tmp_path / "c.blend").exists()
    nobj = subprocess.run(cmd[:-5] + ["Nobody", "--bone-map", "mixamo", "--out", str(tmp_path / "d.blend")],
                          capture_output=True, text=True, timeout=300)
    assert nobj.returncode != 0 and "no object 'Nobody'" in nobj.stderr and "Character" in nobj.stderr


def test_smoothing_at_import_keeps_the_raw_action(scene, tmp_path):
    clean_arm = _import()
    clean = actions.read_curves(clean_arm)
    with np.load(SAMPLE, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["poses"] = arrays["poses"] + np.random.default_rng(0).normal(0, 0.04, arrays["poses"].shape)
    noisy = tmp_path / "noisy.npz"
    np.savez(noisy, **arrays)
    bpy.ops.wm.read_homefile(use_empty=True)
    assert bpy.ops.tar.import_motion(filepath=str(noisy), with_camera=False, with_mesh=False) == {"FINISHED"}
    plain = next(o for o in bpy.context.scene.objects if o.type == "ARMATURE")
    plain_curves = actions.read_curves(plain)
    bpy.ops.wm.read_homefile(use_empty=True)
    scene = bpy.context.scene
    assert bpy.ops.tar.import_motion(filepath=str(noisy), with_camera=False, with_mesh=False,
                                     smoothing=2.0) == {"FINISHED"}
    arm = next(o for o in scene.objects if o.type == "ARMATURE")
    raw = bpy.data.actions[arm["tar_raw_action"]]
    smooth = actions.current_action(arm)  # the take's NLA strip now holds the smoothed copy
    assert smooth.name == f"{raw.name}_smooth" and raw.use_fake_user and smooth["tar_smoothing"] == 2.0
    raw_curves = actions.read_curves(arm, raw)
    smooth_curves = actions.read_curves(arm)
    assert raw_curves.keys() == plain_curves.keys() == smooth_curves.keys()
    for key, (frames, values, _) in plain_curves.items():
        np.testing.assert_array_equal(raw_curves[key][1], values)  # the raw motion is untouched
        np.testing.assert_array_equal(smooth_curves[key][0], frames)  # same keys, other values
    def quats(curves):
        return np.stack([[curves[(f'pose.bones["{j}"].rotation_quaternion', c)][1] for c in range(4)]
                         for j in JOINT_NAMES[1:]], axis=0).transpose(2, 0, 1)  # (N, 23, 4)

    q_raw, q_smooth, q_clean = quats(raw_curves), quats(smooth_curves), quats(clean)
    np.testing.assert_allclose(np.linalg.norm(q_smooth, axis=-1), 1.0, atol=1e-6)
    jerk = lambda q: np.abs(np.diff(q, 2, axis=0)).sum()  # noqa: E731
    assert jerk(q_smooth) < 0.3 * jerk(q_raw)
    err = lambda q: np.degrees(2 * np.arccos(np.clip(np.abs(np.sum(q * q_clean, -1)), 0, 1))).mean()  # noqa: E731
    assert err(q_smooth) < 0.6 * err(q_raw)  # closer to the motion before the noise
    path = 'pose.bones["left_knee"].rotation_quaternion'
    # Retargeting takes the active (smoothed) motion; the operator smooths the raw one again.
    bpy.context.view_layer.objects.active = arm
    assert bpy.ops.tar.smooth_motion(strength=0.0) == {"FINISHED"}
    copy = actions.read_curves(arm)
    np.testing.assert_allclose(copy[(path, 0)][1], raw_curves[(path, 0)][1], atol=1e-6)
