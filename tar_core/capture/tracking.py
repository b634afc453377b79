"""Person tracks from per-frame detections, temporal box smoothing and the ``--boxes`` file.

Tracking
    ``Tracker.update`` is called once per processed frame, frame indices strictly increasing (frames may
    be skipped). Detections are associated with the open tracks by IoU, solved globally with the
    Hungarian method (``assignment.max_assignment``) and gated by ``iou_threshold``, tracks
    seen at the previous call first, then tracks waiting out a miss, on what is left; a detection that
    names its ``source`` (the open track whose own search found it: a landmark pass in a crop that follows
    that person) goes to that track before all that when it passes the track's gate. Every
    track carries a constant-velocity model of its box centre, so two people crossing paths are told
    apart by where each was heading. A track missed for up to ``max_missed`` frames keeps its id when it
    is re-found: the new box must overlap the box its motion model predicts, or its last known box, or lie
    mostly inside that last box grown by a quarter (a person coming back where they left the frame); or,
    within ``reid_s`` seconds, lie near where the motion model puts the person with about their size, the
    only such box for the only such lost track (a flip or a fall, where the box changes shape).
    A track that has gone unseen for more than ``max_missed`` frames ends (``update`` reports it at the
    first frame where that is true) and is never revived; a person found after that gets a new id.

    Two people in contact (a track's box, or the box its motion model predicts, overlapping another open
    track's predicted box by more than ``CONTACT_IOU``) give boxes that may mix both bodies or belong to
    the other one: for up to ``max_frozen`` frames of a contact such boxes still extend the track but no
    longer feed its motion model, so each track keeps the velocity it had before the contact and the two are
    told apart when they separate. A contact longer than that (people walking side by side) feeds the model
    again, so a track never drifts away from a person who changed pace while close to someone.

    New ids are 0, 1, 2, ... in order of appearance (within one frame: higher score first, then the
    order of the list). Detections with a ``track_hint`` (ids from the user's boxes file) bypass the
    association: the hint *is* the id. Such user tracks never end by being missed (a user's person 3
    stays person 3 however long they are gone); they end at ``finish``. Automatic ids skip every id a
    hint has used (a hint naming an open automatic track's id takes that track over); detections without
    a hint are only associated with automatic tracks.

    ``max_tracks > 0`` caps the number of open automatic tracks (a track waiting out a short miss
    counts): new tracks are started highest score first while there is room.

Smoothing
    ``smooth_boxes`` is a Gaussian-weighted local *linear* regression over time (kernel sigma in
    seconds) on the box centre and on the log of its width and height. Being centred it does not lag;
    being linear it reproduces a static box exactly and a constant-velocity box exactly (also at the
    ends of the clip and across gaps), and it works on any timestamps, evenly spaced or not.
"""

from __future__ import annotations

import json
import math
import numbers
import os
import re
import statistics
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from tar_core.capture.assignment import max_assignment

__all__ = [
    "Detection",
    "TrackUpdate",
    "Tracker",
    "box_iou",
    "box_iou_one",
    "load_boxes_file",
    "parse_boxes",
    "smooth_boxes",
]


# ------------------------------------------------------------------------------------------ data types
@dataclass
class Detection:
    """One person found in one frame. ``box`` is (x0, y0, x1, y1) in image pixels."""

    box: np.ndarray
    score: float = 1.0
    track_hint: int | None = None  # an id supplied by the user's boxes file, if any
    source: int | None = None  # the open track whose own search found this person, if any (a soft hint)
    payload: object = None  # carried through untouched (e.g. landmarks)

    def __post_init__(self):
        box = np.asarray(self.box, dtype=np.float64).reshape(-1)
        if box.shape != (4,):
            raise ValueError(f"a detection box needs 4 numbers (x0, y0, x1, y1), got shape {np.shape(self.box)}")
        if not np.all(np.isfinite(box)):
            raise ValueError(f"a detection box must be finite, got {box.tolist()}")
        self.box = box
        self.score = float(self.score)


