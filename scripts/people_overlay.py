"""Boxes and ids of every tracked person drawn over a few frames of a clip, plus each track's span.

    python scripts/people_overlay.py CLIP OUT_DIR [--frames 0,40,80] [--every 30]

Writes OUT_DIR/<clip>_<frame>.png and prints one line per track (id, frames, first-last, longest gap).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


class _Quiet:
    def progress(self, *a):
        pass


def track(clip: str):
    from tar_core.capture.tracks import TrackingPass
    from tar_core.capture.video import VideoReader
    from tar_core.util.stop import StopFlag

    tp = TrackingPass(_Quiet(), StopFlag())
    tracks, n = tp.run(VideoReader(clip))
    return tracks, n, tp.detector_stats


def draw(clip: str, tracks: dict, frames: set[int], out_dir: Path) -> None:
    import cv2

    from tar_core.capture.video import VideoReader

    colours = [(0, 200, 255), (255, 80, 80), (80, 255, 80), (255, 0, 255), (255, 255, 0), (0, 128, 255)]
    with VideoReader(clip) as reader:
        for frame in reader:
            if frame.index not in frames:
                continue
            img = cv2.cvtColor(frame.image, cv2.COLOR_RGB2BGR)
            for tid, t in tracks.items():
                if frame.index in t.frame_ids:
                    x0, y0, x1, y1 = (int(v) for v in t.boxes[t.frame_ids.index(frame.index)])
                    c = colours[tid % len(colours)]
                    cv2.rectangle(img, (x0, y0), (x1, y1), c, 3)
                    cv2.putText(img, str(tid), (x0 + 4, y0 + 40), cv2.FONT_HERSHEY_SIMPLEX, 1.4, c, 3)
            cv2.putText(img, f"frame {frame.index}", (10, 30), cv2.FONT_HERSHEY_SIMPLEX, 1.0, (255, 255, 255), 2)
            cv2.imwrite(str(out_dir / f"{Path(clip).stem}_{frame.index:04d}.png"), img)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("clip")
    ap.add_argument("out_dir")
    ap.add_argument("--frames", default="")
    ap.add_argument("--every", type=int, default=30)
    args = ap.parse_args()
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tracks, n, stats = track(args.clip)
    for tid, t in sorted(tracks.items()):
        gap = int(max(np.diff(t.frame_ids), default=1)) - 1
        print(f"track {tid}: {len(t.frame_ids)} frames, {t.frame_ids[0]}-{t.frame_ids[-1]}, longest gap {gap}")
    print(f"{n} frames; detector {json.dumps(stats)}")
    frames = {int(f) for f in args.frames.split(",") if f} or set(range(0, n, args.every))
    draw(args.clip, tracks, frames, out)


if __name__ == "__main__":
    main()
