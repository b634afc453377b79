"""Capture speed and memory, measured in one run on the rendered sample clip.

Prints: frames/s of the tar engine (tiny and the paper's variant) with the per-frame feature
cache and with the naive recompute of all T frames per window, and their ratio; frames/s per
pipeline stage; achieved GFLOP/s against a large matmul timed in the same run; peak RSS of a
whole capture for a 300-frame and a 1200-frame clip and their ratio.

    python scripts/bench_capture.py [--paper-frames 6] [--skip-rss]
    python scripts/bench_capture.py --tar-only --variants tar-blazepose:72 [--checkpoint FILE]

``--variants NAME[:FRAMES],...`` picks the tar variants timed (default tar-tiny:72 and tar-hrnet48:6);
``--checkpoint`` also times a whole ``capture --engine tar`` of a 300-frame 640x480 clip with that checkpoint
per stage (summary.json timings); ``--tar-only`` skips the keypoints capture and the RSS runs.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SAMPLE = ROOT / "data" / "sample" / "sample_walk.mp4"


def matmul_gflops(n: int = 2048, reps: int = 5) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * n**3 * reps / (time.perf_counter() - t) / 1e9


def sample_crops(n: int):
    """Real crops of the sample clip (with their geometry), cycled to n frames."""
    from tar_core.capture.video import VideoReader
    from tar_core.geometry import camera as cam
    from tar_core.geometry.cropping import crop_batch, square_box
    from tar_core.motion_file import read_motion

    gt = read_motion(ROOT / "data" / "sample" / "sample_walk.npz")
    crops, geoms = [], []
    with VideoReader(SAMPLE) as reader:
        W, H = reader.info.width, reader.info.height
        focal, principal = cam.default_focal(W, H), np.array(cam.default_principal_point(W, H))
        for f in reader:
            box = square_box(gt.bbox_xyxy[f.index])
            crops.append(crop_batch(f.image, [box])[0])
            geoms.append((box.center, float(box.size), focal, principal))
    idx = [i % len(crops) for i in range(n)]
    return [crops[i] for i in idx], [geoms[i] for i in idx]


def engine_fps(variant: str, frames: int, cache: bool) -> tuple[float, int]:
    from tar_core.body_model import load_body_model
    from tar_core.capture.engines.tar import TarEngine
    from tar_core.network.config import get_variant
    from tar_core.network.tar import TAR

    torch.manual_seed(0)
    model = TAR(get_variant(variant), load_body_model())
    engine = TarEngine(model, "cpu", batch_windows=4, cache_features=cache)
    crops, geoms = sample_crops(frames)
    # Warm-up on a short track: every batch shape the timed run will meet is set up once.
    for i in range(engine.batch_windows + 1):
        engine.add([(0, i, crops[i % frames], geoms[i % frames])])
    engine.end_track(0)
    engine.frames_encoded = 0
    t = time.perf_counter()
    out = 0
    for i in range(frames):
        out += len(engine.add([(1, i, crops[i], geoms[i])]))
    out += len(engine.end_track(1))
    elapsed = time.perf_counter() - t
    assert out == frames
    return frames / elapsed, engine.frames_encoded


def stage_fps(frames_limit: int = 72) -> dict[str, float]:
    from tar_core.capture.detection import PoseDetector
    from tar_core.capture.video import VideoReader
    from tar_core.geometry.cropping import crop_batch, square_box

    out = {}
    t = time.perf_counter()
    with VideoReader(SAMPLE) as r:
        imgs = [f.image for f in r][:frames_limit]
    out["decode"] = len(imgs) / (time.perf_counter() - t)
    with PoseDetector() as det:
        t = time.perf_counter()
        dets = [det(im) for im in imgs]
        out["detect (MediaPipe Pose, 1 thread)"] = len(imgs) / (time.perf_counter() - t)
    t = time.perf_counter()
    for im, d in zip(imgs, dets, strict=True):
        if d:
            crop_batch(im, [square_box(d[0].box)])
    out["crop + normalise"] = len(imgs) / (time.perf_counter() - t)
    return out


def keypoints_stages(tmp: Path, frames: int = 300, size: tuple[int, int] = (640, 480)) -> dict[str, float]:
    """Frames/s of each stage of a keypoints capture of a ``frames``-frame clip at ``size``, from the
    capture's own ``summary.json`` timings (detection = MediaPipe only; engine = focal estimate + fit)."""
    import json

    clip = long_clip(tmp / f"kp{frames}.mp4", frames, size)
    out = tmp / "kp_out"
    res = subprocess.run([sys.executable, "-m", "tar_core", "capture", str(clip), "-o", str(out)], capture_output=True,
                         text=True, cwd=ROOT)
    if res.returncode != 0:
        raise RuntimeError(res.stderr[-2000:])
    s = json.loads((out / "summary.json").read_text())
    t = s["timings_s"]
    n = s["frames_read"]
    return {"read + detect + track": n / t["tracking"], "detect (MediaPipe)": n / t["detection"],
            "fit (keypoints engine)": n / t["engine"]}


