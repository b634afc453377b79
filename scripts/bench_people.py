"""Tracking-pass speed with one person in view: MediaPipe's single-person ``Pose`` (the path before
multi-person capture) against ``MultiPoseDetector`` (region passes + discovery), alternated A/B/A/B so
a busy machine weighs on both alike; wall-clock and CPU time (all the process's threads), best of the rounds.

    python scripts/bench_people.py [CLIP ...] [--rounds 2]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def frames_of(clip):
    from tar_core.capture.video import VideoReader

    with VideoReader(clip) as r:
        return [(f.index, f.time, f.image) for f in r], r.info.fps


def run_single(frames, fps) -> tuple[float, float]:
    from tar_core.capture.detection import PoseDetector
    from tar_core.capture.tracking import Tracker

    t, c = time.perf_counter(), time.process_time()
    tracker = Tracker(max_missed=int(1.5 * fps))
    with PoseDetector() as det:
        for i, ts, img in frames:
            tracker.update(i, ts, det(img))
    return time.perf_counter() - t, time.process_time() - c


def run_multi(frames, fps) -> tuple[float, float]:
    from tar_core.capture.multipose import MultiPoseDetector
    from tar_core.capture.tracking import Tracker

    t, c = time.perf_counter(), time.process_time()
    tracker = Tracker(max_missed=int(1.5 * fps))
    with MultiPoseDetector(fps=fps) as det:
        for i, ts, img in frames:
            updates, ended = tracker.update(i, ts, det.detect(img, i, ts, tracker))
            det.bind(updates, ended, ts)
    return time.perf_counter() - t, time.process_time() - c


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
        (ws, cs), (wm, cm) = (tuple(min(r[k] for r in runs) for k in (0, 1)) for runs in (single, multi))
        print(f"{Path(clip).name}: {n} frames; single-person Pose {n / ws:.1f} fps (best of {args.rounds}), "
              f"multi-person {n / wm:.1f} fps; ratio multi/single wall time {wm / ws:.2f}, CPU time {cm / cs:.2f}")


if __name__ == "__main__":
    main()
