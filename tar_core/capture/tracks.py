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
    """Detect (MediaPipe, or the user's boxes) and track every person; ``frame_times`` keeps every frame's time."""

    def __init__(self, progress, stop, boxes_file: str | None = None, max_people: int = 0):
        self.progress, self.stop = progress, stop
        self.boxes_file, self.max_people = boxes_file, max_people
        self.frame_times: dict[int, float] = {}  # every frame's time, for bridging short gaps
        self.detect_s = 0.0  # seconds spent in the person detector

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
        detector = None
        if user_boxes is None:
            from tar_core.capture.detection import PoseDetector

            detector = PoseDetector()
        # A person may leave the frame for up to 1.5 s and keep their id.
        max_missed = max(3, int(round(1.5 * (reader.info.fps or 30.0))))
        tracker = Tracker(max_missed=max_missed, max_tracks=self.max_people)
        tracks: dict[int, TrackData] = {}
        n = 0
        total = reader.info.frame_count
        try:
            for frame in reader:
                self.stop.check()
                self.frame_times[frame.index] = frame.time
                t0 = time.perf_counter()
                dets = user_boxes.get(frame.index, []) if user_boxes is not None else detector(frame.image)
                self.detect_s += time.perf_counter() - t0
                updates, _ = tracker.update(frame.index, frame.time, dets)
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
                detector.close()
        return tracks, n
