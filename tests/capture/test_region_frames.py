"""The frame of reference each landmarker works in: the whole image while its person is alone in view,
else a crop that stays put while the person stays well inside it."""

from __future__ import annotations

import numpy as np

from tar_core.capture import multipose
from tar_core.capture.tracks import TrackingPass
from tar_core.capture.video import VideoReader
from tar_core.util.stop import StopFlag


class _Quiet:
    def progress(self, *a):
        pass


def test_one_person_in_view_gets_mediapipes_own_whole_frame_landmarks(sample_clip):
    """Alone in view, a person's landmarks are exactly those of MediaPipe's single-person Pose run on the
    whole frames from the first one (the new person's pass takes the whole frame too), not of a pass on a crop."""
    tp = TrackingPass(_Quiet(), StopFlag())
    with VideoReader(str(sample_clip)) as reader:
        tracks, _ = tp.run(reader)
        assert len(tracks) == 1
        (track,) = tracks.values()
        images = {f.index: f.image for f in reader}
    mp = multipose._import_mediapipe()
    pose = mp.solutions.pose.Pose(static_image_mode=False, model_complexity=1, smooth_landmarks=True,
                                  enable_segmentation=False, min_detection_confidence=0.5, min_tracking_confidence=0.5)
    try:
        gaps = []
        assert track.frame_ids[0] == 0
        for k, fid in enumerate(track.frame_ids):
            image = images[fid]
            res = pose.process(image)
            h, w = image.shape[:2]
            xy = np.array([(p.x * w, p.y * h) for p in res.pose_landmarks.landmark])
            world = np.array([(p.x, p.y, p.z) for p in res.pose_world_landmarks.landmark])
            mine = track.landmarks[k]
            gaps.append(max(np.abs(xy - mine.image_xy).max(), np.abs(world - mine.world).max()))
    finally:
        pose.close()
    assert len(gaps) >= 60 and max(gaps) < 1e-3


def test_a_landmarker_following_nobody_finds_whom_the_discovery_detector_finds(sample_clip):
    """The people a landmarker's own detector finds on a frame (it runs it while it follows nobody) are the
    discovery detector's on that frame: the whole-frame discovery a first pass replaces costs nothing then."""
    with VideoReader(str(sample_clip)) as reader:
        images = [f.image for f in reader][:40:13]
    detector = multipose._pose_detector()
    try:
        for image in images:
            pose = multipose._pose_landmarker()  # a fresh one: it follows nobody
            try:
                res = pose.process(image)
            finally:
                pose.close()
            h, w = image.shape[:2]
            want = multipose._body_squares(detector.process({"image": image}).detections, 0, 0, w, h)
            got = multipose._body_squares(res.pose_detections, 0, 0, w, h)
            assert len(want) == 1 and res.pose_landmarks is not None
            assert [(d.box.tolist(), d.score) for d in got] == [(d.box.tolist(), d.score) for d in want]
    finally:
        detector.close()


def test_a_crop_stays_put_while_the_person_stays_inside_it():
    """Small moves of the person's box keep the crop; leaving its inner margin or changing size re-centres it."""
    regions = multipose._RegionPasses()
    box = np.array([100.0, 100.0, 200.0, 300.0])
    first = regions._square(7, box, 1.7)
    assert np.allclose(regions._square(7, box + 12.0, 1.7), first)  # 12 px of a 340 px crop: kept
    moved = regions._square(7, box + 80.0, 1.7)  # out of the inner margin: a new crop around the box
    assert np.allclose(0.5 * (moved[:2] + moved[2:]), 0.5 * (box[:2] + box[2:]) + 80.0)
    c = 0.5 * (moved[:2] + moved[2:])
    grown = np.concatenate([c - [75.0, 150.0], c + [75.0, 150.0]])  # same place, 1.5 x the size
    sq = regions._square(7, grown, 1.7)
    assert np.isclose(sq[2] - sq[0], 1.7 * 300.0)
    regions.close()


def _discovery_stats(clip, **timing) -> dict:
    from tar_core.capture.tracking import Tracker

    with VideoReader(str(clip)) as reader:
        fps = reader.info.fps
        tracker = Tracker(max_missed=int(1.5 * fps))
        with multipose.MultiPoseDetector(fps=fps, **timing) as det:
            for f in reader:
                updates, ended = tracker.update(f.index, f.time, det.detect(f.image, f.index, f.time, tracker))
                det.bind(updates, ended, f.time)
    return det.stats


def test_discovery_rests_longer_while_one_person_is_alone_in_view(sample_clip):
    """One person alone in view, found on the whole frame, before a still background: after the first frame's
    pass, due discoveries rest for ``alone_idle_s`` (here longer than the clip) instead of ``idle_s``."""
    alone = _discovery_stats(sample_clip, calm_s=0.25, idle_s=0.5, alone_idle_s=5.0)
    as_others = _discovery_stats(sample_clip, calm_s=0.25, idle_s=0.5, alone_idle_s=0.5)
    assert alone["discovery_passes"] == 1 and alone["discoveries_skipped"] >= 8, alone
    assert as_others["discovery_passes"] >= 4, as_others


def test_mediapipes_models_run_on_every_core_the_process_may_use():
    """Both graphs' inference calculators (inside their subgraphs) get ``inference_threads()`` XNNPACK threads;
    MediaPipe's default is one (the landmarks stay the same: the test above)."""
    from google.protobuf import text_format
    from mediapipe.calculators.tensor import inference_calculator_pb2
    from mediapipe.framework import calculator_pb2

    detector = text_format.Parse(multipose._DETECTOR_GRAPH, calculator_pb2.CalculatorGraphConfig())
    for graph, models in ((multipose._POSE_GRAPH, 2), (detector, 1)):
        nodes = [n for n in multipose._threaded(graph).node if n.calculator.startswith("InferenceCalculator")]
        threads = [n.options.Extensions[inference_calculator_pb2.InferenceCalculatorOptions.ext].delegate.xnnpack
                   .num_threads for n in nodes]
        assert threads == [multipose.inference_threads()] * models
    assert 1 <= multipose.inference_threads() <= 4
