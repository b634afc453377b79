"""The zero-phase low-pass (``keypoints.filters``): the same numbers as scipy's ``butter`` + ``sosfiltfilt``,
without importing ``scipy.signal`` (its import alone costs ~0.8 s of every capture)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.signal import butter, sosfiltfilt

from tar_core.capture.engines.keypoints import filters as F


@pytest.mark.parametrize("cutoff, fs", [(4.0, 30.0), (2.0, 24.0), (6.0, 60.0), (10.0, 23.976)])
def test_the_design_is_butterworths(cutoff, fs):
    b, a = F.butter_lowpass(cutoff, fs)
    assert np.allclose(np.concatenate([b, a]), butter(2, cutoff, fs=fs, output="sos")[0], rtol=0, atol=1e-13)


# Lengths around the block size (64), a length shorter than the padding, and a long one.
@pytest.mark.parametrize("n", [4, 5, 63, 64, 65, 129, 1000])
def test_the_filter_is_sosfiltfilts_with_odd_padding(n):
    rng = np.random.default_rng(n)
    x = np.cumsum(rng.normal(size=(n, 5)), 0)  # (N, C) a random walk per column
    fs, cutoff = 30.0, 4.0
    times = np.arange(n) / fs
    pad = min(n - 1, int(round(fs / cutoff)))
    ref = sosfiltfilt(butter(2, cutoff, fs=fs, output="sos"), x, axis=0, padtype="odd", padlen=pad)
    np.testing.assert_allclose(F.lowpass(x, times, cutoff), ref, rtol=0, atol=1e-9 * np.abs(ref).max())
    x3 = x.reshape(n, 5, 1) * np.ones(3)  # more axes are filtered alike
    np.testing.assert_allclose(F.lowpass(x3, times, cutoff)[..., 2], ref, rtol=0, atol=1e-9 * np.abs(ref).max())


def test_a_constant_stays_constant_and_nothing_imports_scipy_signal():
    code = ("import sys, numpy as np; from tar_core.capture.engines.keypoints.filters import lowpass; "
            "y = lowpass(np.full((50, 3), 2.5), np.arange(50) / 30.0, 4.0); "
            "print(float(np.abs(y - 2.5).max()), 'scipy.signal' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[2]).stdout.split()
    assert float(out[0]) < 1e-12 and out[1] == "False"
