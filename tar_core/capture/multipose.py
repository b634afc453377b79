"""Every person in view, each with their own landmarks: MediaPipe's Tasks ``PoseLandmarker`` on regions.

The bundle comes from the wheel (``pose_bundle``), so nothing is downloaded. Per frame:

- **Region passes.** Every open track gets a landmark pass on a square crop around the box the tracker
  predicts for it (``CROP_SCALE`` x the box's longer side), by a ``PoseLandmarker`` of its own in video
  mode (``num_poses=1``). The crop follows the person, so the landmarker's own frame-to-frame tracking
  sees a nearly still person and runs its detector only when it has lost them; the person fills the
  crop, so small people are as easy as large ones. Two people never share landmarks: each pass gives
  one person, and when two passes land on the same person (IoU above ``DUPLICATE_IOU``) only the one
  whose own track predicted that box is kept; the other landmarker is reset.
- **Discovery.** New people are looked for on the whole frame (image mode, ``num_poses=MAX_POSES``) every
  ``discover_s`` seconds (and on every frame while nobody is tracked). Its detector sees a 224x224 copy
  of the whole frame and misses people under about a quarter of the frame's longer side, so frames of
  ``TILE_MIN_SIDE`` pixels or more are also searched in overlapping tiles every ``tile_s`` seconds. A
  person already tracked whose box the discovery pass found keeps that result and skips their region
  pass on that frame (one landmark pass per person per frame).

With one person in view the cost per frame is one landmark pass, like MediaPipe's single-person ``Pose``,
plus one detector run per ``discover_s``. ``LandmarksInBoxes`` runs the same region passes inside the
user's ``--boxes``, one landmarker per user id.
"""

from __future__ import annotations

import contextlib
import os

import numpy as np

from tar_core.capture.detection import Landmarks, landmarks_box
from tar_core.capture.tracking import Detection, box_iou

__all__ = ["LandmarksInBoxes", "MultiPoseDetector"]

CROP_SCALE = 1.7  # crop side / the person's longer box side
MAX_CROP = 384  # crops larger than this are scaled down before the landmark pass (its input is 256)
DUPLICATE_IOU = 0.5
MAX_POSES = 6
TILE_MIN_SIDE = 640
MAX_REGION_PASSES = 12


def _landmarker(video: bool, num_poses: int, min_detection: float = 0.5):
    import mediapipe  # noqa: F401 (loads the native library before the tasks module)
    from mediapipe.tasks.python import BaseOptions, vision

    from tar_core.capture.pose_bundle import pose_bundle_path

    os.environ.setdefault("GLOG_minloglevel", "2")  # keep MediaPipe's C++ logging quiet
    mode = vision.RunningMode.VIDEO if video else vision.RunningMode.IMAGE
    opts = vision.PoseLandmarkerOptions(
        base_options=BaseOptions(model_asset_path=str(pose_bundle_path())), running_mode=mode, num_poses=num_poses,
        min_pose_detection_confidence=min_detection, min_pose_presence_confidence=0.5, min_tracking_confidence=0.5,
    )  # fmt: skip
    with open(os.devnull, "w") as devnull, contextlib.redirect_stderr(devnull):
        return vision.PoseLandmarker.create_from_options(opts)


def _mp_image(rgb: np.ndarray):
    import mediapipe as mp

    return mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(rgb))


def _to_landmarks(pose, world, x0: float, y0: float, sx: float, sy: float) -> Landmarks:
    """One Tasks-API pose (normalised to an image region at (x0, y0) of size (sx, sy) pixels) -> Landmarks."""
    a = np.array([(p.x, p.y, p.visibility if p.visibility is not None else 0.0) for p in pose], dtype=np.float64)
    xy = np.stack([x0 + a[:, 0] * sx, y0 + a[:, 1] * sy], axis=1)
    w = np.array([(p.x, p.y, p.z) for p in world], dtype=np.float64)
    return Landmarks(image_xy=xy, visibility=a[:, 2].clip(0.0, 1.0), world=w)


