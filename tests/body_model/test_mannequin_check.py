"""``scripts/make_mannequin.py --check``: a regenerated mannequin is the committed one when every array is equal
and the faces differ at most by the diagonal of a quad (anny's shortest-diagonal split, decided by rounding)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tests.scripts_loader import load_script

ROOT = Path(__file__).resolve().parents[2]


def _script():
    return load_script("make_mannequin")


def _committed() -> dict:
    with np.load(ROOT / "tar_core" / "body_model" / "data" / "mannequin.npz", allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def test_a_quad_split_along_its_other_diagonal_is_the_same_mannequin():
    mq = _script()
    old = _committed()
    assert mq.same_mannequin(old, old) == (True, "the same but for 0 quads split along the other diagonal")
    new = dict(old, f=old["f"].copy())
    a, b, c, d = 0, 1, 2, 3  # quad (a, b, c, d) split along a-c, then along b-d
    pair_ac, pair_bd = np.array([[a, b, c], [a, c, d]]), np.array([[b, c, d], [b, d, a]])
    old["f"] = old["f"].copy()
    old["f"][:2], new["f"][:2] = pair_ac, pair_bd
    assert mq.quads_split_otherwise(old["f"], new["f"]) == 1
    assert mq.same_mannequin(old, new)[0]


def test_another_change_is_a_mismatch():
    mq = _script()
    old = _committed()
    moved = dict(old, v_template=old["v_template"] + np.float32(1e-6))
    assert mq.same_mannequin(old, moved) == (False, "v_template differs")
    other = dict(old, f=old["f"].copy())
    other["f"][0] = [0, 1, 2]
    other["f"][1] = [5, 6, 7]  # no longer one quad
    assert mq.same_mannequin(old, other) == (False, "f differs beyond quad diagonals")
