"""Tracking-pass speed with one person in view: MediaPipe's single-person ``Pose`` (the path before
multi-person capture) against ``MultiPoseDetector`` (region passes + discovery), alternated A/B/A/B so
a busy machine weighs on both alike. Two ratios: of the best whole runs, and of the sums of each frame's best
time over the rounds (steadier where other jobs come and go).

    python scripts/bench_people.py [CLIP ...] [--rounds 2]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def frames_of(clip):
    from tar_core.capture.video import VideoReader

    with VideoReader(clip) as r:
        return [(f.index, f.time, f.image) for f in r], r.info.fps


def run_single(frames, fps) -> np.ndarray:
    """Seconds spent on each frame (setting up counts to the first)."""
    from tar_core.capture.detection import PoseDetector
    from tar_core.capture.tracking import Tracker

    marks = [time.perf_counter()]
    tracker = Tracker(max_missed=int(1.5 * fps))
    with PoseDetector() as det:
        for i, ts, img in frames:
            tracker.update(i, ts, det(img))
            marks.append(time.perf_counter())
    return np.diff(marks)


def run_multi(frames, fps) -> np.ndarray:
    from tar_core.capture.multipose import MultiPoseDetector
    from tar_core.capture.tracking import Tracker

    marks = [time.perf_counter()]
    tracker = Tracker(max_missed=int(1.5 * fps))
    with MultiPoseDetector(fps=fps) as det:
        for i, ts, img in frames:
            updates, ended = tracker.update(i, ts, det.detect(img, i, ts, tracker))
            det.bind(updates, ended, ts)
            marks.append(time.perf_counter())
    return np.diff(marks)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("clips", nargs="*", default=[str(ROOT / "data" / "sample" / "sample_walk.mp4")])
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    from tar_core.capture.pose_bundle import pose_bundle_path

    pose_bundle_path()  # built once, outside the timings
    for clip in args.clips:
        frames, fps = frames_of(clip)
        single, multi = [], []
        for _ in range(args.rounds):
            single.append(run_single(frames, fps))
            multi.append(run_multi(frames, fps))
        n = len(frames)
        best_s, best_m = (min(float(r.sum()) for r in runs) for runs in (single, multi))
        # Each frame's fastest time over the rounds: what is left when other jobs stole no time from it.
        floor_s, floor_m = (float(np.min(runs, axis=0).sum()) for runs in (single, multi))
        print(f"{Path(clip).name}: {n} frames; single-person Pose {n / best_s:.1f} fps (best of {args.rounds}), "
              f"multi-person {n / best_m:.1f} fps; ratio multi/single time {best_m / best_s:.2f}, "
              f"of per-frame bests {floor_m / floor_s:.2f}")


if __name__ == "__main__":
    main()