def _detections(result, x0, y0, sx, sy, width, height) -> list[Detection]:
    out = []
    for pose, world in zip(result.pose_landmarks, result.pose_world_landmarks, strict=True):
        lm = _to_landmarks(pose, world, x0, y0, sx, sy)
        box = landmarks_box(lm, width, height)
        if box is not None:
            out.append(Detection(box=box, score=float(np.mean(lm.visibility)), payload=lm))
    return out


def crop_square(image: np.ndarray, box: np.ndarray, scale: float = CROP_SCALE):
    """A square crop around ``box`` (zero padded outside the image), scaled down to at most ``MAX_CROP``.
    Returns (crop, x0, y0, side) or None when the square lies outside the image."""
    import cv2

    h, w = image.shape[:2]
    cx, cy = 0.5 * (box[0] + box[2]), 0.5 * (box[1] + box[3])
    side = max(32.0, scale * max(box[2] - box[0], box[3] - box[1]))
    x0, y0 = int(round(cx - side / 2)), int(round(cy - side / 2))
    s = int(round(side))
    ix0, iy0, ix1, iy1 = max(x0, 0), max(y0, 0), min(x0 + s, w), min(y0 + s, h)
    if ix1 - ix0 < 0.3 * s or iy1 - iy0 < 0.3 * s:
        return None
    crop = image[iy0:iy1, ix0:ix1]
    if (ix0, iy0, ix1, iy1) != (x0, y0, x0 + s, y0 + s):
        crop = cv2.copyMakeBorder(crop, iy0 - y0, y0 + s - iy1, ix0 - x0, x0 + s - ix1, cv2.BORDER_CONSTANT, value=0)
    if s > MAX_CROP:
        crop = cv2.resize(crop, (MAX_CROP, MAX_CROP), interpolation=cv2.INTER_LINEAR)
    return crop, x0, y0, s


class _RegionPasses:
    """Video-mode landmarkers (one person each) keyed by a person's id, reused from a pool once released."""

    def __init__(self):
        self._by_key: dict[int, list] = {}  # key -> [landmarker, last timestamp in ms]
        self._pool: list[list] = []
        self._blank = np.zeros((32, 32, 3), np.uint8)

    def _get(self, key: int) -> list:
        slot = self._by_key.get(key)
        if slot is None:
            slot = self._pool.pop() if self._pool else [_landmarker(video=True, num_poses=1), -1]
            self._by_key[key] = slot
        return slot

    def _call(self, slot, image, time_s: float):
        ts = max(slot[1] + 1, int(round(time_s * 1000.0)))
        slot[1] = ts
        return slot[0].detect_for_video(_mp_image(image), ts)

    def run(self, key: int, image: np.ndarray, box: np.ndarray, time_s: float) -> Detection | None:
        """The landmark pass for ``key`` on a crop around ``box``; None when it finds nobody there."""
        h, w = image.shape[:2]
        cut = crop_square(image, box)
        if cut is None:
            return None
        crop, x0, y0, side = cut
        res = self._call(self._get(key), crop, time_s)
        dets = _detections(res, x0, y0, side, side, w, h)
        return dets[0] if dets else None

    def reset(self, key: int, time_s: float) -> None:
        """Make ``key``'s landmarker forget whom it followed (a frame with nobody in it)."""
        slot = self._by_key.get(key)
        if slot is not None:
            self._call(slot, self._blank, time_s)

    def move(self, src: int, dst: int) -> None:
        """The landmarker of ``src`` now follows ``dst`` (the two swap if both have one)."""
        a, b = self._by_key.pop(src, None), self._by_key.pop(dst, None)
        if a is not None:
            self._by_key[dst] = a
        if b is not None:
            self._by_key[src] = b

    def release(self, key: int, time_s: float) -> None:
        self.reset(key, time_s)
        slot = self._by_key.pop(key, None)
        if slot is not None:
            self._pool.append(slot)

    def keys(self) -> list[int]:
        return list(self._by_key)

    def close(self) -> None:
        for slot in [*self._by_key.values(), *self._pool]:
            slot[0].close()
        self._by_key.clear()
        self._pool.clear()