@dataclass
class TrackUpdate:
    """A track's detection in one frame; ``box`` is the raw (unsmoothed) detection box."""

    track_id: int
    frame_index: int
    time: float
    box: np.ndarray
    detection: Detection


@dataclass
class _Track:
    track_id: int
    box: np.ndarray  # last matched (raw) box
    frame: int  # frame index of the last match
    time: float  # time of the last match
    hinted: bool = False
    contact_since: int | None = None  # frame at which the current contact with another track began
    # Recent observations (frame, time, centre x, centre y), newest last, for the motion model.
    history: deque = field(default_factory=lambda: deque(maxlen=Tracker.HISTORY))
    sizes: deque = field(default_factory=lambda: deque(maxlen=Tracker.HISTORY))  # recent box diagonals
    version: int = 0  # bumped at every change of box or history: the key of the cached prediction
    cached: tuple = ()  # (version, frame index, time, the clock used, predicted box)


# ------------------------------------------------------------------------------------------ geometry
def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of boxes a (N, 4) against b (M, 4), xyxy; (N, M). Empty or degenerate boxes give 0."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    ix0 = np.maximum(a[:, None, 0], b[None, :, 0])
    iy0 = np.maximum(a[:, None, 1], b[None, :, 1])
    ix1 = np.minimum(a[:, None, 2], b[None, :, 2])
    iy1 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(ix1 - ix0, 0.0, None) * np.clip(iy1 - iy0, 0.0, None)
    area_a = np.clip(a[:, 2] - a[:, 0], 0.0, None) * np.clip(a[:, 3] - a[:, 1], 0.0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0.0, None) * np.clip(b[:, 3] - b[:, 1], 0.0, None)
    union = area_a[:, None] + area_b[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(union > 0.0, inter / union, 0.0)
    return iou


def box_iou_one(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two single boxes, xyxy: ``box_iou(a, b)[0, 0]`` in plain floats (a fraction of its cost)."""
    ax0, ay0, ax1, ay1 = (float(v) for v in a)
    bx0, by0, bx1, by1 = (float(v) for v in b)
    inter = max(min(ax1, bx1) - max(ax0, bx0), 0.0) * max(min(ay1, by1) - max(ay0, by0), 0.0)
    union = max(ax1 - ax0, 0.0) * max(ay1 - ay0, 0.0) + max(bx1 - bx0, 0.0) * max(by1 - by0, 0.0) - inter
    return inter / union if union > 0.0 else 0.0


def _inside(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Share of each box of a (N, 4) that lies inside each box of b (M, 4); (N, M)."""
    ix0 = np.maximum(a[:, None, 0], b[None, :, 0])
    iy0 = np.maximum(a[:, None, 1], b[None, :, 1])
    ix1 = np.minimum(a[:, None, 2], b[None, :, 2])
    iy1 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(ix1 - ix0, 0.0, None) * np.clip(iy1 - iy0, 0.0, None)
    area = np.clip(a[:, 2] - a[:, 0], 0.0, None) * np.clip(a[:, 3] - a[:, 1], 0.0, None)
    return inter / np.maximum(area[:, None], 1e-9)


def _centre(box: np.ndarray) -> np.ndarray:
    return 0.5 * (box[:2] + box[2:])


# ------------------------------------------------------------------------------------------ tracker
class Tracker:
    """IoU + constant-velocity tracker; see the module docstring for the rules."""

    #: observations the constant-velocity model is fitted to, and the weight lost per step back in them
    HISTORY = 10
    HISTORY_DECAY = 0.8
    #: predicted boxes of two tracks overlapping more than this are in contact (see the module docstring)
    CONTACT_IOU = 0.2
    #: re-identification of a lost track by position and size (see ``_near``)
    REID_REACH = 1.0
    REID_SIZE = 2.0

    def __init__(self, max_missed: int = 15, iou_threshold: float = 0.3, max_tracks: int = 0,
                 max_frozen: int = 15, reid_s: float = 1.0):
        if max_missed < 0:
            raise ValueError(f"max_missed must be >= 0, got {max_missed}")
        if not 0.0 < iou_threshold <= 1.0:
            raise ValueError(f"iou_threshold must be in (0, 1], got {iou_threshold}")
        if max_tracks < 0:
            raise ValueError(f"max_tracks must be >= 0 (0: no limit), got {max_tracks}")
        self.max_missed = int(max_missed)
        self.iou_threshold = float(iou_threshold)
        self.max_tracks = int(max_tracks)
        if max_frozen < 0:
            raise ValueError(f"max_frozen must be >= 0, got {max_frozen}")
        self.max_frozen = int(max_frozen)
        self.reid_s = float(reid_s)
        self._tracks: dict[int, _Track] = {}
        self._used_ids: set[int] = set()
        self._next_id = 0
        self._last_frame: int | None = None
        self._last_time: float | None = None
        # The motion model runs on the given times; if they ever fail to increase it falls back to
        # frame indices for good.
        self._use_time = True

    # -------------------------------------------------------------------------------- public
    @property
    def open_track_ids(self) -> list[int]:
        """Ids of the tracks currently open (seen recently enough to be continued)."""
        return sorted(self._tracks)

    def update(
        self, frame_index: int, time: float, detections: Sequence[Detection]
    ) -> tuple[list[TrackUpdate], list[int]]:
        """Associate one frame's detections; returns (updates sorted by id, ids of tracks ended here)."""
        frame_index = int(frame_index)
        time = float(time)
        if self._last_frame is not None and frame_index <= self._last_frame:
            raise ValueError(f"frame indices must increase: got {frame_index} after {self._last_frame}")
        if self._last_time is not None and self._use_time and not time > self._last_time:
            self._use_time = False
        previous = self._last_frame
        self._last_frame, self._last_time = frame_index, time

        hinted = [d for d in detections if d.track_hint is not None]
        plain = [d for d in detections if d.track_hint is None]
        hint_ids = [int(d.track_hint) for d in hinted]
        if len(set(hint_ids)) != len(hint_ids):
            raise ValueError(f"frame {frame_index}: two detections carry the same track id {hint_ids}")

        ended: list[int] = []
        # Automatic tracks unseen for too long cannot be continued any more (frames may have been skipped).
        for tid, track in list(self._tracks.items()):
            if not track.hinted and frame_index - track.frame - 1 > self.max_missed:
                ended.append(tid)
                del self._tracks[tid]

        updates: list[TrackUpdate] = []
        for det, tid in zip(hinted, hint_ids, strict=True):
            track = self._tracks.get(tid)
            if track is not None and not track.hinted:
                # A user id takes over an automatic track that happens to hold it.
                track.hinted = True
            updates.append(self._assign(tid, frame_index, time, det))

        # Associate the remaining detections with the automatic tracks: first those seen at the previous
        # call, then those waiting out a miss (so a person hidden behind another cannot take the visible
        # one's box while the two overlap).
        auto = [t for t in self._tracks.values() if not t.hinted]
        predicted = {t.track_id: self._predict(t, frame_index, time) for t in auto}
        matches = self._by_source(plain, auto, frame_index, time, previous)
        auto = [t for t in auto if t.track_id not in matches.values()]
        recent = [t for t in auto if t.frame == previous]
        waiting = [t for t in auto if t.frame != previous]
        for tier, missed in ((recent, False), (waiting, True)):
            free = [c for c in range(len(plain)) if c not in matches]
            if not tier or not free:
                continue
            scores = self._scores(tier, [plain[c] for c in free], frame_index, time, missed)
            gated = np.where(scores >= self.iou_threshold, scores, 0.0)
            rows, cols = max_assignment(gated)
            for r, c in zip(rows, cols, strict=True):
                if scores[r, c] >= self.iou_threshold:
                    matches[free[c]] = tier[r].track_id
        for c, tid in matches.items():
            frozen = self._in_contact(tid, plain[c].box, predicted, frame_index)
            updates.append(self._assign(tid, frame_index, time, plain[c], moved=not frozen))

        # Unmatched detections start tracks, highest score first, while there is room.
        fresh = [c for c in range(len(plain)) if c not in matches]
        fresh.sort(key=lambda c: -plain[c].score)  # stable: equal scores keep the list order
        n_auto = sum(1 for t in self._tracks.values() if not t.hinted)
        for c in fresh:
            if self.max_tracks and n_auto >= self.max_tracks:
                break
            updates.append(self._assign(self._new_id(), frame_index, time, plain[c]))
            n_auto += 1

        # Automatic tracks unmatched for more than max_missed frames end now.
        for tid, track in list(self._tracks.items()):
            if not track.hinted and frame_index - track.frame > self.max_missed:
                ended.append(tid)
                del self._tracks[tid]

        updates.sort(key=lambda u: u.track_id)
        return updates, sorted(ended)

    def finish(self) -> list[int]:
        """The clip ended: close every open track and return their ids (sorted)."""
        ids = sorted(self._tracks)
        self._tracks.clear()
        return ids

    # -------------------------------------------------------------------------------- internals
    def _new_id(self) -> int:
        while self._next_id in self._used_ids:
            self._next_id += 1
        tid = self._next_id
        self._next_id += 1
        return tid

    def last_frame(self, track_id: int) -> int:
        """Frame index at which an open track was last matched."""
        return self._tracks[track_id].frame

    def typical_size(self, track_id: int) -> float:
        """The median diagonal (pixels) of an open track's recent boxes."""
        return statistics.median(self._tracks[track_id].sizes)  # of floats: np.median's value, at a tenth of its cost

    def predict(self, track_id: int, frame_index: int, time: float) -> np.ndarray:
        """Box of an open track predicted by its constant-velocity model at a later frame."""
        return self._predict(self._tracks[track_id], frame_index, time)

    def _predict(self, track: _Track, frame_index: int, time: float) -> np.ndarray:
        """The last box, its centre moved along a line fitted to the track's recent centres.

        The line is a weighted least-squares fit (weights ``HISTORY_DECAY ** age``) over the last
        ``HISTORY`` observations against the clock (times, or frame indices where times do not increase),
        so one noisy detection hardly bends it. Cached per track until its box or history changes (a frame's
        prediction is asked for by the detector, by the association and by the contact test).
        """
        key = (track.version, frame_index, time, self._use_time)
        if track.cached[:4] != key:
            track.cached = (*key, self._fit(track, frame_index, time))
        return track.cached[4].copy()

    def _fit(self, track: _Track, frame_index: int, time: float) -> np.ndarray:
        """``_predict`` without the cache."""
        hist = np.array(track.history, dtype=np.float64)  # (n, 4)
        clock = hist[:, 1] if self._use_time else hist[:, 0]
        now = time if self._use_time else float(frame_index)
        centres = hist[:, 2:]
        if len(hist) < 2:
            centre = centres[-1]
        else:
            w = self.HISTORY_DECAY ** np.arange(len(hist) - 1, -1, -1, dtype=np.float64)
            t = clock - clock[-1]
            t_mean = np.sum(w * t) / w.sum()
            c_mean = (w[:, None] * centres).sum(axis=0) / w.sum()
            spread = np.sum(w * (t - t_mean) ** 2)
            slope = (w[:, None] * (t - t_mean)[:, None] * (centres - c_mean)).sum(axis=0) / max(spread, 1e-12)
            centre = c_mean + slope * (now - clock[-1] - t_mean)
        shift = centre - _centre(track.box)
        return track.box + np.concatenate([shift, shift])

    def _scores(
        self, tracks: list[_Track], dets: list[Detection], frame_index: int, time: float, missed: bool
    ) -> np.ndarray:
        """IoU (tracks, detections) against the predicted boxes; for missed tracks also the last boxes."""
        boxes = np.stack([d.box for d in dets])
        predicted = np.stack([self._predict(t, frame_index, time) for t in tracks])
        scores = box_iou(predicted, boxes)
        if missed:  # a track re-found after a miss may also match where it was last seen (the person stopped)
            last = np.stack([t.box for t in tracks])
            scores = np.maximum(scores, box_iou(last, boxes))
            # ... or come back near there (a short exit through the frame's edge, where the last box was cut):
            # a new box lying mostly inside the last box grown by a quarter of its size on every side just
            # passes the gate.
            grown = last + 0.25 * np.concatenate([last[:, :2] - last[:, 2:], last[:, 2:] - last[:, :2]], axis=1)
            inside = _inside(boxes, grown)  # (dets, tracks)
            scores = np.maximum(scores, np.where(inside.T >= 0.6, self.iou_threshold, 0.0))
            scores = np.maximum(scores, np.where(self._near(tracks, predicted, boxes, frame_index, time),
                                                 self.iou_threshold, 0.0))
        return scores

    def _near(self, tracks: list[_Track], predicted: np.ndarray, boxes: np.ndarray, frame_index: int,
              time: float) -> np.ndarray:
        """(tracks, detections): re-identification of a track lost for at most ``reid_s`` seconds (30 frames a
        second on the frame clock) by position and size alone, where a box no longer overlaps (a flip, a fall:
        the body's box changes shape while the landmarks are lost). The box's centre lies within the track's
        size x (``REID_REACH`` + the seconds gone) of where its motion model puts it, its diagonal within a
        factor ``REID_SIZE`` of the track's recent median; and the pair is unambiguous: no other lost track
        near that box, no other box near that track."""
        gone = np.array([(time - t.time) if self._use_time else (frame_index - t.frame) / 30.0 for t in tracks])
        size = np.array([np.median(t.sizes) for t in tracks])
        diag = np.hypot(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
        dist = np.linalg.norm(0.5 * (predicted[:, None, :2] + predicted[:, None, 2:])
                              - 0.5 * (boxes[None, :, :2] + boxes[None, :, 2:]), axis=-1)
        ratio = diag[None, :] / size[:, None]
        near = ((dist <= size[:, None] * (self.REID_REACH + gone[:, None])) & (gone[:, None] <= self.reid_s)
                & (ratio <= self.REID_SIZE) & (ratio >= 1 / self.REID_SIZE))
        return near & (near.sum(axis=0, keepdims=True) == 1) & (near.sum(axis=1, keepdims=True) == 1)

    def _by_source(self, dets: list[Detection], auto: list[_Track], frame_index: int, time: float,
                   previous: int | None) -> dict[int, int]:
        """Detections that name the track whose own search found them (``source``) go to that track when
        they pass its gate: {detection position: track id}."""
        out: dict[int, int] = {}
        for c, det in enumerate(dets):
            track = next((t for t in auto if t.track_id == det.source), None)
            if track is None or det.source in out.values():
                continue
            if track.frame == previous:  # seen last frame: the IoU with its prediction (``_scores``, in floats)
                score = box_iou_one(self._predict(track, frame_index, time), det.box)
            else:
                score = self._scores([track], [det], frame_index, time, True)[0, 0]
            if score >= self.iou_threshold:
                out[c] = track.track_id
        return out

    def _in_contact(self, tid: int, box: np.ndarray, predicted: dict[int, np.ndarray], frame_index: int) -> bool:
        """Whether track ``tid``'s new ``box`` is one its motion model should not learn from: it, or the
        track's own predicted box, overlaps another open track's predicted box by more than ``CONTACT_IOU``,
        for at most ``max_frozen`` frames since the contact began (see the module docstring)."""
        track = self._tracks[tid]
        if len(track.history) < 3:  # no velocity to keep yet
            return False
        others = [b for k, b in predicted.items() if k != tid]
        overlap = box_iou(np.stack([box, predicted[tid]]), np.stack(others)).max() if others else 0.0
        touching = float(overlap) > self.CONTACT_IOU
        if not touching:
            track.contact_since = None
            return False
        if track.contact_since is None:
            track.contact_since = frame_index
        return frame_index - track.contact_since < self.max_frozen

    def _assign(self, tid: int, frame_index: int, time: float, det: Detection, moved: bool = True) -> TrackUpdate:
        """Give ``det`` to track ``tid`` (started if new); ``moved=False`` keeps it out of the motion model."""
        track = self._tracks.get(tid)
        if track is None:
            track = self._tracks[tid] = _Track(tid, det.box.copy(), frame_index, time, det.track_hint is not None)
            self._used_ids.add(tid)
        else:
            track.box = det.box.copy()
            track.frame, track.time = frame_index, time
            track.version += 1
        if moved or not track.history:
            track.history.append((float(frame_index), time, *_centre(det.box)))
        track.sizes.append(float(np.hypot(*(det.box[2:] - det.box[:2]))))
        return TrackUpdate(tid, frame_index, time, det.box.copy(), det)


# ------------------------------------------------------------------------------------------ smoothing
def _local_linear(values: np.ndarray, times: np.ndarray, sigma: float, block: int = 1024) -> np.ndarray:
    """Gaussian-weighted local linear fit of values (N, C) at each of the sorted times (N,).

    Neighbours within 4 sigma count; rows are done in blocks so memory stays bounded however dense the
    timestamps are.
    """
    n = len(times)
    reach = 4.0 * sigma
    out = np.empty_like(values)
    for start in range(0, n, block):
        rows = np.arange(start, min(start + block, n))
        lo = np.searchsorted(times, times[rows] - reach, side="left")
        hi = np.searchsorted(times, times[rows] + reach, side="right")
        width = int((hi - lo).max())
        idx = lo[:, None] + np.arange(width)[None, :]  # (B, K) neighbour indices
        valid = idx < hi[:, None]
        idx = np.minimum(idx, n - 1)
        dt = np.where(valid, times[idx] - times[rows, None], 0.0)
        w = np.where(valid, np.exp(-0.5 * (dt / sigma) ** 2), 0.0)
        sw = w.sum(axis=1)  # >= 1: a sample is its own neighbour
        mean_t = (w * dt).sum(axis=1) / sw
        dc = np.where(valid, dt - mean_t[:, None], 0.0)
        var_t = (w * dc**2).sum(axis=1)
        # A tiny ridge keeps the slope finite where a sample has no neighbours in time (it then falls
        # back to the weighted mean); for evenly spaced frames its bias is a fraction of a thousandth.
        ridge = 1e-6 * sw * sigma**2
        for c in range(values.shape[1]):
            v = values[idx, c]
            mean_v = (w * v).sum(axis=1) / sw
            slope = (w * dc * (v - mean_v[:, None])).sum(axis=1) / (var_t + ridge)
            out[rows, c] = mean_v - slope * mean_t  # the line evaluated at dt = 0
    return out


def smooth_boxes(
    boxes: np.ndarray, times: np.ndarray, sigma: float = 0.1, size_sigma: float | None = None
) -> np.ndarray:
    """Smooth one track's boxes (N, 4) xyxy over time (N,) seconds; returns (N, 4) float64.

    A centred Gaussian-weighted local linear regression (kernel ``sigma`` seconds on the centre,
    ``size_sigma`` (default: ``sigma``) on log width and log height). Symmetric, so no lag; exact for
    static boxes (returned bit for bit) and for boxes moving at constant velocity; timestamps may be
    unevenly spaced, have gaps, or repeat. Times need not be sorted.
    """
    boxes = np.asarray(boxes, dtype=np.float64)
    times = np.asarray(times, dtype=np.float64)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"boxes must be (N, 4), got {boxes.shape}")
    if times.shape != (len(boxes),):
        raise ValueError(f"times must be (N,) = ({len(boxes)},), got {times.shape}")
    if not (np.all(np.isfinite(boxes)) and np.all(np.isfinite(times))):
        raise ValueError("boxes and times must be finite")
    if np.any(boxes[:, 2:] <= boxes[:, :2]):
        raise ValueError("boxes must have positive width and height")
    if sigma <= 0 or (size_sigma is not None and size_sigma <= 0):
        raise ValueError("sigma must be > 0")
    size_sigma = sigma if size_sigma is None else size_sigma
    if len(boxes) < 2:
        return boxes.copy()

    order = np.argsort(times, kind="stable")
    b, t = boxes[order], times[order]
    centre = 0.5 * (b[:, :2] + b[:, 2:])
    log_size = np.log(b[:, 2:] - b[:, :2])
    # Work on offsets from a reference value, so a constant signal stays exactly constant.
    c_ref, s_ref = centre[0].copy(), log_size[0].copy()
    centre_s = c_ref + _local_linear(centre - c_ref, t, sigma)
    size_s = np.exp(s_ref) * np.exp(_local_linear(log_size - s_ref, t, size_sigma))
    size_raw = np.exp(s_ref) * np.exp(log_size - s_ref)

    def to_xyxy(c, s):
        return np.concatenate([c - 0.5 * s, c + 0.5 * s], axis=1)

    # The raw boxes plus the change the smoothing makes: unchanged parameters give back the input exactly.
    smoothed = b + (to_xyxy(centre_s, size_s) - to_xyxy(centre, size_raw))
    out = np.empty_like(smoothed)
    out[order] = smoothed
    return out


# ------------------------------------------------------------------------------------------ boxes file
_ENTRY_KEYS = {"box", "id", "score"}
MAX_BOXES_FILE_BYTES = 256 * 1024 * 1024  # a boxes file is read whole; refuse anything bigger unread
MAX_ID = 2**31 - 1  # track ids and frame indices (they go into int32-safe places: motion files, Blender)
MAX_COORD = 1e6  # pixels; a box coordinate beyond this is not a box in any image


def _is_number(x) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, bool)


def _frame_key(key, where: str) -> int:
    if isinstance(key, bool):
        raise ValueError(f"{where}: frame key {key!r} is not a frame index")
    if isinstance(key, numbers.Integral):
        frame = int(key)
    elif isinstance(key, str) and re.fullmatch(r"\s*[+-]?[0-9]+\s*", key):
        frame = int(key)
    else:
        raise ValueError(f"{where}: frame key {key!r} is not an integer frame index")
    if frame < 0:
        raise ValueError(f"{where}: frame index {frame} is negative")
    if frame > MAX_ID:
        raise ValueError(f"{where}: frame index {key!r} is too large (at most {MAX_ID})")
    return frame


def _parse_box(values, where: str, image_size) -> np.ndarray:
    if not isinstance(values, (list, tuple)) or len(values) != 4 or not all(_is_number(v) for v in values):
        raise ValueError(f"{where}: a box must be 4 numbers [x0, y0, x1, y1], got {values!r}")
    box = np.array([float(v) for v in values], dtype=np.float64)
    if not np.all(np.isfinite(box)):
        raise ValueError(f"{where}: box {values!r} is not finite")
    if np.any(box > MAX_COORD):
        raise ValueError(f"{where}: box {values!r} has a coordinate beyond {MAX_COORD:g} px")
    if np.any(box < 0):
        raise ValueError(f"{where}: box {values!r} has a negative coordinate (clip boxes to the image)")
    if box[2] <= box[0] or box[3] <= box[1]:
        raise ValueError(f"{where}: box {values!r} is degenerate or inverted (need x1 > x0 and y1 > y0)")
    if image_size is not None:
        width, height = image_size
        if box[0] >= width or box[1] >= height:
            raise ValueError(f"{where}: box {values!r} lies outside the {width}x{height} image")
        if box[2] > 4 * width or box[3] > 4 * height:
            raise ValueError(f"{where}: box {values!r} reaches far beyond the {width}x{height} image")
    return box


def _parse_id(value, where: str) -> int:
    if not _is_number(value) or not math.isfinite(value) or not float(value).is_integer() or value < 0:
        raise ValueError(f"{where}: track id must be a non-negative integer, got {value!r}")
    if value > MAX_ID:
        raise ValueError(f"{where}: track id {value!r} is too large (at most {MAX_ID})")
    return int(value)


def _parse_entry(entry, where: str, image_size) -> Detection:
    if isinstance(entry, Mapping):
        unknown = set(entry) - _ENTRY_KEYS
        if unknown:
            raise ValueError(f"{where}: unknown key(s) {sorted(map(str, unknown))}; allowed: box, id, score")
        if "box" not in entry:
            raise ValueError(f"{where}: an object entry needs a 'box'")
        box = _parse_box(entry["box"], where, image_size)
        hint = None if entry.get("id") is None else _parse_id(entry["id"], where)
        score = entry.get("score", 1.0)
        if not _is_number(score) or not math.isfinite(score) or score < 0:
            raise ValueError(f"{where}: score must be a finite number >= 0, got {score!r}")
        return Detection(box, float(score), hint)
    if isinstance(entry, (list, tuple)):
        if len(entry) == 4:
            return Detection(_parse_box(entry, where, image_size))
        if len(entry) == 5:
            box = _parse_box(list(entry[:4]), where, image_size)
            return Detection(box, 1.0, _parse_id(entry[4], where))
    raise ValueError(
        f"{where}: an entry must be [x0, y0, x1, y1], [x0, y0, x1, y1, id] or "
        f'{{"box": [...], "id": n, "score": s}}, got {entry!r}'
    )


def parse_boxes(data, source: str = "<boxes>", image_size: tuple[int, int] | None = None) -> dict[int, list[Detection]]:
    """Validate an already-loaded boxes mapping (frame -> entries); see ``load_boxes_file``."""
    if not isinstance(data, Mapping):
        raise ValueError(
            f"{source}: expected an object mapping frame index -> list of boxes, got {type(data).__name__}"
        )
    result: dict[int, list[Detection]] = {}
    for key, entries in data.items():
        frame = _frame_key(key, source)
        where = f"{source}, frame {key!r}"
        if frame in result:
            raise ValueError(f"{where}: frame {frame} is given twice")
        if not isinstance(entries, (list, tuple)):
            raise ValueError(f"{where}: expected a list of boxes, got {type(entries).__name__}")
        dets = [_parse_entry(e, f"{where}, entry {i}", image_size) for i, e in enumerate(entries)]
        ids = [d.track_hint for d in dets if d.track_hint is not None]
        if len(set(ids)) != len(ids):
            raise ValueError(f"{where}: a track id appears twice in one frame ({ids})")
        result[frame] = dets
    return dict(sorted(result.items()))


def load_boxes_file(path, image_size: tuple[int, int] | None = None) -> dict[int, list[Detection]]:
    """Read a ``--boxes`` JSON file: frame index -> list of person boxes in image pixels.

    Each entry is ``[x0, y0, x1, y1]``, ``[x0, y0, x1, y1, id]`` or ``{"box": [...], "id": n, "score": s}``
    (``id`` and ``score`` optional). Frame keys are integer strings (``"0"``, ``"12"``). Coordinates
    must be non-negative with x1 > x0 and y1 > y0; ids are non-negative integers, unique per frame.
    ``image_size=(W, H)`` also refuses boxes that start outside the image. Raises ``ValueError`` naming
    the file, frame and entry on malformed content. Returns frames in increasing order.
    """
    source = os.fspath(path)

    def no_duplicates(pairs):
        seen = {}
        for k, v in pairs:
            if k in seen:
                raise ValueError(f"{source}: key {k!r} appears twice")
            seen[k] = v
        return seen

    with open(path, "rb") as f:
        if not os.path.isfile(source):
            raise ValueError(f"{source}: not a regular file")
        size = os.fstat(f.fileno()).st_size
        if size > MAX_BOXES_FILE_BYTES:
            raise ValueError(f"{source}: {size / 1e6:.0f} MB, more than a boxes file may be "
                             f"({MAX_BOXES_FILE_BYTES / 1e6:.0f} MB)")
        raw = f.read(MAX_BOXES_FILE_BYTES + 1)
    try:
        data = json.loads(raw.decode("utf-8"), object_pairs_hook=no_duplicates)
    except UnicodeDecodeError as e:
        raise ValueError(f"{source}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{source}: not valid JSON ({e})") from None
    except RecursionError:
        raise ValueError(f"{source}: JSON nested too deeply") from None
    return parse_boxes(data, source, image_size)
