"""Headless TAR Mocap: capture a clip (or import motion files) into a .blend, optionally FBX/BVH.

    blender -b --python-exit-code 1 -P scripts/batch.py -- CLIP --out scene.blend [--engine tar|keypoints]
            [--checkpoint FILE] [--body SMPL.npz] [--device cpu|cuda|auto] [--fbx F] [--bvh F]
    blender -b --python-exit-code 1 -P scripts/batch.py -- --motion A.npz [B.npz ...] --out scene.blend
    blender -b --python-exit-code 1 -P scripts/batch.py -- --motion A.npz --retarget-to RIG.blend
            --rig-object NAME --bone-map rigify|mixamo|smpl|auto|FILE.json --out scene.blend
            [--take NAME] [--no-foot-ik] [--in-place] [--smooth SIGMA]
    python scripts/batch.py -- ...          (the same, with the bpy module)

Any failure prints a message and exits non-zero (an uncaught exception in a -P script would
otherwise exit 0 in real Blender).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def parse(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="batch.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("clip", nargs="?", help="video to capture")
    ap.add_argument("--motion", nargs="+", help="import these motion files instead of capturing")
    ap.add_argument("--out", required=True, help="the .blend to write")
    ap.add_argument("--engine", choices=["auto", "tar", "keypoints"], default="auto")
    ap.add_argument("--checkpoint", default="")
    ap.add_argument("--body", default="", help="SMPL .npz (default: the built-in mannequin)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--python", default="", help="engine interpreter (default: $TAR_PYTHON or this one)")
    ap.add_argument("--motion-dir", default="",
                    help="keep the engine's motion files here (default: mocap/<clip>/ next to the --out .blend)")
    ap.add_argument("--no-mesh", action="store_true")
    ap.add_argument("--fbx", default="")
    ap.add_argument("--bvh", default="")
    ap.add_argument("--smooth", type=float, default=0.0,
                    help="zero-phase smoothing (Gaussian sigma, frames) on a copy; the raw action stays")
    ap.add_argument("--retarget-to", default="", help="a .blend holding the character's armature")
    ap.add_argument("--rig-object", default="", help="the armature object's name in that .blend")
    ap.add_argument("--bone-map", default="auto", help="rigify, mixamo, smpl, auto or a JSON bone map file")
    ap.add_argument("--take", default="", help="NLA track name (default: the motion file's name)")
    ap.add_argument("--no-foot-ik", action="store_true", help="ignore the motion's foot contacts")
    ap.add_argument("--in-place", action="store_true", help="no horizontal root motion (height only)")
    args = ap.parse_args(argv)
    if bool(args.clip) == bool(args.motion):
        ap.error("give either a CLIP or --motion FILES")
    if bool(args.retarget_to) != bool(args.rig_object):
        ap.error("--retarget-to and --rig-object go together")
    return args


def append_rig(path: str, name: str):
    """Append the armature ``name`` (and the objects parented under it) from a .blend into the scene."""
    import bpy

    path = Path(path).resolve()
    if not path.is_file():
        raise FileNotFoundError(f"rig file not found: {path}")
    with bpy.data.libraries.load(str(path), link=False) as (src, dst):
        names = list(src.objects)
        if name not in names:
            raise ValueError(f"{path.name} has no object {name!r} (objects: {', '.join(sorted(names))})")
        dst.objects = list(names)  # all of them: the rig's children come along; the rest is removed below
    rig = dst.objects[names.index(name)]  # same order as the names (appended objects may be renamed)
    loaded = [o for o in dst.objects if o is not None]
    if rig.type != "ARMATURE":
        raise ValueError(f"{name!r} in {path.name} is a {rig.type.lower()}, not an armature")
    keep = {rig}
    for o in loaded:
        p = o.parent
        while p is not None and p not in keep:
            p = p.parent
        if p is not None:
            keep.add(o)
    coll = bpy.data.collections.new(f"Rig {rig.name}")
    bpy.context.scene.collection.children.link(coll)
    for o in keep:
        coll.objects.link(o)
    for o in loaded:
        if o not in keep and o.users == 0:
            bpy.data.objects.remove(o)
    return rig


def retarget(args, result) -> None:
    import bpy

    from tar_blender import retarget as rt
    from tar_blender.logic.retarget import RetargetOptions

    if len(result.armatures) > 1:
        print(f"[warning] {len(result.armatures)} people: retargeting the first ({result.armatures[0].name})")
    rig = append_rig(args.retarget_to, args.rig_object)
    options = RetargetOptions(root_motion=not args.in_place, foot_ik=not args.no_foot_ik)
    rt.retarget_armature(bpy.context, result.armatures[0], rig, args.bone_map, take=args.take or None,
                         options=options, report=lambda level, msg: print(f"[{level.lower()}] {msg}"))


def capture(args, out_dir: str) -> list[str]:
    from tar_blender.logic.engine import EngineRun, capture_command, default_python

    cmd = capture_command(args.python or default_python(), args.clip, out_dir, engine=args.engine,
                          checkpoint=args.checkpoint, body=args.body, device=args.device)
    run = EngineRun(cmd, engine_path=ROOT)
    last = None
    while run.running:
        try:
            run.wait(timeout=0.5)
        except Exception:  # TimeoutExpired: report progress and keep waiting
            run.poll()
            p = run.last_progress
            if p and p is not last:
                print(f"[tar] {p.get('stage')}: {p.get('done')}/{p.get('total')}", flush=True)
                last = p
    failure = run.failure_message()
    if failure:
        raise RuntimeError(f"engine failed: {failure}")
    return run.outputs or sorted(str(p) for p in Path(out_dir).glob("person_*.npz"))


def export(args, result) -> None:
    import bpy

    if args.fbx:
        bpy.ops.preferences.addon_enable(module="io_scene_fbx")
        bpy.ops.export_scene.fbx(filepath=str(Path(args.fbx).resolve()), add_leaf_bones=False, bake_anim=True)
    if args.bvh:
        bpy.ops.preferences.addon_enable(module="io_anim_bvh")
        for i, arm in enumerate(result.armatures):
            bpy.context.view_layer.objects.active = arm
            for o in bpy.context.view_layer.objects:
                o.select_set(o is arm)
            out = Path(args.bvh)
            if len(result.armatures) > 1:
                out = out.with_name(f"{out.stem}_{i}{out.suffix}")
            scene = bpy.context.scene
            bpy.ops.export_anim.bvh(filepath=str(out.resolve()), frame_start=scene.frame_start,
                                    frame_end=scene.frame_end, rotate_mode="NATIVE", root_transform_only=True)


def main(argv: list[str]) -> int:
    args = parse(argv)
    sys.path.insert(0, str(ROOT))
    import bpy

    from tar_blender import importer

    bpy.ops.wm.read_homefile(use_empty=True)
    if args.clip and not Path(args.clip).is_file():
        raise FileNotFoundError(f"clip not found: {args.clip}")
    from tar_blender.logic.workflow import clip_name

    out = Path(args.out).resolve()
    files = args.motion
    if not files:  # the motion files stay next to the .blend that points to them (never a temporary folder)
        motion_dir = Path(args.motion_dir) if args.motion_dir else out.parent / "mocap" / clip_name(args.clip)
        motion_dir.mkdir(parents=True, exist_ok=True)
        files = capture(args, str(motion_dir))
    if not files:
        raise RuntimeError("the engine found no person in the clip")
    result = importer.load(bpy.context, files, with_mesh=not args.no_mesh, set_scene="YES",
                           video=str(Path(args.clip).resolve()) if args.clip else None,
                           smpl_path=args.body or None,
                           report=lambda level, msg: print(f"[{level.lower()}] {msg}"))
    if args.smooth > 0:
        from tar_blender import actions

        for arm in result.armatures:
            actions.smooth_copy(arm, args.smooth)
    if args.retarget_to:
        retarget(args, result)
    out.parent.mkdir(parents=True, exist_ok=True)
    bpy.ops.wm.save_as_mainfile(filepath=str(out))
    export(args, result)
    print(f"wrote {out}: {len(result.armatures)} rig(s), frames {bpy.context.scene.frame_start}-"
          f"{bpy.context.scene.frame_end}")
    return 0


if __name__ == "__main__":
    argv = sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else sys.argv[1:]
    try:
        code = main(argv)
    except SystemExit:
        raise
    except Exception as exc:  # any failure: message and non-zero exit, also under `blender -P`
        print(f"error: {exc}", file=sys.stderr)
        code = 1
    sys.exit(code)
