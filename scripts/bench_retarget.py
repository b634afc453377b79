"""Retargeting speed: 10,000 frames onto a Mixamo-style rig and a generated Rigify rig, measured in
one run. Figures, not a timed test (target: 10,000 frames in <= 2 s).

    python scripts/bench_retarget.py [--frames 10000] [--no-rigify]

For each rig it prints the maths alone (``logic.retarget``: rotations, root, foot IK on contacts)
and the whole bake in Blender (read the source action, compute, write every fcurve in bulk, push
to an NLA track).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "blender"))  # the Mixamo-style test rig
os.environ.setdefault("BLENDER_USER_RESOURCES", tempfile.mkdtemp(prefix="tar-bench-"))


def long_motion(path: Path, frames: int) -> Path:
    """The sample walk looped to ``frames`` rows at 30 fps, with foot contacts on the slow frames."""
    from retarget_rigs import synth_contacts

    from tar_blender.logic.camera import CV_TO_WORLD

    with np.load(ROOT / "data" / "sample" / "sample_walk.npz", allow_pickle=False) as z:
        a = {k: z[k] for k in z.files}
    n = len(a["poses"])
    contacts = synth_contacts(a["joints_cam"] @ CV_TO_WORLD.T, float(a["mocap_framerate"]))
    idx = np.arange(frames) % n
    for k in ("poses", "trans", "bbox_xyxy", "joints_cam", "joints_2d", "confidence"):
        a[k] = a[k][idx]
    a["contacts"] = contacts[idx].astype(np.float32)
    a["frame_ids"] = np.arange(frames, dtype=np.int64)
    a["frame_times"] = np.arange(frames) / 30.0
    a["mocap_framerate"] = a["mocap_frame_rate"] = np.array(30.0)
    np.savez(path, **a)
    return path


def best_of(fn, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=10_000)
    ap.add_argument("--no-rigify", action="store_true", help="skip generating a Rigify rig (about 7 s)")
    args = ap.parse_args(argv)

    import bpy
    from retarget_rigs import build_mixamo

    from tar_blender import importer
    from tar_blender import retarget as rt
    from tar_blender.logic.retarget import retarget

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        path = long_motion(Path(tmp) / "long.npz", args.frames)
        targets = [("mixamo-style rig", "mixamo")]
        if not args.no_rigify:
            targets.append(("generated Rigify rig", "rigify"))
        for label, family in targets:
            bpy.ops.wm.read_homefile(use_empty=True)
            if family == "rigify":
                bpy.ops.preferences.addon_enable(module="rigify")
                bpy.ops.object.armature_human_metarig_add()
                bpy.ops.pose.rigify_generate()
                target = bpy.data.objects["rig"]
            else:
                target = build_mixamo()
            source = importer.load(bpy.context, [str(path)], with_mesh=False, with_camera=False,
                                   set_scene="YES").armatures[0]
            # The maths alone, on arrays read once.
            from tar_blender.logic.bone_maps import resolve_bone_map

            names = [b.name for b in target.data.bones]
            bmap, _ = resolve_bone_map(family, names)
            for bone, props in bmap.settings.items():
                for k, v in props.items():
                    target.pose.bones[bone][k] = v
            bpy.context.view_layer.update()
            src, _frames = rt.read_source(source)
            tgt = rt.read_target(target)
            maths = best_of(lambda: retarget(src, tgt, bmap))  # noqa: B023 (called at once)
            # The whole bake in Blender (a new action and NLA track each time).
            bake = best_of(lambda: rt.retarget_armature(bpy.context, source, target, family))  # noqa: B023 (at once)
            res = rt.retarget_armature(bpy.context, source, target, family)
            rows.append((label, maths, bake, len(res.result.bones), len(tgt.names)))

    n = args.frames
    print(f"retarget {n:,} frames (foot IK on contacts included), best of 3:")
    for label, maths, bake, keyed, bones in rows:
        print(f"  {label:22s} {keyed} keyed of {bones} bones: maths {maths:.3f} s, "
              f"whole bake in Blender {bake:.3f} s (target <= 2 s)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
