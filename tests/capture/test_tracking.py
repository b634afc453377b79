"""Tests for tar_core.capture.tracking: the tracker, box smoothing and the --boxes file."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tar_core.capture.tracking import (
    Detection,
    Tracker,
    TrackUpdate,
    box_iou,
    box_iou_one,
    load_boxes_file,
    parse_boxes,
    smooth_boxes,
)

FPS = 30.0


def person(cx: float, cy: float = 300.0, w: float = 60.0, h: float = 160.0, **kw) -> Detection:
    return Detection(np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]), **kw)


def run(tracker: Tracker, frames: list[list[Detection]], times=None):
    """Feed every frame; returns ({frame: {detection position in list: id}}, {frame: ended ids})."""
    ids, ended = {}, {}
    for f, dets in enumerate(frames):
        t = f / FPS if times is None else times[f]
        updates, gone = tracker.update(f, t, dets)
        ids[f] = {next(i for i, d in enumerate(dets) if d is u.detection): u.track_id for u in updates}
        if gone:
            ended[f] = gone
    return ids, ended


# ------------------------------------------------------------------------------------------ geometry
def test_box_iou():
    a = np.array([[0, 0, 10, 10]])
    b = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30], [3, 3, 3, 8]])
    np.testing.assert_allclose(box_iou(a, b), [[1.0, 50 / 150, 0.0, 0.0]])


def test_box_iou_one_equals_box_iou_on_random_boxes():
    """The scalar IoU of two boxes gives exactly what the vectorised one does, also for boxes that do not
    overlap, touch, hold one another, or are empty or inverted."""
    rng = np.random.default_rng(7)
    corners = rng.integers(0, 40, size=(2000, 2, 4)).astype(np.float64) + rng.choice([0.0, 0.5], (2000, 2, 4))
    for a, b in corners:
        assert box_iou_one(a, b) == box_iou(a, b)[0, 0], (a, b)
    assert box_iou_one(np.array([0.0, 0, 10, 10]), np.array([5.0, 0, 15, 10])) == 50 / 150


def test_detection_validates_box():
    assert Detection([1, 2, 3, 4]).box.dtype == np.float64
    with pytest.raises(ValueError):
        Detection([1, 2, 3])
    with pytest.raises(ValueError):
        Detection([0, 0, np.nan, 1])


# ------------------------------------------------------------------------------------------ tracker
def test_ids_in_order_of_appearance_and_updates():
    tracker = Tracker()
    a0 = person(100, payload={"landmarks": 1})
    updates, ended = tracker.update(0, 0.0, [a0])
    assert ended == [] and len(updates) == 1
    u = updates[0]
    assert isinstance(u, TrackUpdate)
    assert (u.track_id, u.frame_index, u.time) == (0, 0, 0.0)
    assert u.detection is a0 and u.detection.payload == {"landmarks": 1}
    np.testing.assert_array_equal(u.box, a0.box)
    updates, _ = tracker.update(1, 1 / FPS, [person(400), person(102)])
    assert [(x.track_id, x.box[0] + 30) for x in updates] == [(0, 102), (1, 400)]
    assert tracker.open_track_ids == [0, 1]
    assert tracker.finish() == [0, 1]
    assert tracker.open_track_ids == []


def test_same_frame_new_ids_follow_score_then_list_order():
    tracker = Tracker()
    dets = [person(100, score=0.5), person(300, score=0.9), person(500, score=0.5)]
    updates, _ = tracker.update(0, 0.0, dets)
    by_det = {next(i for i, d in enumerate(dets) if d is u.detection): u.track_id for u in updates}
    assert by_det == {1: 0, 0: 1, 2: 2}


def test_frame_indices_must_increase():
    tracker = Tracker()
    tracker.update(3, 0.1, [])
    with pytest.raises(ValueError, match="increase"):
        tracker.update(3, 0.2, [])


def crossing_frames(n: int = 40, occlude: range = range(18, 23)):
    """A walks right, B walks left; they cross at frame 20 and B is hidden behind A for a few frames."""
    frames, truth = [], []
    for f in range(n):
        a = person(100 + 10 * f, 300, 60, 160)  # at x = 300 at frame 20
        b = person(500 - 10 * f, 310, 56, 150)
        if f in occlude:
            frames.append([a])
            truth.append(["A"])
        else:
            order = [b, a] if f % 2 else [a, b]  # list order must not matter
            frames.append(order)
            truth.append(["B", "A"] if f % 2 else ["A", "B"])
    return frames, truth


@pytest.mark.parametrize("use_times", [True, False], ids=["time-clock", "frame-clock"])
def test_crossing_people_keep_their_ids(use_times):
    frames, truth = crossing_frames()
    times = None if use_times else [0.0] * len(frames)  # non-increasing times: the tracker uses frame indices
    ids, ended = run(Tracker(max_missed=15, iou_threshold=0.3), frames, times)
    assert ended == {}
    name_to_id = {"A": 0, "B": 1}
    for f, names in enumerate(truth):
        assert ids[f] == {i: name_to_id[n] for i, n in enumerate(names)}, f"frame {f}"


def test_crossing_with_noisy_boxes_and_occlusion():
    # 3 px of noise on every coordinate: the motion model is fitted over several frames, so one noisy
    # box hardly bends it, and the hidden person is re-found where the fitted line puts them.
    for seed in range(20):
        rng = np.random.default_rng(seed)
        frames, truth = crossing_frames()
        frames = [[Detection(d.box + rng.normal(0, 3.0, 4)) for d in dets] for dets in frames]
        ids, ended = run(Tracker(), frames)
        assert ended == {}
        for f, names in enumerate(truth):
            assert ids[f] == {i: {"A": 0, "B": 1}[n] for i, n in enumerate(names)}, f"seed {seed}, frame {f}"


def test_a_box_pulled_onto_both_people_while_they_overlap_does_not_bend_the_motion_model():
    # B walks in front of A; while they overlap the landmarks give B a box between the two (mixing both
    # bodies) that stands still, and A is not found. Learning from those boxes B's track would stop, and
    # neither would be found where they come out; in contact the motion model keeps its velocity instead.
    frames, truth = [], []
    for f in range(40):
        a, b = person(100 + 10 * f, w=100), person(500 - 10 * f, 305, 100, 150)
        if 16 <= f <= 24:
            frames.append([person(305, 305, 100, 150)])
            truth.append(["B"])
        else:
            frames.append([a, b])
            truth.append(["A", "B"])
    ids, ended = run(Tracker(max_frozen=15), frames)
    assert ended == {}
    for f, names in enumerate(truth):
        assert ids[f] == {i: {"A": 0, "B": 1}[n] for i, n in enumerate(names)}, f"frame {f}"


def test_a_long_contact_feeds_the_motion_model_again():
    # Two people walk side by side (their boxes in contact), then one stops: after max_frozen frames of
    # contact the model learns again and follows the one who stopped (frozen, it would lose them).
    frames = [[person(100 + 6 * min(f, 20)), person(130 + 6 * f, 305)] for f in range(50)]
    ids, ended = run(Tracker(max_frozen=5), frames)
    assert ended == {} and all(v == {0: 0, 1: 1} for v in ids.values())


def test_a_detection_goes_to_the_track_whose_search_found_it():
    # Track 1 missed a frame (it waits), track 0 was seen: a box between the two that track 1's own search
    # found goes to track 1, though track 0 is seen more recently and fits it about as well.
    for source, expected in ((1, 1), (None, 0)):
        tracker = Tracker()
        for f in range(5):
            tracker.update(f, f / FPS, [person(100), person(150)] if f < 4 else [person(100)])
        updates, _ = tracker.update(5, 5 / FPS, [Detection(person(118).box, source=source)])
        assert [u.track_id for u in updates] == [expected]


def test_predict_follows_constant_velocity():
    tracker = Tracker()
    for f in range(5):
        tracker.update(f, f / FPS, [person(100 + 7 * f, 300 - 2 * f)])
    np.testing.assert_allclose(tracker.predict(0, 9, 9 / FPS), person(163, 282).box, atol=1e-9)


def test_a_cached_prediction_is_the_fit_of_the_track_as_it_is_now():
    """Asked again for the same frame the tracker gives the same box; once the track moves on (or the clock
    changes) it fits afresh: every answer equals the uncached fit, and a caller may change its copy."""
    tracker = Tracker()
    rng = np.random.default_rng(3)
    for f in range(12):
        tracker.update(f, f / FPS, [person(100 + 7 * f + rng.normal(0, 3), 300 - 2 * f)] if f != 8 else [])
        track = tracker._tracks[0]
        for later in (f, f + 1, f + 1, f + 3):  # f: as the update that just moved the track was
            got = tracker.predict(0, later, later / FPS)
            np.testing.assert_array_equal(got, tracker._fit(track, later, later / FPS))
            got += 1000.0  # the caller's copy, not the cache
    tracker.update(12, 12 / FPS, [Detection(person(400).box, source=0)])  # far away: not this track
    track = tracker._tracks[0]
    np.testing.assert_array_equal(tracker.predict(0, 13, 13 / FPS), tracker._fit(track, 13, 13 / FPS))
    tracker.update(13, 12 / FPS, [person(184)])  # a time that fails to increase: the frame clock from now on
    np.testing.assert_array_equal(tracker.predict(0, 14, 14 / FPS), tracker._fit(track, 14, 14 / FPS))


def test_typical_size_is_the_median_diagonal():
    """``typical_size`` (a pure-Python median) equals numpy's median of the recent diagonals, odd and even counts."""
    rng = np.random.default_rng(5)
    tracker = Tracker()
    for f in range(14):
        w, h = rng.uniform(80, 120), rng.uniform(160, 240)
        tracker.update(f, f / FPS, [person(300.0, w=w, h=h)])
        sizes = np.array(tracker._tracks[0].sizes)
        assert len(sizes) == min(f + 1, Tracker.HISTORY)
        assert tracker.typical_size(0) == np.median(sizes)