def tar_stages(tmp: Path, checkpoint: str, frames: int = 300, size: tuple[int, int] = (640, 480)) -> dict:
    """Frames/s of each stage of a ``capture --engine tar`` with ``checkpoint`` of a ``frames``-frame clip at
    ``size`` (``summary.json`` timings), and end to end (the whole command, start-up included)."""
    import json

    clip = long_clip(tmp / f"tar{frames}.mp4", frames, size)
    out = tmp / "tar_out"
    t = time.perf_counter()
    res = subprocess.run([sys.executable, "-m", "tar_core", "capture", str(clip), "-o", str(out), "--engine", "tar",
                          "--checkpoint", checkpoint, "--device", "cpu"], capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - t
    if res.returncode != 0:
        raise RuntimeError(res.stderr[-2000:])
    s = json.loads((out / "summary.json").read_text())
    n = s["frames_read"]
    stages = {f"{k} ({v:.1f} s)": n / v for k, v in s["timings_s"].items() if v > 0}
    return {**stages, f"end to end, process included ({wall:.1f} s)": n / wall}


def long_clip(path: Path, frames: int, size: tuple[int, int] | None = None) -> Path:
    import cv2

    cap = cv2.VideoCapture(str(SAMPLE))
    src = []
    while True:
        ok, img = cap.read()
        if not ok:
            break
        src.append(img)
    # Walk forth and back so the motion stays continuous when looped.
    cycle = src + src[::-1]
    if size is not None:
        cycle = [cv2.resize(img, size, interpolation=cv2.INTER_CUBIC) for img in cycle]
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 24.0, (cycle[0].shape[1], cycle[0].shape[0]))
    for i in range(frames):
        w.write(cycle[i % len(cycle)])
    w.release()
    return path


