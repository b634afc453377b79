"""Clips of several rendered people, composited from the rendered sample clip (one mannequin walking), with
the ground truth of every person: the sample's person is cut out from its background (a background plate
from the frames where the person is elsewhere) and pasted at moving offsets onto a wider canvas, later
people in front. Each person's 2D joints and boxes are the sample's, moved by the paste offset; ``visible``
is the share of the person's pixels that shows (occlusion by people in front and the frame's edges)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from conftest import read_video

from tar_core.motion_file import read_motion

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "data" / "sample" / "sample_walk.mp4"
SAMPLE_GT = ROOT / "data" / "sample" / "sample_walk.npz"


@dataclass
class Person:
    """One pasted person: source frame and paste offset (dx, dy) for every output frame."""

    src: np.ndarray  # (T,) sample frame index
    offset: np.ndarray  # (T, 2) pixels


@dataclass
class PersonTruth:
    joints_2d: np.ndarray  # (T, J, 2)
    boxes: np.ndarray  # (T, 4)
    visible: np.ndarray  # (T,) share of the person's pixels in view


def _sample():
    frames, fps = read_video(SAMPLE)
    return np.stack(frames), read_motion(SAMPLE_GT), fps


def _cutouts(frames: np.ndarray, gt):
    """Background plate and per-frame person masks of the sample."""
    n, h, w = frames.shape[:3]
    keep = np.ones((n, h, w), bool)
    for i, b in enumerate(gt.bbox_xyxy):
        x0, y0, x1, y1 = (int(v) for v in (b[0] - 12, b[1] - 12, b[2] + 12, b[3] + 12))
        keep[i, max(y0, 0):y1, max(x0, 0):x1] = False
    data = np.where(keep[..., None], frames.astype(np.float32), np.nan)
    never = ~keep.any(0)  # always behind the person: filled in from around
    data[:, never] = 0.0
    plate = np.nanmedian(data, axis=0).astype(np.uint8)
    plate = cv2.inpaint(plate, never.astype(np.uint8), 5, cv2.INPAINT_TELEA)
    masks = np.zeros((n, h, w), bool)
    for i, b in enumerate(gt.bbox_xyxy):
        diff = np.abs(frames[i].astype(np.int16) - plate.astype(np.int16)).max(-1) > 28
        x0, y0, x1, y1 = (int(v) for v in (b[0] - 6, b[1] - 6, b[2] + 6, b[3] + 6))
        box = np.zeros((h, w), bool)
        box[max(y0, 0):y1, max(x0, 0):x1] = True
        m = (diff & box).astype(np.uint8)
        m = cv2.morphologyEx(m, cv2.MORPH_CLOSE, np.ones((5, 5), np.uint8))
        masks[i] = m > 0
    return plate, masks


def ping_pong(n_src: int, length: int, start: int = 0) -> np.ndarray:
    """Source frames 0..n-1..0.. (the walk played forth and back) from ``start``, ``length`` of them."""
    cycle = np.concatenate([np.arange(n_src), np.arange(n_src - 2, 0, -1)])
    return cycle[(start + np.arange(length)) % len(cycle)]


def make_clip(path: Path, people: list[Person], width: int) -> tuple[list[PersonTruth], float]:
    """Write the composite clip (mp4v) to ``path``; returns every person's truth and the frame rate."""
    frames, gt, fps = _sample()
    plate, masks = _cutouts(frames, gt)
    h, w = plate.shape[:2]
    reps = int(np.ceil(width / w))
    canvas_bg = np.concatenate([plate] * reps, axis=1)[:, :width]
    T = len(people[0].src)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, h))
    truths = [PersonTruth(np.zeros((T, gt.joints_2d.shape[1], 2)), np.zeros((T, 4)), np.zeros(T)) for _ in people]
    for t in range(T):
        img = canvas_bg.copy()
        owner = np.full((h, width), -1, np.int16)
        areas = []
        for k, p in enumerate(people):
            s, (dx, dy) = int(p.src[t]), np.round(p.offset[t]).astype(int)
            m = masks[s]
            ys, xs = np.nonzero(m)
            areas.append(len(ys))
            X, Y = xs + dx, ys + dy
            ok = (X >= 0) & (X < width) & (Y >= 0) & (Y < h)
            img[Y[ok], X[ok]] = frames[s][ys[ok], xs[ok]]
            owner[Y[ok], X[ok]] = k
            truths[k].joints_2d[t] = gt.joints_2d[s] + (dx, dy)
            truths[k].boxes[t] = gt.bbox_xyxy[s] + (dx, dy, dx, dy)
        counts = np.bincount(owner[owner >= 0].ravel(), minlength=len(people))
        for k in range(len(people)):
            truths[k].visible[t] = counts[k] / max(areas[k], 1)
        writer.write(img)
    writer.release()
    return truths, fps