def test_crossing_without_occlusion_and_uneven_timestamps():
    rng = np.random.default_rng(0)
    times = np.cumsum(rng.uniform(1 / 60, 1 / 20, size=50))
    frames, truth = [], []
    for t in times:
        frames.append([person(100 + 300 * t, 300), person(600 - 300 * t, 305, 58, 150)])  # cross at t = 0.83 s
        truth.append(["A", "B"])
    ids, _ = run(Tracker(), frames, list(times))
    for f in range(len(frames)):
        assert ids[f] == {0: 0, 1: 1}, f"frame {f}"


def test_crossing_with_every_other_frame_processed():
    frames, truth = crossing_frames(occlude=range(0))
    tracker = Tracker()
    for f in range(0, len(frames), 2):
        updates, ended = tracker.update(f, f / FPS, frames[f])
        assert ended == []
        got = {next(i for i, d in enumerate(frames[f]) if d is u.detection): u.track_id for u in updates}
        assert got == {i: {"A": 0, "B": 1}[n] for i, n in enumerate(truth[f])}, f"frame {f}"


def gap_frames(gap: int, before: int = 10, after: int = 10):
    """One person walking slowly, undetected for `gap` frames after frame `before - 1`."""
    frames = []
    for f in range(before + gap + after):
        frames.append([] if before <= f < before + gap else [person(200 + 2 * f)])
    return frames


