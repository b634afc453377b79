"""``capture.assignment`` (the tracker's Hungarian method) and the keypoints engine's shape fit, both written here
so that a capture never imports ``scipy.optimize``: the same answers as scipy's, and the import stays out."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.optimize import least_squares, linear_sum_assignment

from tar_core.body_model import load_body_model
from tar_core.capture.assignment import max_assignment
from tar_core.capture.engines.keypoints import shape

ROOT = Path(__file__).resolve().parents[2]


def test_the_assignment_is_as_good_as_scipys():
    rng = np.random.default_rng(0)
    for t in range(600):
        n, m = rng.integers(1, 8, 2)
        s = rng.random((n, m)) if t % 2 else rng.integers(0, 3, (n, m)).astype(float)  # ties too
        if t % 3 == 0:
            s = np.where(s > 0.5, s, 0.0)  # gated, as the tracker gives it
        rows, cols = max_assignment(s)
        want_r, want_c = linear_sum_assignment(s, maximize=True)
        assert s[rows, cols].sum() == pytest.approx(s[want_r, want_c].sum(), abs=1e-12)
        assert len(rows) == min(n, m) and len(set(cols.tolist())) == len(cols) and np.all(np.diff(rows) > 0)


def test_the_assignment_of_nothing_and_of_bad_input():
    for shape_ in ((0, 3), (3, 0), (0, 0)):
        rows, cols = max_assignment(np.zeros(shape_))
        assert rows.size == cols.size == 0
    with pytest.raises(ValueError, match="finite 2-D"):
        max_assignment(np.array([[np.nan, 1.0]]))
    rows, cols = max_assignment([[0.1, 0.9], [0.8, 0.7]])
    assert rows.tolist() == [0, 1] and cols.tolist() == [1, 0]


def test_the_shape_fit_finds_scipys_optimum():
    body = load_body_model()
    A, D = shape._length_terms(body.j_template.double().numpy(), body.j_shapedirs.double().numpy())
    rng = np.random.default_rng(1)
    for _ in range(30):
        target = np.linalg.norm(A + D @ rng.normal(0, 1.5, 10), axis=-1) * rng.uniform(0.8, 1.25)
        valid = rng.random(len(A)) > 0.2
        if valid.sum() < 4:
            continue

        def residual(beta, valid=valid, target=target):
            return np.concatenate([(np.linalg.norm(A + D @ beta, axis=-1) - target)[valid],
                                   np.sqrt(shape.W_PRIOR) * beta])

        want = least_squares(residual, np.zeros(10), method="lm", max_nfev=200).x
        got = shape._levenberg_marquardt(A[valid], D[valid], target[valid], np.sqrt(shape.W_PRIOR))
        np.testing.assert_allclose(got, want, atol=1e-5)


def test_tracking_and_the_keypoints_fit_do_not_import_scipy_optimize():
    code = ("import sys, tar_core.capture.tracking, tar_core.capture.engines.keypoints, tar_core.capture.pipeline; "
            "print('scipy.optimize' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "False"
