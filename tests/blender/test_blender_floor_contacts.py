"""The add-on's side of contacts and the ground plane (numpy logic; no Blender needed): the reader accepts
and checks the optional keys, the floor transform puts the ground at z = 0, contacts become curves."""

from __future__ import annotations

import numpy as np
import pytest

from tar_blender.logic.camera import floor_matrix
from tar_blender.logic.keys import contact_curves
from tar_blender.logic.motion import MotionError, read_motion
from tar_core.motion_file import read_motion as engine_read_motion
from tar_core.motion_file import write_motion


def _motion_with_extras(tmp_path, contacts=None, ground=None):
    from tests.blender.test_blender_logic import _engine_motion

    m = _engine_motion()
    n = m.num_frames
    m.contacts = np.linspace(0, 1, 4 * n).reshape(n, 4) if contacts is None else contacts
    m.ground_plane = np.array([0.0, -np.cos(0.3), np.sin(0.3), 1.5]) if ground is None else ground
    m.poses_raw, m.trans_raw = m.poses.copy(), m.trans.copy()
    return m


def test_reader_accepts_contacts_and_ground_plane(tmp_path):
    m = _motion_with_extras(tmp_path)
    path = write_motion(tmp_path / "p.npz", m)
    d = read_motion(path)
    np.testing.assert_allclose(d.contacts, m.contacts, atol=1e-6)
    np.testing.assert_allclose(d.ground_plane, m.ground_plane, atol=1e-6)
    e = engine_read_motion(path)
    assert e.poses_raw.shape == e.poses.shape and e.trans_raw.shape == e.trans.shape


def test_bad_contacts_or_ground_are_refused(tmp_path):
    good = write_motion(tmp_path / "p.npz", _motion_with_extras(tmp_path))
    with np.load(good) as z:
        a = {k: z[k] for k in z.files}
    for key, value in (("contacts", a["contacts"] * 2), ("ground_plane", np.array([0, 2.0, 0, 1], np.float32))):
        np.savez(tmp_path / "bad.npz", **{**a, key: value})
        with pytest.raises(MotionError, match=key):
            read_motion(tmp_path / "bad.npz")


def test_floor_matrix_puts_the_ground_at_z_zero():
    rng = np.random.default_rng(0)
    n = np.array([0.1, -0.9, 0.35])
    n /= np.linalg.norm(n)
    d = 1.4
    # Points on the plane, in the camera frame, mapped to Blender's default placement (x, z, -y).
    e1 = np.cross(n, [1.0, 0, 0])
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(n, e1)
    pts = -d * n + rng.normal(size=(20, 1)) * e1 + rng.normal(size=(20, 1)) * e2
    blender = np.stack([pts[:, 0], pts[:, 2], -pts[:, 1]], 1)
    M = floor_matrix([*n, d])
    out = blender @ M[:3, :3].T + M[:3, 3]
    assert np.abs(out[:, 2]).max() < 1e-9
    up = M[:3, :3] @ np.array([n[0], n[2], -n[1]])
    np.testing.assert_allclose(up, [0, 0, 1], atol=1e-12)
    head = M[:3, :3] @ np.array([0.0, 1.0, 0.0])  # the camera's view keeps its heading
    assert head[1] > 0.9 and abs(head[0]) < 0.2


def test_contact_curves_layout():
    c = np.array([[0.0, 0.2, 0.9, 1.0], [0.1, 0.3, 0.8, 0.7]])
    curves = contact_curves(c, np.array([1.0, 2.0]))
    assert [cv.data_path for cv in curves] == ['["tar_contact_left_heel"]', '["tar_contact_left_toe"]',
                                              '["tar_contact_right_heel"]', '["tar_contact_right_toe"]']
    np.testing.assert_allclose(curves[2].co, [1.0, 0.9, 2.0, 0.8], atol=1e-6)
