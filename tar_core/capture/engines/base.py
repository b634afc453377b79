"""What every capture engine is: built from the capture options, then run once on the tracked people."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

__all__ = ["Engine", "EngineJob"]


@dataclass
class EngineJob:
    """Everything an engine needs after tracking: the people, where to write, and how to report."""

    clip: str
    fps: float | None  # frame rate of an image folder (None: the video's own)
    tracks: dict  # track id -> TrackData
    frame_times: dict[int, float]  # every frame's time, for bridging short gaps
    K: np.ndarray  # (3, 3) full-image intrinsics
    body: object  # BodyModel
    writer: object  # MotionWriter
    progress: object
    stop: object  # StopFlag
    focal_source: str = "given"  # "given", "fov", "35mm" (the user's) or "default" (an engine may estimate it)


class Engine(Protocol):
    """A capture engine. ``summary`` and ``provenance`` say what ran (checkpoint, notes); ``run`` writes
    one motion file per track through ``job.writer`` and checks ``job.stop`` inside its loops."""

    name: str

    def summary(self) -> dict: ...

    def provenance(self) -> dict: ...

    def run(self, job: EngineJob) -> None: ...
