"""The motion file: round trip, atomic writes, validation naming the bad key, CLI exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tar_core.geometry import camera
from tar_core.motion_file import (
    Motion,
    MotionFileError,
    read_motion,
    validate_arrays,
    validate_file,
    write_motion,
)


def make_motion(n: int = 12, seed: int = 0) -> Motion:
    rng = np.random.default_rng(seed)
    K = camera.intrinsics(800.0, (320.0, 240.0))
    joints = rng.normal(0, 0.3, (n, 24, 3)) + np.array([0, 0, 4.0])
    return Motion(
        poses=rng.normal(0, 0.2, (n, 72)), trans=rng.normal(0, 1, (n, 3)), betas=rng.normal(0, 1, 10),
        frame_ids=np.arange(n) * 2, frame_times=np.arange(n) / 15.0, image_size=np.array([640, 480]),
        camera_intrinsics=K, bbox_xyxy=np.tile([10.0, 20.0, 200.0, 400.0], (n, 1)), joints_cam=joints,
        joints_2d=camera.project(joints, K), confidence=rng.uniform(0, 1, n), mocap_framerate=15.0,
        track_id=3, engine="keypoints", body_model="mannequin",
        provenance=json.dumps({"engine_version": "test"}),
    )  # fmt: skip


def test_round_trip_keeps_values_and_contract_dtypes(tmp_path):
    m = make_motion()
    path = write_motion(tmp_path / "person_3.npz", m)
    back = read_motion(path)
    assert back.num_frames == 12 and back.track_id == 3 and back.engine == "keypoints"
    np.testing.assert_allclose(back.poses, m.poses, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(back.frame_ids, m.frame_ids)
    assert back.poses.dtype == np.float32 and back.frame_times.dtype == np.float64
    assert back.frame_ids.dtype == np.int64 and back.image_size.dtype == np.int32
    with np.load(path, allow_pickle=False) as z:  # AMASS-style readers find their keys
        assert float(z["mocap_framerate"]) == float(z["mocap_frame_rate"]) == 15.0
        assert str(z["format"]) == "tar-motion" and int(z["format_version"]) == 1
        assert {"poses", "trans", "betas", "gender"} <= set(z.files)
    assert back.provenance_dict == {"engine_version": "test"}


def test_write_is_atomic_and_leaves_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "p.npz"
    write_motion(path, make_motion(seed=1))
    before = path.read_bytes()

    def broken_savez(fh, **arrays):
        fh.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(OSError):
        write_motion(path, make_motion(seed=2))
    assert path.read_bytes() == before  # the old file is untouched
    assert sorted(os.listdir(tmp_path)) == ["p.npz"]  # no temporary left behind


def _arrays(m: Motion) -> dict:
    return m.to_arrays()


@pytest.mark.parametrize(
    ("key", "mutate"),
    [
        ("poses", lambda a: a.__setitem__("poses", a["poses"][:, :69])),
        ("trans", lambda a: a.__setitem__("trans", a["trans"][:-1])),
        ("betas", lambda a: a.pop("betas")),
        ("joints_cam", lambda a: a["joints_cam"].__setitem__((0, 0, 0), np.nan)),
        ("frame_times", lambda a: a.__setitem__("frame_times", a["frame_times"][::-1].copy())),
        ("frame_ids", lambda a: a.__setitem__("frame_ids", a["frame_ids"].astype(np.float32))),
        ("engine", lambda a: a.__setitem__("engine", np.array("magic"))),
        ("body_model", lambda a: a.__setitem__("body_model", np.array(3))),
        ("format_version", lambda a: a.__setitem__("format_version", np.array(2))),
        ("confidence", lambda a: a.__setitem__("confidence", a["confidence"] + 2)),
        ("camera_intrinsics", lambda a: a["camera_intrinsics"].__setitem__((2, 2), 5.0)),
        ("provenance", lambda a: a.__setitem__("provenance", np.array("{not json"))),
        ("mocap_frame_rate", lambda a: a.__setitem__("mocap_frame_rate", np.array(25.0))),
    ],
)
def test_validator_names_the_bad_key(key, mutate):
    arrays = _arrays(make_motion())
    mutate(arrays)
    with pytest.raises(MotionFileError) as err:
        validate_arrays(arrays)
    assert err.value.key == key
    assert key in str(err.value)


def test_reader_refuses_pickled_objects_and_garbage(tmp_path):
    arrays = _arrays(make_motion())
    arrays["poses"] = np.array([{"x": 1}], dtype=object)
    bad = tmp_path / "objects.npz"
    np.savez(bad, **arrays)
    with pytest.raises(MotionFileError, match="Python objects"):
        read_motion(bad)
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip file at all")
    with pytest.raises(MotionFileError, match="unreadable"):
        validate_file(junk)
    with pytest.raises(MotionFileError, match="does not exist"):
        read_motion(tmp_path / "missing.npz")


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "tar_core", *args], capture_output=True, text=True,
                          timeout=120)


def test_cli_validate_exit_codes(tmp_path):
    good = write_motion(tmp_path / "good file é.npz", make_motion())
    ok = _cli("motion", "validate", str(good))
    assert ok.returncode == 0, ok.stderr
    assert "12 frames" in ok.stdout
    arrays = _arrays(make_motion())
    arrays["joints_2d"] = arrays["joints_2d"][:, :10]
    bad = tmp_path / "bad.npz"
    np.savez(bad, **arrays)
    res = _cli("motion", "validate", str(bad))
    assert res.returncode == 3
    assert "joints_2d" in res.stderr
