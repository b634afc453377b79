"""Import speed: a 60-frame and an 18,000-frame motion file (best of 3 each; the target is at most
1 s more for the long one), and bulk fcurve writes against per-frame ``keyframe_insert`` on 500
frames, measured in one run.

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

    cpu: dict[str, float] = {}

    def best_of(path: Path, runs: int = 3, **options) -> float:
        """Best wall time of ``runs`` imports; the best CPU time of this process goes to ``cpu``
        (on a machine shared with other work the wall time also counts the waits for a core)."""
        times, cpus = [], []
        for _ in range(runs):
            bpy.ops.wm.read_homefile(use_empty=True)
            t, c = time.perf_counter(), time.process_time()
            importer.load(bpy.context, [str(path)], **options)
            times.append(time.perf_counter() - t)
            cpus.append(time.process_time() - c)
        cpu[f"{path.stem}{len(options)}"] = min(cpus)
        return min(times)

    with tempfile.TemporaryDirectory() as tmp:
        short = long_motion(Path(tmp) / "short.npz", 60)
        path = long_motion(Path(tmp) / "long.npz", 18_000)
        rig_only = {"with_mesh": False, "with_camera": False}
        short_s, long_s = best_of(short, **rig_only), best_of(path, **rig_only)
        short_full, long_full = best_of(short), best_of(path)
        bpy.ops.wm.read_homefile(use_empty=True)
        t = time.perf_counter()
        res = importer.load(bpy.context, [str(path)], with_mesh=False, with_camera=False)
        bulk = time.perf_counter() - t

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

    print(f"import, rig only:            60 frames {short_s:.3f} s, 18,000 frames {long_s:.3f} s: "
          f"{long_s - short_s:+.3f} s (target <= +1 s); CPU time {cpu['long2'] - cpu['short2']:+.3f} s")
    print(f"import, rig + mesh + camera: 60 frames {short_full:.3f} s, 18,000 frames {long_full:.3f} s: "
          f"{long_full - short_full:+.3f} s (target <= +1 s); CPU time {cpu['long0'] - cpu['short0']:+.3f} s")
    print(f"keyframe_insert, 500 frames x 99 curves: {per_key:.3f} s")
    rate_bulk = 18_000 / bulk
    rate_insert = n / per_key
    print(f"frames per second: bulk {rate_bulk:,.0f}, keyframe_insert {rate_insert:,.0f}; "
          f"ratio {rate_bulk / rate_insert:,.0f}x (and keyframe_insert grows worse than linearly)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
