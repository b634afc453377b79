"""Pass 1 of a capture: detect and track people over the clip, keeping boxes and landmarks per track."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from tar_core.capture.tracking import Tracker, load_boxes_file
from tar_core.errors import UsageError

__all__ = ["TrackData", "TrackingPass"]


@dataclass
class TrackData:
    """One person's rows: the frames they were seen in, their boxes, scores and landmarks."""

    track_id: int
    frame_ids: list = field(default_factory=list)
    times: list = field(default_factory=list)
    boxes: list = field(default_factory=list)
    scores: list = field(default_factory=list)
    landmarks: list = field(default_factory=list)


class TrackingPass:
    """Detect (every person, ``multipose``; or the user's boxes) and track them; ``frame_times`` keeps every
    frame's time. ``landmarks_in_boxes``: with user boxes, also run a landmark pass inside each box (the
    keypoints engine needs landmarks). ``first_image`` keeps the first frame for the people preview."""

    def __init__(self, progress, stop, boxes_file: str | None = None, max_people: int = 0,
                 landmarks_in_boxes: bool = False):
        self.progress, self.stop = progress, stop
        self.boxes_file, self.max_people = boxes_file, max_people
        self.landmarks_in_boxes = landmarks_in_boxes
        self.frame_times: dict[int, float] = {}  # every frame's time, for bridging short gaps
        self.detect_s = 0.0  # seconds spent in the person detector
        self.first_image: np.ndarray | None = None
        self.detector_stats: dict = {}

    def _user_boxes(self, image_size: tuple[int, int]) -> dict | None:
        if not self.boxes_file:
            return None
        try:
            return load_boxes_file(self.boxes_file, image_size=image_size)
        except OSError as exc:
            raise UsageError(f"boxes file {self.boxes_file}: {exc.strerror or exc}") from None
        except ValueError as exc:  # load_boxes_file names the file, frame and entry
            raise UsageError(f"boxes file {exc}") from None

    def run(self, reader) -> tuple[dict[int, TrackData], int]:
        user_boxes = self._user_boxes((reader.info.width, reader.info.height))
        detector = in_boxes = None
        if user_boxes is None:
            from tar_core.capture.multipose import MultiPoseDetector

            detector = MultiPoseDetector(fps=reader.info.fps or 30.0)
        elif self.landmarks_in_boxes:
            from tar_core.capture.multipose import LandmarksInBoxes

            in_boxes = LandmarksInBoxes()
        # A person may leave the frame for up to 1.5 s and keep their id; two people in contact keep their
        # velocities for up to 0.5 s (a crossing), then their motion is learnt again.
        fps = reader.info.fps or 30.0
        max_missed = max(3, int(round(1.5 * fps)))
        tracker = Tracker(max_missed=max_missed, max_tracks=self.max_people, max_frozen=max(1, int(round(0.5 * fps))))
        tracks: dict[int, TrackData] = {}
        n = 0
        total = reader.info.frame_count
        try:
            for frame in reader:
                self.stop.check()
                self.frame_times[frame.index] = frame.time
                if self.first_image is None:
                    self.first_image = frame.image.copy()
                t0 = time.perf_counter()
                if user_boxes is not None:
                    dets = user_boxes.get(frame.index, [])
                    if in_boxes is not None and dets:
                        dets = in_boxes(frame.image, frame.time, dets)
                else:
                    dets = detector.detect(frame.image, frame.index, frame.time, tracker)
                self.detect_s += time.perf_counter() - t0
                updates, ended = tracker.update(frame.index, frame.time, dets)
                if detector is not None:
                    detector.bind(updates, ended, frame.time)
                for u in updates:
                    t = tracks.setdefault(u.track_id, TrackData(u.track_id))
                    t.frame_ids.append(frame.index)
                    t.times.append(frame.time)
                    t.boxes.append(np.asarray(u.box, dtype=np.float64))
                    t.scores.append(float(u.detection.score))
                    t.landmarks.append(u.detection.payload)
                n += 1
                self.progress.progress("tracking", n, total)
        finally:
            if detector is not None:
                self.detector_stats = dict(detector.stats)
                detector.close()
            if in_boxes is not None:
                in_boxes.close()
        return tracks, n
