"""Import speed: an 18,000-frame motion file with bulk fcurve writes, against per-frame
``keyframe_insert`` on 500 frames, measured in one run.

    python scripts/bench_import.py
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("BLENDER_USER_RESOURCES", tempfile.mkdtemp(prefix="tar-bench-"))


def long_motion(path: Path, frames: int) -> Path:
    """The sample's ground truth looped to ``frames`` rows at 30 fps (a 10-minute take)."""
    with np.load(ROOT / "data" / "sample" / "sample_walk.npz", allow_pickle=False) as z:
        a = {k: z[k] for k in z.files}
    n = len(a["poses"])
    idx = np.arange(frames) % n
    for k in ("poses", "trans", "bbox_xyxy", "joints_cam", "joints_2d", "confidence"):
        a[k] = a[k][idx]
    a["frame_ids"] = np.arange(frames, dtype=np.int64)
    a["frame_times"] = np.arange(frames) / 30.0
    a["mocap_framerate"] = a["mocap_frame_rate"] = np.array(30.0)
    np.savez(path, **a)
    return path


def main() -> int:
    import bpy

    from tar_blender import importer
    from tar_blender.logic.keys import key_frames, motion_curves
    from tar_blender.logic.motion import read_motion
    from tar_blender.logic.skeleton import load_body_arrays

    with tempfile.TemporaryDirectory() as tmp:
        path = long_motion(Path(tmp) / "long.npz", 18_000)
        bpy.ops.wm.read_homefile(use_empty=True)
        t = time.perf_counter()
        res = importer.load(bpy.context, [str(path)], with_mesh=False, with_camera=False)
        bulk = time.perf_counter() - t
        t = time.perf_counter()
        importer.load(bpy.context, [str(path)], with_mesh=True, with_camera=True, set_scene="NO")
        bulk_mesh = time.perf_counter() - t

        # The same curves written key by key with keyframe_insert, on 500 frames only.
        m = read_motion(path)
        body = load_body_arrays(m.body_model)
        n = 500
        arm = res.armatures[0]
        arm.animation_data_clear()
        frames = key_frames(m.frame_times[:n], m.fps)
        curves = motion_curves(m.poses[:n], m.trans[:n], frames, body.rest_joints(m.betas)[0])
        values = {}
        for c in curves:
            values.setdefault(c.data_path, {})[c.index] = c.co[1::2]
        t = time.perf_counter()
        for i in range(n):
            for data_path, comps in values.items():
                bone = data_path.split('"')[1]
                prop = data_path.rsplit(".", 1)[1]
                vec = getattr(arm.pose.bones[bone], prop)
                for k, v in comps.items():
                    vec[k] = float(v[i])
                arm.keyframe_insert(data_path=data_path, frame=float(curves[0].co[2 * i]), group=bone)
        per_key = time.perf_counter() - t

    print(f"bulk import, 18,000 frames x 99 curves, rig only:  {bulk:.3f} s (target <= 2 s)")
    print(f"bulk import, 18,000 frames, rig + mesh + camera:   {bulk_mesh:.3f} s")
    print(f"keyframe_insert, 500 frames x 99 curves:           {per_key:.3f} s")
    rate_bulk = 18_000 / bulk
    rate_insert = n / per_key
    print(f"frames per second: bulk {rate_bulk:,.0f}, keyframe_insert {rate_insert:,.0f}; "
          f"ratio {rate_bulk / rate_insert:,.0f}x (and keyframe_insert grows worse than linearly)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
