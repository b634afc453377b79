"""Several people: the offline PoseLandmarker bundle, tracking on composited clips of rendered people
(``people_clips``), the person picker and ``--list-people``."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from people_clips import (
    CROSSING_WIDTH,
    crossing_people,
    make_clip,
    one_walks_in,
    score_tracks,
    three_people,
    two_people_crossing,
)

from tar_core.capture.people import parse_person, select_people
from tar_core.capture.tracks import TrackData
from tar_core.errors import EXIT_CODES, NoPersonError, UsageError
from tar_core.motion_file import read_motion

ROOT = Path(__file__).resolve().parents[2]


class _Quiet:
    def progress(self, *a):
        pass


def _track(clip):
    from tar_core.capture.tracks import TrackingPass
    from tar_core.capture.video import VideoReader
    from tar_core.util.stop import StopFlag

    tp = TrackingPass(_Quiet(), StopFlag())
    tracks, _ = tp.run(VideoReader(clip))
    return {tid: (t.frame_ids, t.boxes) for tid, t in tracks.items()}, tp.detector_stats


def cli(*args):
    return subprocess.run([sys.executable, "-m", "tar_core", *map(str, args)], capture_output=True, text=True,
                          timeout=900, cwd=ROOT)


def test_bundle_is_built_once_into_the_cache_uncompressed(tmp_path, monkeypatch):
    import hashlib

    from tar_core.capture import pose_bundle

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    path = pose_bundle.pose_bundle_path()
    assert path.parent == tmp_path / "cache" / "tar-mocap"
    det, lm = (p.read_bytes() for p in pose_bundle.wheel_models())
    key = hashlib.sha256(hashlib.sha256(det).digest() + hashlib.sha256(lm).digest()).hexdigest()
    assert key[:16] in path.name  # a new wheel's models give a new bundle
    with zipfile.ZipFile(path) as zf:
        assert sorted(zf.namelist()) == ["pose_detector.tflite", "pose_landmarks_detector.tflite"]
        assert all(i.compress_type == zipfile.ZIP_STORED for i in zf.infolist())
    mtime = path.stat().st_mtime_ns
    assert pose_bundle.pose_bundle_path() == path and path.stat().st_mtime_ns == mtime  # cached
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left


def _fake_tracks():
    def t(tid, first, box, n=10, grow=0.0):
        boxes = [np.array(box, float) + [0, 0, grow * k, grow * k] for k in range(n)]
        return TrackData(tid, list(range(first, first + n)), [0.1 * k for k in range(n)], boxes, [1.0] * n, [None] * n)

    return {0: t(0, 0, [10, 10, 60, 110]), 1: t(1, 0, [200, 20, 300, 220]), 4: t(4, 5, [40, 30, 80, 110])}


def test_person_picker():
    tracks = _fake_tracks()
    assert parse_person(None) is None and parse_person("3") == 3 and parse_person("12.5, 40") == (12.5, 40.0)
    for bad in ("x", "1,2,3", "-1"):
        with pytest.raises(UsageError):
            parse_person(bad)
    assert list(select_people(tracks, (250, 100))) == [1]
    assert list(select_people(tracks, (50, 60))) == [4]  # in two boxes: the smaller one (person 4's first box)
    assert list(select_people(tracks, 4)) == [4]
    assert list(select_people(tracks, None, max_people=2)) == [0, 1]  # the two largest
    with pytest.raises(NoPersonError, match=r"no person at \(500, 400\); the nearest is person 1 at \(250, 120\)"):
        select_people(tracks, (500, 400))
    with pytest.raises(NoPersonError, match="no person with id 7"):
        select_people(tracks, 7)


def test_hide_others_blanks_other_people_but_not_the_own_box():
    from tar_core.capture.multipose import hide_others

    rng = np.random.default_rng(0)
    crop = rng.integers(0, 255, (100, 100, 3), dtype=np.uint8)
    # The crop is the square (50, 20)-(250, 220) of the image, at half resolution.
    out = hide_others(crop, 50, 20, 200, 200, own=np.array([90, 60, 170, 200]), others=[np.array([150, 40, 230, 180])])
    fill = crop.reshape(-1, 3).mean(0).astype(np.uint8)
    assert (out[10:80, 60:90] == fill).all()  # the other person, outside the own box
    np.testing.assert_array_equal(out[20:90, 20:60], crop[20:90, 20:60])  # the own box, where they overlap too
    np.testing.assert_array_equal(out[:, :20], crop[:, :20])  # and everything else
    assert (out != crop).any(axis=-1).sum() > 0.9 * 70 * 30


def test_crop_square_follows_the_person_and_gives_the_whole_frame_when_it_holds_it():
    from tar_core.capture.multipose import CROP_STEP, MAX_CROP, crop_square

    image = np.random.default_rng(1).integers(0, 255, (720, 1280, 3), dtype=np.uint8)
    crop, x0, y0, sx, sy = crop_square(image, np.array([600.0, 300, 680, 470]))  # a small person: 1.7 x 170 px
    assert sx == sy == crop.shape[0] == crop.shape[1] == 9 * CROP_STEP and (x0, y0) == (496, 241)
    np.testing.assert_array_equal(crop, image[241:241 + sy, 496:496 + sx])
    crop, x0, y0, sx, sy = crop_square(image, np.array([500.0, 100, 800, 700]))  # wide: cut from a shrunk copy
    assert sx == sy and sx / crop.shape[0] == 2 and crop.shape[0] <= MAX_CROP
    whole = crop_square(image, np.array([200.0, 0, 1080, 719]))  # the square holds the whole frame
    assert whole[0] is image and whole[1:] == (0, 0, 1280, 720)


def test_which_region_passes_stand():
    """Of two passes on the same person the track seen last keeps it (a person hidden behind another does not
    take their place); a pass that slid onto another tracked person, or whose box blew up, falls."""
    from tar_core.capture.multipose import MultiPoseDetector
    from tar_core.capture.tracking import Detection, Tracker

    def box(cx, w=100.0, h=200.0):
        return np.array([cx - w / 2, 100, cx + w / 2, 100 + h])

    tracker = Tracker()
    for f in range(5):  # person 0 walks right, person 1 left; person 1 is missed on the last frame
        tracker.update(f, f / 30, [Detection(box(200 + 5 * f)), *([Detection(box(300 - 5 * f))] if f < 4 else [])])
    predicted = {t: tracker.predict(t, 5, 5 / 30) for t in (0, 1)}
    settle = MultiPoseDetector._settle
    same = {0: Detection(box(262)), 1: Detection(box(264))}  # nearer person 1's prediction, yet 0 was seen last
    assert settle(same, predicted, tracker) == {0}
    assert settle({1: Detection(box(225))}, predicted, tracker) == set()  # person 0's place, not found by 0
    assert settle({0: Detection(box(225)), 1: Detection(box(280))}, predicted, tracker) == {0, 1}
    assert settle({0: Detection(box(225, 400, 500))}, predicted, tracker) == set()  # 2.4 x the size
    alone = {0: predicted[0]}  # one track: its pass stands wherever it landed, unless its box blew up
    assert settle({0: Detection(box(400))}, alone, tracker) == {0}
    assert settle({0: Detection(box(225, 400, 500))}, alone, tracker) == set()
    assert settle({}, alone, tracker) == set()


def test_stillness_compares_the_channels_mean_of_a_small_blurred_copy():
    """The small copy Stillness compares is the mean of the three channels of the sampled, shrunk and blurred
    frame, value for value (whatever sum gives it)."""
    import cv2

    from tar_core.capture.multipose import Stillness

    rng = np.random.default_rng(11)
    for h, w in ((288, 384), (1264, 720), (99, 1000)):
        image = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
        step = max(1, w // Stillness.WIDTH)
        small = cv2.resize(image[::step, ::step], (Stillness.WIDTH, max(1, round(Stillness.WIDTH * h / w))),
                           interpolation=cv2.INTER_LINEAR)
        want = cv2.GaussianBlur(small, (3, 3), 0).astype(np.int16).mean(axis=2)
        np.testing.assert_array_equal(Stillness()._small(image), want)


def test_two_people_crossing_keep_their_ids(tmp_path):
    clip = tmp_path / "two.mp4"
    truths, _ = two_people_crossing(clip)
    tracks, stats = _track(clip)
    result = score_tracks(tracks, truths, in_view=0.75)
    assert len({r["track"] for r in result}) == 2, result
    for r in result:
        assert r["coverage"] >= 0.95 and r["switches"] == 0, result
    # At most one region pass per person and frame.
    assert stats["region_passes"] <= 2 * stats["frames"]


def test_discovery_rests_while_nothing_moves_but_finds_who_walks_in(tmp_path):
    """With one person tracked and a still background, due discoveries are skipped; someone walking in
    through the edge is found no later than the discovery cadence (every second once calm) allows."""
    clip = tmp_path / "walk_in.mp4"
    truths, fps = one_walks_in(clip)
    tracks, stats = _track(clip)
    a, b = score_tracks(tracks, truths, in_view=0.75)
    assert a["coverage"] == 1.0 and a["switches"] == 0 and b["switches"] == 0, (a, b)
    assert stats["discoveries_skipped"] >= 1, stats
    first_in_view = int(np.argmax(truths[1].visible >= 0.75))
    found = min(tracks[b["track"]][0])
    assert found <= first_in_view + round(fps) + 1, (found, first_in_view)


@pytest.mark.slow
def test_three_people_crossing_and_one_leaving(tmp_path):
    clip = tmp_path / "three.mp4"
    truths, _ = three_people(clip)
    tracks, _ = _track(clip)
    result = score_tracks(tracks, truths, in_view=0.75)
    a, b, c = result
    assert a["track"] != b["track"] and a["switches"] == 0 and b["switches"] == 0, result
    assert a["coverage"] >= 0.95 and b["coverage"] >= 0.95, result
    # The one who leaves through the frame's edge for about a second keeps their id when back.
    assert c["frames_in_view"] < len(truths[2].visible)
    assert c["coverage"] >= 0.9 and c["switches"] == 0, result


def _capture_2d(clip, out, truths):
    """``capture`` on a clip; per true person, their fitted 2D joints by frame (NaN where not fitted)."""
    res = cli("capture", clip, "-o", out)
    assert res.returncode == 0, res.stderr
    motions = {int(p.stem.split("_")[1]): read_motion(p) for p in out.glob("person_*.npz")}
    tracks = {tid: (m.frame_ids, m.bbox_xyxy) for tid, m in motions.items()}
    joints = []
    for truth, r in zip(truths, score_tracks(tracks, truths, in_view=0.75), strict=True):
        j = np.full(truth.joints_2d.shape, np.nan)
        if r["track"] in motions:
            m = motions[r["track"]]
            j[m.frame_ids] = m.joints_2d
        joints.append(j)
    return joints


@pytest.mark.slow
def test_each_person_is_fitted_as_well_as_alone(tmp_path):
    """Two people crossing: each person's 2D joint error, on the frames where they are fully in view, is within
    1 px of the error of the same motion fitted with that person alone in the clip."""
    people = crossing_people()
    truths, _ = make_clip(tmp_path / "both.mp4", people, CROSSING_WIDTH)
    both = _capture_2d(tmp_path / "both.mp4", tmp_path / "both", truths)
    limbs = [16, 17, 18, 19, 20, 21, 1, 2, 4, 5, 7, 8]
    for k, person in enumerate(people):
        clip = tmp_path / f"alone{k}.mp4"
        alone_truth, _ = make_clip(clip, [person], CROSSING_WIDTH)
        (alone,) = _capture_2d(clip, tmp_path / f"alone{k}", alone_truth)
        frames = truths[k].visible >= 0.99
        gt = truths[k].joints_2d[frames][:, limbs]
        err_both = np.linalg.norm(both[k][frames][:, limbs] - gt, axis=-1)
        err_alone = np.linalg.norm(alone[frames][:, limbs] - gt, axis=-1)
        assert not np.isnan(err_both).any() and not np.isnan(err_alone).any()
        assert frames.sum() >= 30 and err_both.mean() <= err_alone.mean() + 1.0, (k, err_both.mean(), err_alone.mean())


@pytest.fixture(scope="module")
def short_two(tmp_path_factory):
    path = tmp_path_factory.mktemp("two") / "two people.mp4"
    two_people_crossing(path, length=30)
    return path


def test_list_people_then_pick_by_id_and_at_nobody(short_two, tmp_path):
    out = tmp_path / "preview"
    res = cli("capture", short_two, "-o", out, "--list-people")
    assert res.returncode == 0, res.stderr
    info = json.loads((out / "people.json").read_text())
    assert [p["id"] for p in info["people"]] == [0, 1] and (out / "people.png").stat().st_size > 1000
    assert not list(out.glob("person_*.npz"))
    res = cli("capture", short_two, "-o", tmp_path / "nobody", "--person", "5,280")
    assert res.returncode == EXIT_CODES["no_person"], res.stderr
    assert "no person at (5, 280); the nearest is person 0 at (" in res.stderr


@pytest.mark.slow
def test_pick_by_point_fits_only_that_person_and_boxes_work_with_keypoints(short_two, tmp_path):
    # A point inside person 1's first box, as a user clicks it on the --list-people preview.
    res = cli("capture", short_two, "-o", tmp_path / "preview", "--list-people")
    assert res.returncode == 0, res.stderr
    people = {p["id"]: p for p in json.loads((tmp_path / "preview" / "people.json").read_text())["people"]}
    x0, y0, x1, y1 = people[1]["first_box"]
    res = cli("capture", short_two, "-o", tmp_path / "one", "--person", f"{(x0 + x1) / 2:.0f},{(y0 + y1) / 2:.0f}")
    assert res.returncode == 0, res.stderr
    assert [p.name for p in (tmp_path / "one").glob("person_*.npz")] == ["person_1.npz"]
    m = read_motion(tmp_path / "one" / "person_1.npz")
    boxes = {str(f): [{"box": b.tolist(), "id": 7}] for f, b in zip(m.frame_ids, m.bbox_xyxy, strict=True)}
    (tmp_path / "boxes.json").write_text(json.dumps(boxes))
    res = cli("capture", short_two, "-o", tmp_path / "boxes", "--engine", "keypoints",
              "--boxes", tmp_path / "boxes.json")
    assert res.returncode == 0, res.stderr
    mb = read_motion(tmp_path / "boxes" / "person_7.npz")
    assert np.median(np.linalg.norm(mb.joints_2d - m.joints_2d, axis=-1)) < 5.0


def test_a_new_persons_pass_is_refused_only_when_it_landed_on_someone_found():
    """Two people side by side, one's arms across the other (boxes overlapping by IoU 0.45, hips apart), are
    two people; a pass overlapping a found person as two passes on one person do, or centred on them, is not."""
    from tar_core.capture.multipose import _found_already

    left = np.array([31.0, 774, 332, 1146])  # the real duo's first frame: the landmark boxes of both dancers
    right = np.array([101.0, 711, 437, 1152])
    assert not _found_already(right, [left])
    assert not _found_already(left, [])
    assert _found_already(left + np.array([10.0, 5, 20, 0]), [left])  # the same person, a little larger
    assert _found_already(np.array([121.0, 830, 242, 1090]), [left])  # a smaller box on the same hips
    assert not _found_already(right, [left, np.array([600.0, 700, 700, 1100])])
