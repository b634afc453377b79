"""Accuracy of the keypoints engine, beside raw MediaPipe's and another engine's (e.g. the previous one).

Rendered clips with exact ground truth (``--clips``: every CLIP.mp4 with its CLIP.npz, a ``render-clip`` motion
file or a ``make-dataset --videos`` clip; ``--render`` makes the default set first): per clip, the mean 2D error
of the 12 limb joints (px), PA-MPJPE and MPJPE (mm, root-aligned), ACCEL (mm/frame^2), planted-foot slide
(cm/frame, over frames where the true foot is planted) and the focal estimate's error; raw MediaPipe's own
figures from its image and world landmarks on the same frames. Real footage (``--footage``, never copied):
elbow/knee bend vs MediaPipe's world landmarks and limb joints vs MediaPipe's in the image (% of the person's
height), by the shared tools.

    python scripts/eval_keypoints.py [--clips out/eval_clips] [--render] [--footage ../shared/footage]
        [--baseline-code out/old_code]   # a tar_core tree to run as the "old" engine
        [--capture-args '--smooth-hz 3']  # options for the engine under test
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
LIMBS = [16, 17, 18, 19, 20, 21, 1, 2, 4, 5, 7, 8]  # shoulders, elbows, wrists, hips, knees, ankles
LIMBS_MP = [11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28]
LIMB_HIPS = (6, 7)  # positions of the hips inside LIMBS
FEET = (7, 8, 10, 11)  # ankles and feet: the points whose slide is measured
RENDERS = (  # name, motion, size, focal (None: diagonal), tilt, seed
    ("walk_640x480", "walk", "640x480", None, 0.0, 101),  # 36 frames; the others 24
    ("arms_640x480", "arms", "640x480", None, 0.0, 102),
    ("turn_480x640_f1000", "turn", "480x640", 1000, 0.15, 103),
    ("squat_640x480_f600", "squat", "640x480", 600, 0.0, 104),
    ("random_640x480", "random", "640x480", None, 0.0, 105),
    ("walk_480x640_f1500_tilt", "walk", "480x640", 1500, -0.25, 106),
)
TOOLS = ROOT.parent / "shared" / "tools"  # the read-only shared/ beside the checkout


def run(cmd, code: Path | None = None, **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(code or ROOT)}  # cwd too: ``-m`` puts it first on the path
    return subprocess.run([sys.executable, *map(str, cmd)], env=env, cwd=code or ROOT, capture_output=True,
                          text=True, **kw)


def mediapipe_landmarks(clip: Path, cache: Path) -> dict:
    out = cache / f"{clip.stem}.mediapipe.npz"
    if not out.is_file():
        res = run([TOOLS / "mediapipe_landmarks.py", clip, out])
        if res.returncode != 0:
            raise RuntimeError(res.stderr[-1000:])
    with np.load(out) as z:
        return {"image": z["image"], "world": z["world"]}


CAPTURE_ARGS: list[str] = []  # extra ``capture`` options for the engine under test (--capture-args)


def capture(clip: Path, out: Path, code: Path | None, reuse: bool) -> dict | str:
    if not (reuse and (out / "summary.json").is_file()):
        res = run(["-m", "tar_core", "capture", clip, "-o", out, *(CAPTURE_ARGS if code is None else [])], code)
        if res.returncode != 0:
            return f"capture failed ({res.returncode}): {res.stderr.strip().splitlines()[-1]}"
    return json.loads((out / "summary.json").read_text())


def world_down(gt) -> np.ndarray | None:
    """The world's down in the camera frame, from a render's provenance (None if it does not say)."""
    R = gt.provenance_dict.get("camera_rotation_world_to_cam")
    return None if R is None else np.asarray(R, dtype=np.float64) @ np.array([0.0, -1.0, 0.0])


def planted(gt_joints: np.ndarray, max_step: float = 0.004, down: np.ndarray | None = None) -> np.ndarray:
    """(N-1, 4) True where a true foot point moves less than ``max_step`` metres between frames and is near
    its lowest height over the clip (camera frame; 'down' is the world's where given, else the mean of the
    feet's down direction from the neck, which leans with the body)."""
    feet = gt_joints[:, list(FEET)]
    step = np.linalg.norm(np.diff(feet, axis=0), axis=-1)
    if down is None:
        down = (gt_joints[:, [7, 8]].mean(1) - gt_joints[:, 12]).mean(0)
    down = down / np.linalg.norm(down)
    h = -(feet @ down)
    low = h < h.min(0) + 0.05
    return (step < max_step) & low[1:] & low[:-1]


def slide_cm(joints: np.ndarray, mask: np.ndarray) -> float:
    if not mask.any():
        return float("nan")
    step = np.linalg.norm(np.diff(joints[:, list(FEET)], axis=0), axis=-1)
    return float(100 * step[mask].mean())


def motion_metrics(m, gt, idx: np.ndarray) -> dict:
    from tar_core.evaluation.metrics import accel_error, mpjpe, pa_mpjpe

    g, p = gt.joints_cam[idx][:, LIMBS], m.joints_cam[:, LIMBS]
    f_true = float(gt.camera_intrinsics[0, 0])
    return {"2d": float(np.linalg.norm(m.joints_2d[:, LIMBS] - gt.joints_2d[idx][:, LIMBS], axis=-1).mean()),
            "pa": float(pa_mpjpe(p, g).mean()), "mpjpe": float(mpjpe(p, g, hips=LIMB_HIPS).mean()),
            "accel": float(accel_error(p, g, hips=LIMB_HIPS).mean()),
            "slide": slide_cm(m.joints_cam, planted(gt.joints_cam[idx], down=world_down(gt))),
            "focal": 100 * abs(float(m.camera_intrinsics[0, 0]) - f_true) / f_true}


def mediapipe_metrics(mp: dict, gt) -> dict:
    from tar_core.evaluation.metrics import accel_error, mpjpe, pa_mpjpe

    ok = np.isfinite(mp["image"][:, 0, 0])
    g = gt.joints_cam[ok][:, LIMBS]
    w = mp["world"][ok][:, LIMBS_MP]
    e2d = np.linalg.norm(mp["image"][ok][:, LIMBS_MP, :2] - gt.joints_2d[ok][:, LIMBS], axis=-1).mean()
    return {"2d": float(e2d), "pa": float(pa_mpjpe(w, g).mean()), "mpjpe": float(mpjpe(w, g, hips=LIMB_HIPS).mean()),
            "accel": float(accel_error(w, g, hips=LIMB_HIPS).mean()),
            "slide": slide_cm(gt.joints_cam * np.nan, np.zeros((1, 4), bool)), "focal": float("nan")}


def ground_truth(path: Path):
    """A clip's true motion: a ``render-clip`` motion file, or a ``make-dataset --videos`` clip file."""
    from tar_core.motion_file import Motion, read_motion

    with np.load(path) as z:
        if "crops" not in z.files:
            return read_motion(path)
        n, c, s = len(z["center"]), z["center"], z["box_size"]
        fps = 30.0  # make-dataset's clips (synthetic.groundtruth.CLIP_FPS); only frame counts matter here
        return Motion(poses=z["poses"], trans=z["trans"], betas=z["betas"], frame_ids=np.arange(n),
                      frame_times=np.arange(n) / fps, image_size=z["image_size"], camera_intrinsics=z["K"],
                      bbox_xyxy=np.concatenate([c - s[:, None] / 2, c + s[:, None] / 2], 1),
                      joints_cam=z["joints_cam"], joints_2d=z["joints_2d"], confidence=np.ones(n),
                      mocap_framerate=fps, track_id=0, engine="ground-truth", body_model="mannequin")


def eval_render(clip: Path, engines: dict, cache: Path, reuse: bool) -> dict:
    from tar_core.motion_file import read_motion

    gt = ground_truth(clip.with_suffix(".npz"))
    rows = {"mediapipe": mediapipe_metrics(mediapipe_landmarks(clip, cache), gt)}
    for name, code in engines.items():
        out = cache / f"{clip.stem}.{name}"
        summary = capture(clip, out, code, reuse and name != "new")
        if isinstance(summary, str):
            rows[name] = summary
            continue
        m = read_motion(out / "person_0.npz")
        rows[name] = motion_metrics(m, gt, np.searchsorted(gt.frame_ids, m.frame_ids))
        t = summary["timings_s"]
        rows[name]["fit_fps"] = len(m.frame_ids) / t["engine"]
        rows[name]["detect_fps"] = summary["frames_read"] / t["detection"] if "detection" in t else float("nan")
    rows["gt slide"] = slide_cm(gt.joints_cam, planted(gt.joints_cam, down=world_down(gt)))
    return rows


def eval_footage(clip: Path, engines: dict, cache: Path, reuse: bool) -> dict:
    mp_path = cache / f"{clip.stem}.mediapipe.npz"
    mediapipe_landmarks(clip, cache)
    rows = {}
    for name, code in engines.items():
        out = cache / f"{clip.stem}.{name}"
        summary = capture(clip, out, code, reuse and name != "new")
        if isinstance(summary, str):
            rows[name] = summary
            continue
        res = run([TOOLS / "real_agreement.py", out, mp_path])
        rows[name] = json.loads(res.stdout.strip().splitlines()[-1]) if res.returncode == 0 else res.stderr[-300:]
        rows[name]["focal"] = summary.get("focal", {}).get("focal_px")
        rows[name]["timings"] = {k: round(v, 1) for k, v in summary["timings_s"].items()}
    return rows


def render_missing(clips: Path) -> None:
    clips.mkdir(parents=True, exist_ok=True)
    for name, motion, size, focal, tilt, seed in RENDERS:
        clip = clips / f"{name}.mp4"
        if not clip.is_file():
            extra = ["--focal", focal] if focal else []
            res = run(["-m", "tar_core", "render-clip", "--motion", motion, "--size", size, "--frames", 24,
                       "--samples", 4, "--seed", seed, "--tilt", tilt, *extra, "-o", clip])
            if res.returncode != 0:
                raise RuntimeError(res.stderr[-1000:])


COLS = (("2d", "2D px", 7.2), ("pa", "PA-MPJPE", 9.1), ("mpjpe", "MPJPE", 7.1), ("accel", "ACCEL", 7.2),
        ("slide", "slide cm", 8.2), ("focal", "focal %", 8.1))


def print_renders(results: dict) -> None:
    print("rendered clips (targets: 2D <= MediaPipe's, PA-MPJPE <= 50 mm, MPJPE <= 80 mm, ACCEL <= 8 mm/f^2, "
          "planted-foot slide <= 1 cm/frame; focal: |estimate - truth| / truth)")
    print(f"{'clip':26s} {'source':10s} " + " ".join(f"{c[1]:>{int(c[2])}s}" for c in COLS) + "  fit fps  detect fps")
    means: dict = {}
    for clip, rows in results.items():
        for src, r in rows.items():
            if src == "gt slide":
                continue
            if isinstance(r, str):
                print(f"{clip:26s} {src:10s} {r}")
                continue
            means.setdefault(src, []).append(r)
            line = " ".join(f"{r[k]:{w}f}" for k, _, w in COLS)
            fps = f"  {r['fit_fps']:7.1f}  {r['detect_fps']:10.1f}" if "fit_fps" in r else ""
            print(f"{clip:26s} {src:10s} {line}{fps}")
        print(f"{clip:26s} {'(truth)':10s} slide of the true feet on planted frames: {rows['gt slide']:.2f} cm/frame")
    for src, rs in means.items():
        line = " ".join(f"{np.nanmean([r[k] for r in rs]):{w}f}" for k, _, w in COLS)
        print(f"{'MEAN':26s} {src:10s} {line}")


def print_footage(results: dict) -> None:
    print("\nreal footage vs MediaPipe's own landmarks (targets: bend within 12 deg, limb joints within 3% of height)")
    print(f"{'clip':34s} {'engine':8s} {'elbow d':>8s} {'knee d':>7s} {'elbow fit/mp':>13s} {'knee fit/mp':>12s} "
          f"{'limb %h med':>11s} {'mean':>6s} {'focal':>7s}")
    for clip, rows in results.items():
        for name, r in rows.items():
            if isinstance(r, str) or "error" in r:
                print(f"{clip:34s} {name:8s} {r if isinstance(r, str) else r['error']}")
                continue
            print(f"{clip:34s} {name:8s} {r['elbow_bend_absdiff_deg']:8.1f} {r['knee_bend_absdiff_deg']:7.1f} "
                  f"{r['elbow_bend_fit_deg']:6.1f}/{r['elbow_bend_mediapipe_deg']:<6.1f} "
                  f"{r['knee_bend_fit_deg']:5.1f}/{r['knee_bend_mediapipe_deg']:<6.1f} "
                  f"{r['limb2d_median_pct_height']:11.2f} {r['limb2d_mean_pct_height']:6.2f} {r['focal'] or 0:7.0f}"
                  f"  {r['timings']}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clips", type=Path, default=ROOT / "out" / "eval_clips")
    ap.add_argument("--render", action="store_true", help="render the default clips that are missing first")
    ap.add_argument("--footage", type=Path, default=ROOT.parent / "shared" / "footage")
    ap.add_argument("--no-footage", action="store_true")
    ap.add_argument("--baseline-code", type=Path, default=None, help="a tar_core tree to compare (e.g. the old engine)")
    ap.add_argument("--cache", type=Path, default=ROOT / "out" / "eval_cache")
    ap.add_argument("--reuse", action="store_true", help="reuse the baseline's captures from an earlier run")
    ap.add_argument("--only", default="", help="comma-separated substrings of clip names to run")
    ap.add_argument("--capture-args", default="", help="extra capture options for the new engine, e.g. '--smooth-hz 3'")
    args = ap.parse_args()
    CAPTURE_ARGS[:] = args.capture_args.split()
    args.clips, args.cache, args.footage = args.clips.resolve(), args.cache.resolve(), args.footage.resolve()
    args.cache.mkdir(parents=True, exist_ok=True)
    if args.render:
        render_missing(args.clips)
    engines = {"new": None, **({"old": args.baseline_code.resolve()} if args.baseline_code else {})}
    pick = [s for s in args.only.split(",") if s]
    chosen = [c for c in sorted(args.clips.glob("*.mp4")) if c.with_suffix(".npz").is_file()
              and (not pick or any(s in c.stem for s in pick))]
    print_renders({c.stem: eval_render(c, engines, args.cache, args.reuse) for c in chosen})
    if not args.no_footage and args.footage.is_dir():
        real = [c for c in sorted(args.footage.glob("*.mp4")) if not pick or any(s in c.stem for s in pick)]
        print_footage({c.stem: eval_footage(c, engines, args.cache, args.reuse) for c in real})
    return 0


if __name__ == "__main__":
    sys.exit(main())