def test_short_miss_keeps_id():
    ids, ended = run(Tracker(max_missed=15), gap_frames(10))
    assert ended == {}
    assert {tid for f in ids for tid in ids[f].values()} == {0}


def test_miss_of_exactly_max_missed_keeps_id_one_more_ends_it():
    ids, ended = run(Tracker(max_missed=15), gap_frames(15))
    assert ended == {} and {tid for f in ids for tid in ids[f].values()} == {0}
    ids, ended = run(Tracker(max_missed=15), gap_frames(16))
    assert ended == {25: [0]}  # last seen at frame 9, its 16th missed frame is 25
    assert ids[26] == {0: 1}


def test_long_miss_gets_new_id_and_ended_is_reported_at_the_right_frame():
    tracker = Tracker(max_missed=15)
    ids, ended = run(tracker, gap_frames(20))
    assert ended == {25: [0]}  # last seen at frame 9; unseen for more than 15 frames at frame 25
    assert all(v == {0: 0} for f, v in ids.items() if f < 10)
    assert all(v == {0: 1} for f, v in ids.items() if f >= 30)
    assert tracker.finish() == [1]


def test_skipped_frames_end_a_track_at_the_next_call():
    tracker = Tracker(max_missed=15)
    tracker.update(0, 0.0, [person(200)])
    updates, ended = tracker.update(40, 40 / FPS, [person(200)])
    assert ended == [0] and [u.track_id for u in updates] == [1]
    updates, ended = tracker.update(50, 50 / FPS, [person(200)])  # 9 frames unseen: kept
    assert ended == [] and [u.track_id for u in updates] == [1]


