"""Draw a capture's fitted skeleton (joints_2d) over frames of its clip, to look at the result.

    python scripts/overlay_capture.py CLIP CAPTURE_DIR OUT_DIR [--frames 4] [--mediapipe LANDMARKS.npz]

Writes OUT_DIR/<clip>_<frame>.png for a few frames spread over the clip: every person's SMPL skeleton
(green: left limbs, orange: right, white: trunk) and, with --mediapipe (the shared tool's .npz), MediaPipe's
own limb landmarks as small blue dots. Images are scaled to at most 960 px high.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
PARENTS = (-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21)
LEFT, RIGHT = {1, 4, 7, 10, 13, 16, 18, 20, 22}, {2, 5, 8, 11, 14, 17, 19, 21, 23}
MP_LIMBS = (11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28)


def draw(img, joints: np.ndarray, scale: float) -> None:
    for j, p in enumerate(PARENTS):
        if p < 0:
            continue
        colour = (80, 220, 80) if j in LEFT else (40, 140, 255) if j in RIGHT else (255, 255, 255)
        a, b = (joints[p] * scale).astype(int), (joints[j] * scale).astype(int)
        cv2.line(img, tuple(a), tuple(b), colour, 3, cv2.LINE_AA)
    for q in joints * scale:
        cv2.circle(img, tuple(q.astype(int)), 4, (0, 0, 0), -1, cv2.LINE_AA)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("clip", type=Path)
    ap.add_argument("capture", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--frames", type=int, default=4)
    ap.add_argument("--mediapipe", type=Path, default=None)
    args = ap.parse_args()
    from tar_core.motion_file import read_motion

    people = [read_motion(f) for f in sorted(args.capture.glob("person_*.npz"))]
    mp = np.load(args.mediapipe)["image"] if args.mediapipe else None
    cap = cv2.VideoCapture(str(args.clip))
    n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    wanted = set(np.linspace(n * 0.1, n * 0.9, args.frames).astype(int).tolist())
    args.out.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        ok, img = cap.read()
        if not ok:
            break
        if i not in wanted:
            continue
        scale = min(1.0, 960 / img.shape[0])
        img = cv2.resize(img, None, fx=scale, fy=scale) if scale < 1 else img
        for m in people:
            rows = np.flatnonzero(m.frame_ids == i)
            if len(rows):
                draw(img, m.joints_2d[rows[0]], scale)
        if mp is not None and i < len(mp) and np.isfinite(mp[i, 0, 0]):
            for q in mp[i, list(MP_LIMBS), :2] * scale:
                cv2.circle(img, tuple(q.astype(int)), 5, (255, 80, 0), -1, cv2.LINE_AA)
        cv2.imwrite(str(args.out / f"{args.clip.stem}_{i:04d}.png"), img)
    return 0


if __name__ == "__main__":
    sys.exit(main())
