"""Accuracy and speed of the keypoints engine on rendered clips with exact ground truth.

Renders (or reuses, from --clips) a clip of every scripted motion at 640x480, captures each with
the keypoints engine, and prints per clip: detection rate, 2D joint error (px), root-aligned
MPJPE and PA-MPJPE (mm) over the 12 limb joints, ACCEL error (mm/frame^2), and the capture's
frames/s end to end.

    python scripts/eval_keypoints.py [--frames 48] [--clips out/eval_clips]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
LIMBS = [16, 17, 18, 19, 20, 21, 1, 2, 4, 5, 7, 8]  # shoulders, elbows, wrists, hips, knees, ankles
LIMB_HIPS = (6, 7)  # positions of the hips inside LIMBS


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=48)
    ap.add_argument("--size", default="640x480")
    ap.add_argument("--samples", type=int, default=8)
    ap.add_argument("--clips", type=Path, default=ROOT / "out" / "eval_clips")
    ap.add_argument("--motions", default="walk,turn,arms,squat")
    args = ap.parse_args()
    from tar_core.evaluation.metrics import accel_error, mpjpe, pa_mpjpe
    from tar_core.motion_file import read_motion

    args.clips.mkdir(parents=True, exist_ok=True)
    rows = []
    for k, motion in enumerate(args.motions.split(",")):
        clip = args.clips / f"{motion}_{args.size}_{args.frames}.mp4"
        if not clip.is_file():
            subprocess.run([sys.executable, "-m", "tar_core", "render-clip", "--motion", motion, "--frames",
                            str(args.frames), "--size", args.size, "--samples", str(args.samples), "--seed",
                            str(100 + k), "-o", str(clip)], check=True)
        out = args.clips / f"{clip.stem}_keypoints"
        t = time.perf_counter()
        res = subprocess.run([sys.executable, "-m", "tar_core", "capture", str(clip), "-o", str(out)],
                             capture_output=True, text=True)
        wall = time.perf_counter() - t
        gt = read_motion(clip.with_suffix(".npz"))
        if res.returncode != 0:
            rows.append((motion, f"capture failed ({res.returncode}): {res.stderr.strip().splitlines()[-1]}"))
            continue
        m = read_motion(out / "person_0.npz")
        summary = json.loads((out / "summary.json").read_text())
        idx = np.searchsorted(gt.frame_ids, m.frame_ids)
        g = gt.joints_cam[idx][:, LIMBS]
        p = m.joints_cam[:, LIMBS]
        e2d = np.linalg.norm(m.joints_2d[:, LIMBS] - gt.joints_2d[idx][:, LIMBS], axis=-1).mean()
        observed = m.confidence > 0.5
        rows.append((motion, {
            "detection_rate": observed.sum() / gt.num_frames,
            "err_2d_px": float(e2d),
            "mpjpe_mm": float(mpjpe(p, g, hips=LIMB_HIPS).mean()),
            "pa_mpjpe_mm": float(pa_mpjpe(p, g).mean()),
            "accel_mm_f2": float(accel_error(p, g, hips=LIMB_HIPS).mean()),
            "fps_end_to_end": gt.num_frames / wall,
            "fps_stages": gt.num_frames / sum(summary["timings_s"].values()),
        }))
    print(f"keypoints engine on rendered {args.size} clips of {args.frames} frames "
          "(targets: PA-MPJPE <= 60, MPJPE <= 90, 2D <= 8 px, ACCEL <= 10)")
    print(f"{'clip':8s} {'detect':>7s} {'2D px':>7s} {'MPJPE':>7s} {'PA-MPJPE':>9s} {'ACCEL':>7s} "
          f"{'fps e2e':>8s} {'fps (no start-up)':>18s}")
    vals = []
    for motion, r in rows:
        if isinstance(r, str):
            print(f"{motion:8s} {r}")
            continue
        vals.append(r)
        print(f"{motion:8s} {r['detection_rate']:7.0%} {r['err_2d_px']:7.2f} {r['mpjpe_mm']:7.1f} "
              f"{r['pa_mpjpe_mm']:9.1f} {r['accel_mm_f2']:7.2f} {r['fps_end_to_end']:8.1f} {r['fps_stages']:18.1f}")
    if vals:
        mean = {k: float(np.mean([v[k] for v in vals])) for k in vals[0]}
        print(f"{'mean':8s} {mean['detection_rate']:7.0%} {mean['err_2d_px']:7.2f} {mean['mpjpe_mm']:7.1f} "
              f"{mean['pa_mpjpe_mm']:9.1f} {mean['accel_mm_f2']:7.2f} {mean['fps_end_to_end']:8.1f} "
              f"{mean['fps_stages']:18.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