def test_refound_where_last_seen_after_stopping():
    # Walks right fast, vanishes, reappears where it disappeared (it stopped): the last box matches.
    frames = [[person(100 + 15 * f)] for f in range(10)] + [[]] * 12 + [[person(100 + 15 * 9)]] * 3
    ids, ended = run(Tracker(max_missed=15), frames)
    assert ended == {} and {tid for f in ids for tid in ids[f].values()} == {0}


def test_refound_where_the_motion_model_predicts():
    # Walks right, hidden for 8 frames while still walking: the new box is far from the last one.
    frames = [[] if 10 <= f < 18 else [person(100 + 12 * f)] for f in range(25)]
    ids, _ = run(Tracker(max_missed=15), frames)
    last, back = person(100 + 12 * 9).box, person(100 + 12 * 18).box
    assert box_iou(last, back)[0, 0] == 0.0
    assert {tid for f in ids for tid in ids[f].values()} == {0}


def test_refound_after_a_flip_by_position_and_size():
    # Tall box, lost for 6 frames (a flip: landmarks gone), back as a wide box a body length further on:
    # no overlap with any earlier box, yet the same person (one lost track, one new box near it).
    frames = [[person(300 + 2 * f)] for f in range(10)] + [[]] * 6
    frames += [[person(440 + 2 * f, 380, w=150, h=90)] for f in range(8)]
    assert box_iou(frames[9][0].box, frames[16][0].box)[0, 0] == 0.0
    ids, ended = run(Tracker(max_missed=15), frames)
    assert ended == {} and {tid for f in ids for tid in ids[f].values()} == {0}
    # Too long gone (over reid_s), or two people lost there (ambiguous): new ids, never a guess.
    ids, _ = run(Tracker(max_missed=60, reid_s=0.1), frames)
    assert ids[16] == {0: 1}
    two = [[person(300 + 2 * f), person(330 + 2 * f, 310, 58, 150)] for f in range(10)] + [[]] * 6
    two += [[person(440 + 2 * f, 380, w=150, h=90)] for f in range(8)]
    ids, _ = run(Tracker(max_missed=15), two)
    assert ids[16] == {0: 2}


def test_hints_are_obeyed():
    tracker = Tracker(max_missed=2)
    # Hints that contradict the geometry (the ids swap places) are followed exactly.
    u, _ = tracker.update(0, 0.0, [person(100, track_hint=7), person(400, track_hint=3)])
    assert [(x.track_id, x.box[0] + 30) for x in u] == [(3, 400), (7, 100)]
    u, _ = tracker.update(1, 0.1, [person(100, track_hint=3), person(400, track_hint=7)])
    assert [(x.track_id, x.box[0] + 30) for x in u] == [(3, 100), (7, 400)]
    # User tracks are not ended by misses; automatic ids skip the hinted ones... and start at 0.
    for f in range(2, 10):
        _, ended = tracker.update(f, f / 10, [])
        assert ended == []
    u, _ = tracker.update(10, 1.0, [person(700), person(100, track_hint=3)])
    assert sorted(x.track_id for x in u) == [0, 3]
    u, _ = tracker.update(11, 1.1, [person(700), person(900, track_hint=5)])
    assert sorted(x.track_id for x in u) == [0, 5]
    assert tracker.finish() == [0, 3, 5, 7]