def capture_peak_rss(clip: Path, checkpoint: Path, out: Path) -> tuple[float, float]:
    # VmHWM, not ru_maxrss: after fork + exec, ru_maxrss keeps the parent's high-water mark.
    code = ("import sys, time; from tar_core.cli import main; t = time.perf_counter(); "
            f"rc = main(['capture', {str(clip)!r}, '-o', {str(out)!r}, '--checkpoint', {str(checkpoint)!r}, "
            "'--progress', 'jsonl']); hwm = open('/proc/self/status').read().split('VmHWM:')[1].split()[0]; "
            "print('PEAK', hwm, time.perf_counter() - t); sys.exit(rc)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    if res.returncode != 0:
        raise RuntimeError(res.stderr[-2000:])
    line = [x for x in res.stdout.splitlines() if x.startswith("PEAK")][-1].split()
    return float(line[1]) / 1024.0, float(line[2])  # MiB, seconds


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tiny-frames", type=int, default=72)
    ap.add_argument("--paper-frames", type=int, default=6)
    ap.add_argument("--skip-rss", action="store_true")
    ap.add_argument("--keypoints-only", action="store_true", help="only the keypoints capture's stages")
    ap.add_argument("--variants", default=None, help="NAME[:FRAMES],... tar variants to time")
    ap.add_argument("--checkpoint", default=None, help="also time a whole tar capture with this checkpoint")
    ap.add_argument("--tar-only", action="store_true", help="skip the keypoints capture and the RSS runs")
    args = ap.parse_args()
    if args.keypoints_only:
        with tempfile.TemporaryDirectory() as tmp:
            kp = keypoints_stages(Path(tmp))
        for stage, fps in kp.items():
            print(f"keypoints capture, 300 frames 640x480: {stage:24s} {fps:8.1f} frames/s")
        print(f"  fit / detection speed: {kp['fit (keypoints engine)'] / kp['detect (MediaPipe)']:.1f}x (target >= 3x)")
        return 0
    torch.set_num_threads(torch.get_num_threads())
    print(f"CPU threads: {torch.get_num_threads()}, torch {torch.__version__}")
    peak = matmul_gflops()
    print(f"large matmul (2048^3, float32): {peak:.1f} GFLOP/s")

    from tar_core.network.config import get_variant
    from tar_core.network.info import model_info

    variants = [("tar-tiny", args.tiny_frames), ("tar-hrnet48", args.paper_frames)]
    if args.variants:
        variants = [(v.split(":")[0], int(v.split(":")[1]) if ":" in v else 72) for v in args.variants.split(",")]
    for variant, n in variants:
        info = model_info(get_variant(variant))
        fps_c, enc_c = engine_fps(variant, n, cache=True)
        fps_n, enc_n = engine_fps(variant, n, cache=False)
        gflop_frame = info["gflops_backbone_per_frame"] + info["gflops_head_per_output_frame"]
        print(f"{variant}: {n} frames; cached {fps_c:.2f} frames/s ({enc_c} backbone passes), naive {fps_n:.2f} "
              f"frames/s ({enc_n} backbone passes); speed-up {fps_c / fps_n:.2f}x (T = {get_variant(variant).seq_len})")
        print(f"  {gflop_frame:.1f} GFLOP per output frame (cached) -> {gflop_frame * fps_c:.1f} GFLOP/s achieved, "
              f"{100 * gflop_frame * fps_c / peak:.0f}% of the matmul rate")

    for stage, fps in stage_fps().items():
        print(f"stage {stage:20s} {fps:8.1f} frames/s")
    if args.checkpoint:
        with tempfile.TemporaryDirectory() as tmp:
            for stage, fps in tar_stages(Path(tmp), args.checkpoint).items():
                print(f"tar capture, 300 frames 640x480: {stage:40s} {fps:8.1f} frames/s")
    if args.tar_only:
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        kp = keypoints_stages(Path(tmp))
    for stage, fps in kp.items():
        print(f"keypoints capture, 300 frames 640x480: {stage:24s} {fps:8.1f} frames/s")
    print(f"  fit / detection speed: {kp['fit (keypoints engine)'] / kp['detect (MediaPipe)']:.1f}x (target >= 3x)")

    if not args.skip_rss:
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            ckpt = tmp / "tiny.pt"
            subprocess.run([sys.executable, "-m", "tar_core", "init-checkpoint", "--variant", "tar-tiny", "-o",
                            str(ckpt)], check=True, capture_output=True, cwd=ROOT)
            results = {}
            for n in (300, 1200):
                clip = long_clip(tmp / f"clip{n}.mp4", n)
                results[n] = capture_peak_rss(clip, ckpt, tmp / f"out{n}")
                mib, secs = results[n]
                print(f"capture of {n} frames (tar-tiny, end to end): peak RSS {mib:.0f} MiB, {secs:.1f} s, "
                      f"{n / secs:.1f} frames/s")
            print(f"peak RSS ratio 1200 / 300 frames: {results[1200][0] / results[300][0]:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