def tiles(width: int, height: int) -> list[tuple[int, int, int, int]]:
    """Overlapping tiles (x0, y0, x1, y1), each about half the frame's longer side, covering the frame."""
    side = int(np.ceil(max(width, height) / 2))
    out = []
    xs = _starts(width, side)
    ys = _starts(height, side)
    for y0 in ys:
        for x0 in xs:
            out.append((x0, y0, min(x0 + side, width), min(y0 + side, height)))
    return out


def _cut_by_tile(box: np.ndarray, tile, width: int, height: int, margin: float = 3.0) -> bool:
    """Whether ``box`` touches an edge of ``tile`` inside the frame (the person runs on outside the tile)."""
    x0, y0, x1, y1 = tile
    return bool((x0 > 0 and box[0] <= x0 + margin) or (y0 > 0 and box[1] <= y0 + margin)
                or (x1 < width and box[2] >= x1 - margin) or (y1 < height and box[3] >= y1 - margin))


def _starts(length: int, side: int) -> list[int]:
    if side >= length:
        return [0]
    n = int(np.ceil((length - side) / (0.75 * side))) + 1  # a quarter of overlap at least
    return [int(round(v)) for v in np.linspace(0, length - side, n)]


class MultiPoseDetector:
    """Finds every person per frame, each with landmarks from a pass on their own region.

    ``detect(image, frame_index, time, tracker)`` returns the frame's detections (payload: ``Landmarks``);
    after ``tracker.update`` the caller hands the updates and ended ids to ``bind`` so each track keeps
    its landmarker.
    """

    def __init__(self, fps: float = 30.0, discover_s: float = 0.25):
        fps = fps or 30.0
        self.discover_every = max(1, int(round(discover_s * fps)))
        self._tile = 0
        self._full = _landmarker(video=False, num_poses=MAX_POSES)
        self._regions = _RegionPasses()
        self._origin: dict[int, int] = {}  # id(detection) -> the key of the region pass that made it
        self._n = 0
        self.stats = {"frames": 0, "region_passes": 0, "discovery_passes": 0, "tile_passes": 0}

    def _discover(self, image: np.ndarray, region=None) -> list[Detection]:
        h, w = image.shape[:2]
        x0, y0, x1, y1 = region if region is not None else (0, 0, w, h)
        res = self._full.detect(_mp_image(image[y0:y1, x0:x1]))
        return _detections(res, x0, y0, x1 - x0, y1 - y0, w, h)

    def detect(self, image: np.ndarray, frame_index: int, time_s: float, tracker) -> list[Detection]:
        h, w = image.shape[:2]
        self._origin.clear()
        open_ids = tracker.open_track_ids
        predicted = {tid: tracker.predict(tid, frame_index, time_s) for tid in open_ids}
        discover = not open_ids or self._n % self.discover_every == 0
        self._n += 1
        self.stats["frames"] += 1
        found: list[Detection] = []
        if discover:
            self.stats["discovery_passes"] += 1
            found = self._discover(image)
            if max(w, h) >= TILE_MIN_SIDE:  # one tile per discovery, in turn; all while nobody is tracked
                grid = tiles(w, h)
                regions = grid if not open_ids else [grid[self._tile % len(grid)]]
                self._tile += 1
                self.stats["tile_passes"] += len(regions)
                for region, d in [(r, d) for r in regions for d in self._discover(image, r)]:
                    if _cut_by_tile(d.box, region, w, h):
                        continue
                    if not found or box_iou(d.box, np.stack([f.box for f in found])).max() < 0.3:
                        found.append(d)
        # A tracked person found by discovery keeps that result; the others get their region pass.
        dets: list[Detection] = []
        taken = set()
        if found and open_ids:
            iou = box_iou(np.stack([predicted[t] for t in open_ids]), np.stack([d.box for d in found]))
            for r, tid in enumerate(open_ids):
                c = int(np.argmax(iou[r]))
                if iou[r, c] >= 0.5 and c not in taken and iou[:, c].argmax() == r:
                    taken.add(c)
                    self._origin[id(found[c])] = tid
                    dets.append(found[c])
        region_dets: dict[int, Detection] = {}
        todo = [t for t in open_ids if t not in self._origin.values()]
        todo.sort(key=lambda t: tracker.last_frame(t), reverse=True)  # recently seen people first
        for tid in todo[:MAX_REGION_PASSES]:
            box = predicted[tid]
            cx, cy = np.clip(0.5 * (box[0] + box[2]), 0, w - 1), np.clip(0.5 * (box[1] + box[3]), 0, h - 1)
            half = 0.5 * (box[2:] - box[:2])
            box = np.array([cx - half[0], cy - half[1], cx + half[0], cy + half[1]])
            self.stats["region_passes"] += 1
            d = self._regions.run(tid, image, box, time_s)
            if d is None:
                continue
            fits = {t: box_iou(predicted[t], d.box)[0, 0] for t in open_ids}
            if max(fits.values()) > fits[tid] + 0.05:  # it slid onto someone else (a crossing)
                self._regions.reset(tid, time_s)
                continue
            region_dets[tid] = d
        # Two region passes on one person: the track that predicted that box keeps it.
        keys = list(region_dets)
        drop = set()
        for i, a in enumerate(keys):
            for b in keys[i + 1:]:
                if a in drop or b in drop:
                    continue
                if box_iou(region_dets[a].box, region_dets[b].box)[0, 0] > DUPLICATE_IOU:
                    fit_a = box_iou(predicted[a], region_dets[a].box)[0, 0]
                    fit_b = box_iou(predicted[b], region_dets[b].box)[0, 0]
                    drop.add(b if fit_a >= fit_b else a)
        for tid, d in region_dets.items():
            others = [x.box for x in dets]
            if tid in drop or (others and box_iou(d.box, np.stack(others)).max() > DUPLICATE_IOU):
                self._regions.reset(tid, time_s)
                continue
            self._origin[id(d)] = tid
            dets.append(d)
        # New people: what discovery found that no tracked person accounts for.
        for c, d in enumerate(found):
            if c in taken:
                continue
            if dets and box_iou(d.box, np.stack([x.box for x in dets])).max() > 0.3:
                continue
            dets.append(d)
        return dets

    def bind(self, updates, ended, time_s: float) -> None:
        """After ``tracker.update``: each track keeps the landmarker that found it; ended tracks free theirs."""
        for u in updates:
            src = self._origin.get(id(u.detection))
            if src is not None and src != u.track_id:
                self._regions.move(src, u.track_id)
        for tid in ended:
            self._regions.release(tid, time_s)

    def close(self) -> None:
        self._full.close()
        self._regions.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class LandmarksInBoxes:
    """Landmarks inside the user's boxes (``--boxes`` with the keypoints engine): a region pass per user id
    (per box position in the frame's list where the file gives no ids)."""

    def __init__(self):
        self._regions = _RegionPasses()

    def __call__(self, image: np.ndarray, time_s: float, boxes: list[Detection]) -> list[Detection]:
        out = []
        for k, det in enumerate(boxes):
            key = det.track_hint if det.track_hint is not None else -1 - k
            found = self._regions.run(key, image, det.box, time_s)
            if found is None:
                continue
            out.append(Detection(box=det.box, score=found.score, track_hint=det.track_hint, payload=found.payload))
        return out

    def close(self) -> None:
        self._regions.close()