def test_auto_ids_skip_ids_used_by_hints():
    tracker = Tracker()
    tracker.update(0, 0.0, [person(100, track_hint=0), person(300, track_hint=1)])
    u, _ = tracker.update(1, 0.1, [person(600), person(900)])
    assert sorted(x.track_id for x in u) == [2, 3]


def test_a_hint_takes_over_an_automatic_track_with_its_id():
    tracker = Tracker(max_missed=1)
    tracker.update(0, 0.0, [person(100)])  # automatic id 0
    u, _ = tracker.update(1, 0.1, [person(500, track_hint=0)])
    assert [(x.track_id, x.box[0] + 30) for x in u] == [(0, 500)]
    for f in range(2, 6):  # now a user track: not ended by misses
        assert tracker.update(f, f / 10, [])[1] == []
    assert tracker.finish() == [0]


def test_duplicate_hints_in_a_frame_are_refused():
    with pytest.raises(ValueError, match="same track id"):
        Tracker().update(0, 0.0, [person(100, track_hint=1), person(300, track_hint=1)])


def test_max_tracks_keeps_the_highest_scores():
    tracker = Tracker(max_tracks=2, max_missed=3)
    dets = [person(100, score=0.5), person(300, score=0.9), person(500, score=0.7)]
    u, _ = tracker.update(0, 0.0, dets)
    assert [(x.track_id, x.detection.score) for x in u] == [(0, 0.9), (1, 0.7)]
    # A new, more confident person gets no track while two are open (a missed one still counts) ...
    u, _ = tracker.update(1, 0.1, [person(300, score=0.9), person(800, score=0.99)])
    assert [x.track_id for x in u] == [0]
    for f in range(2, 5):
        u, ended = tracker.update(f, f / 10, [person(300, score=0.9), person(800, score=0.99)])
        assert [x.track_id for x in u] == [0]
    # ... until the missed track ends (last seen at frame 0, ended at frame 4), then it does.
    assert ended == [1]
    u, _ = tracker.update(5, 0.5, [person(300, score=0.9), person(800, score=0.99)])
    assert [x.track_id for x in u] == [0, 2]


def test_max_tracks_zero_means_no_limit():
    u, _ = Tracker(max_tracks=0).update(0, 0.0, [person(100 + 100 * i) for i in range(8)])
    assert [x.track_id for x in u] == list(range(8))


def test_iou_gate():
    tracker = Tracker(iou_threshold=0.5)
    tracker.update(0, 0.0, [person(100)])
    u, _ = tracker.update(1, 0.1, [person(130)])  # IoU (60-30)/(60+30) = 1/3 < 0.5
    assert [x.track_id for x in u] == [1]


def test_bad_parameters():
    with pytest.raises(ValueError):
        Tracker(max_missed=-1)
    with pytest.raises(ValueError):
        Tracker(iou_threshold=0.0)
    with pytest.raises(ValueError):
        Tracker(max_tracks=-2)