CROSSING_WIDTH = 768


def crossing_people(length: int = 96) -> list[Person]:
    """A walks left to right, B right to left in front of A; they cross mid-clip."""
    x = np.linspace(-120, 480, length)
    return [Person(ping_pong(72, length), np.stack([x, np.zeros(length)], 1)),
            Person(ping_pong(72, length, 40), np.stack([x[::-1], np.zeros(length)], 1))]


def two_people_crossing(path: Path, length: int = 96):
    """768x288: ``crossing_people``."""
    return make_clip(path, crossing_people(length), CROSSING_WIDTH)


def three_people(path: Path, length: int = 120):
    """960x288: A and B cross; C walks right, leaves the frame on the right for about 1 s and comes back."""
    xa = np.linspace(-140, 420, length)
    t = np.arange(length)
    # C: out past the right edge for about a second and back (the person is about x=160-250 in the sample).
    xc = np.interp(t, [0, 24, 30, 54, length - 1], [560, 840, 840, 560, 560])
    people = [Person(ping_pong(72, length), np.stack([xa, np.zeros(length)], 1)),
              Person(ping_pong(72, length, 30), np.stack([xa[::-1], np.zeros(length)], 1)),
              Person(ping_pong(72, length, 60), np.stack([xc, np.zeros(length)], 1))]
    return make_clip(path, people, 960)


def one_walks_in(path: Path, length: int = 96):
    """768x288: A walks on the spot; B walks in through the left edge, fully in view from about frame 50."""
    t = np.arange(length)
    people = [Person(ping_pong(72, length), np.stack([np.full(length, 400.0), np.zeros(length)], 1)),
              Person(ping_pong(72, length, 30), np.stack([-400.0 + 5.0 * t, np.zeros(length)], 1))]
    return make_clip(path, people, CROSSING_WIDTH)


def score_tracks(tracks: dict, truths: list[PersonTruth], in_view: float = 0.5) -> list[dict]:
    """Per true person: the track that follows them, its coverage of the frames where the person is in view
    (``visible >= in_view``) and the id switches (changes of the matched track id from one frame where the
    person is in view to the next). Only people in view are matched to boxes: a box over someone mostly
    hidden behind another person is that other person's. ``tracks``: track id -> (frame ids, boxes (N, 4))."""
    from scipy.optimize import linear_sum_assignment

    from tar_core.capture.tracking import box_iou

    T = len(truths[0].visible)
    matched = np.full((len(truths), T), -1)
    by_frame: dict[int, list] = {}
    for tid, (fids, boxes) in tracks.items():
        for f, b in zip(fids, boxes, strict=True):
            by_frame.setdefault(int(f), []).append((tid, b))
    for f in range(T):
        cands = by_frame.get(f, [])
        people = [k for k, t in enumerate(truths) if t.visible[f] >= in_view]
        if not cands or not people:
            continue
        iou = box_iou(np.stack([truths[k].boxes[f] for k in people]), np.stack([b for _, b in cands]))
        rows, cols = linear_sum_assignment(iou, maximize=True)
        for r, c in zip(rows, cols, strict=True):
            if iou[r, c] >= 0.3:
                matched[people[r], f] = cands[c][0]
    out = []
    for k, truth in enumerate(truths):
        view = truth.visible >= in_view
        ids = matched[k][matched[k] >= 0]
        main = int(np.bincount(ids).argmax()) if len(ids) else -1
        seq = [i for i in matched[k] if i >= 0]
        switches = sum(1 for a, b in zip(seq, seq[1:], strict=False) if a != b)
        out.append({"track": main, "coverage": float((matched[k][view] == main).mean()) if view.any() else 1.0,
                    "switches": switches, "frames_in_view": int(view.sum())})
    return out