# ------------------------------------------------------------------------------------------ smoothing
def boxes_from(centres: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    return np.concatenate([centres - sizes / 2, centres + sizes / 2], axis=1)


def test_smooth_static_box_is_exactly_static():
    boxes = np.tile([[13.37, 101.1, 88.9, 333.3]], (50, 1))
    times = np.sort(np.random.default_rng(1).uniform(0, 2, 50))
    np.testing.assert_array_equal(smooth_boxes(boxes, times), boxes)


@pytest.mark.parametrize("timing", ["even", "uneven", "gap"])
def test_smooth_constant_velocity_stays_on_its_line(timing):
    rng = np.random.default_rng(2)
    if timing == "even":
        times = np.arange(90) / FPS
    elif timing == "uneven":
        times = np.cumsum(rng.uniform(0.005, 0.08, 90))
    else:
        times = np.concatenate([np.arange(40) / FPS, 3.0 + np.arange(40) / FPS])
    velocity = np.array([420.0, -135.0])  # px / s
    centres = np.array([200.0, 500.0]) + times[:, None] * velocity
    sizes = np.tile([80.0, 200.0], (len(times), 1))
    boxes = boxes_from(centres, sizes)
    out = smooth_boxes(boxes, times)
    out_centres = 0.5 * (out[:, :2] + out[:, 2:])
    assert np.abs(out_centres - centres).max() < 1e-3  # well below the 1 px asked for: no lag at all
    np.testing.assert_allclose(out[:, 2:] - out[:, :2], sizes, atol=1e-6)


def test_smooth_reduces_jitter():
    rng = np.random.default_rng(3)
    times = np.arange(300) / FPS
    centres = np.stack([640 + 40 * np.sin(2 * np.pi * 0.2 * times), 360 + 10 * times], axis=1)
    sizes = np.stack([120 + 10 * np.cos(times), 300 + 5 * times], axis=1)
    truth = boxes_from(centres, sizes)
    noisy = boxes_from(centres + rng.normal(0, 3.0, centres.shape), sizes * np.exp(rng.normal(0, 0.03, sizes.shape)))
    out = smooth_boxes(noisy, times)
    err_in = np.sqrt(np.mean((noisy - truth) ** 2))
    err_out = np.sqrt(np.mean((out - truth) ** 2))
    assert err_out < err_in / 2, (err_in, err_out)


def test_smooth_uneven_timestamps_jitter_and_no_lag():
    rng = np.random.default_rng(4)
    times = np.cumsum(rng.choice([1 / 60, 1 / 30, 1 / 24, 0.1], size=200))
    centres = np.stack([100 + 250 * times, 200 + 0 * times], axis=1)
    sizes = np.tile([100.0, 250.0], (200, 1))
    truth = boxes_from(centres, sizes)
    noisy = truth + rng.normal(0, 2.0, truth.shape)
    out = smooth_boxes(noisy, times)
    resid = (out - truth)[:, [0, 2]].mean(axis=1)
    assert abs(resid.mean()) < 0.3  # no systematic lag behind the motion
    assert np.sqrt(np.mean((out - truth) ** 2)) < np.sqrt(np.mean((noisy - truth) ** 2)) / 2


def test_smooth_is_symmetric_in_time_and_accepts_unsorted_times():
    rng = np.random.default_rng(5)
    times = np.cumsum(rng.uniform(0.01, 0.05, 60))
    boxes = boxes_from(rng.normal(300, 20, (60, 2)), rng.uniform(80, 120, (60, 2)))
    out = smooth_boxes(boxes, times)
    reversed_out = smooth_boxes(boxes[::-1], -times[::-1])[::-1]
    np.testing.assert_allclose(out, reversed_out, atol=1e-9)
    perm = rng.permutation(60)
    np.testing.assert_allclose(smooth_boxes(boxes[perm], times[perm]), out[perm], atol=1e-9)


def test_smooth_edge_cases():
    one = np.array([[1.0, 2.0, 3.0, 5.0]])
    np.testing.assert_array_equal(smooth_boxes(one, np.array([0.0])), one)
    # An isolated sample far from the others (a gap of many sigmas) stays where it is.
    times = np.array([0.0, 1 / 30, 2 / 30, 10.0])
    boxes = boxes_from(np.array([[10.0, 10], [11, 10], [12, 10], [500, 500]]), np.full((4, 2), 20.0))
    out = smooth_boxes(boxes, times)
    assert np.all(np.isfinite(out))
    np.testing.assert_allclose(out[3], boxes[3], atol=1e-6)
    with pytest.raises(ValueError):
        smooth_boxes(np.array([[0.0, 0, 0, 5]]), np.array([0.0]))
    with pytest.raises(ValueError):
        smooth_boxes(one, np.array([0.0, 1.0]))


# ------------------------------------------------------------------------------------------ boxes file
def write(tmp_path, content, name="boxes.json"):
    path = tmp_path / name
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


def test_load_boxes_all_forms(tmp_path):
    path = write(
        tmp_path,
        {
            "12": [[10, 20, 110, 220]],
            "0": [[1, 2, 3, 4, 7], {"box": [5, 6, 50, 60], "id": 2, "score": 0.75}, {"box": [0, 0, 9.5, 9.5]}],
            "3": [],
            "+4": [[1, 1, 2, 2, 3.0]],
        },
    )
    data = load_boxes_file(path)
    assert list(data) == [0, 3, 4, 12]
    a, b, c = data[0]
    np.testing.assert_array_equal(a.box, [1, 2, 3, 4])
    assert (a.track_hint, a.score) == (7, 1.0)
    np.testing.assert_array_equal(b.box, [5, 6, 50, 60])
    assert (b.track_hint, b.score) == (2, 0.75)
    assert (c.track_hint, c.score) == (None, 1.0) and c.box.dtype == np.float64
    assert data[3] == []
    assert data[4][0].track_hint == 3 and isinstance(data[4][0].track_hint, int)
    assert data[12][0].track_hint is None
    np.testing.assert_array_equal(data[12][0].box, [10, 20, 110, 220])
    # Loaded detections drive the tracker directly.
    updates, _ = Tracker().update(0, 0.0, data[0])
    assert sorted(u.track_id for u in updates) == [0, 2, 7]


def test_parse_boxes_accepts_int_keys():
    data = parse_boxes({5: [[0, 0, 10, 10]], "7": [[1, 1, 5, 5, 1]]})
    assert list(data) == [5, 7]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON"),
        ([[0, 0, 1, 1]], "expected an object"),
        ({"a": []}, "frame key 'a'"),
        ({"1.5": []}, "frame key '1.5'"),
        ({"-1": []}, "negative"),
        ('{"1": [], "01": []}', "given twice"),
        ('{"1": [], "1": []}', "appears twice"),
        ({"0": [0, 0, 1, 1]}, r"frame '0', entry 0: an entry must be"),
        ({"0": {"box": [0, 0, 1, 1]}}, "expected a list of boxes"),
        ({"2": [[0, 0, 1]]}, r"frame '2', entry 0: an entry must be"),
        ({"2": [[0, 0, 5, 5], [0, 0, "1", 1]]}, r"frame '2', entry 1: a box must be 4 numbers"),
        ({"2": [[0, 0, True, 1]]}, "a box must be 4 numbers"),
        ('{"2": [[0, 0, NaN, 1]]}', "not finite"),
        ({"3": [[-1, 0, 5, 5]]}, "negative coordinate"),
        ({"3": [[5, 0, 5, 5]]}, "degenerate"),
        ({"3": [[6, 0, 5, 5]]}, "degenerate or inverted"),
        ({"3": [[0, 9, 5, 5]]}, "degenerate or inverted"),
        ({"4": [[0, 0, 5, 5, -1]]}, "track id must be a non-negative integer"),
        ({"4": [[0, 0, 5, 5, 1.5]]}, "track id must be"),
        ({"4": [{"box": [0, 0, 5, 5], "id": "x"}]}, "track id must be"),
        ({"5": [{"bbox": [0, 0, 5, 5]}]}, "unknown key"),
        ({"5": [{"id": 1}]}, "needs a 'box'"),
        ({"5": [{"box": [0, 0, 5, 5], "score": -0.5}]}, "score must be"),
        ({"5": [{"box": [0, 0, 5, 5], "score": "high"}]}, "score must be"),
        ({"6": [[0, 0, 5, 5, 1], {"box": [9, 9, 20, 20], "id": 1}]}, "appears twice in one frame"),
    ],
)
def test_load_boxes_errors_are_clear(tmp_path, content, message):
    path = write(tmp_path, content, name="my-boxes.json")
    with pytest.raises(ValueError, match=message) as info:
        load_boxes_file(path)
    assert "my-boxes.json" in str(info.value)


def test_load_boxes_image_size_check(tmp_path):
    path = write(tmp_path, {"0": [[10, 10, 50, 50], [700, 10, 720, 50]]})
    assert len(load_boxes_file(path)[0]) == 2
    with pytest.raises(ValueError, match=r"entry 1: .*outside the 640x480 image"):
        load_boxes_file(path, image_size=(640, 480))


def test_load_boxes_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_boxes_file(tmp_path / "nope.json")
