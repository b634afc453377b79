"""The zero-phase low-pass (``keypoints.filters``): the same numbers as scipy's ``butter`` + ``sosfiltfilt`` over
an odd extension about lines fitted to the ends, without importing ``scipy.signal`` (its import alone costs
~0.8 s of every capture)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.signal import butter, sosfiltfilt

from tar_core.capture.engines.keypoints import filters as F
from tar_core.geometry.rotations import axis_angle_to_matrix, matrix_to_axis_angle


@pytest.mark.parametrize("cutoff, fs", [(4.0, 30.0), (2.0, 24.0), (6.0, 60.0), (10.0, 23.976)])
def test_the_design_is_butterworths(cutoff, fs):
    b, a = F.butter_lowpass(cutoff, fs)
    assert np.allclose(np.concatenate([b, a]), butter(2, cutoff, fs=fs, output="sos")[0], rtol=0, atol=1e-13)


def _reference(x: np.ndarray, fs: float, cutoff: float) -> np.ndarray:
    """scipy's filtfilt of the odd extension about lines fitted to the ends (``np.polyfit``), started from the
    steady state of each pass's first sample (``padtype=None`` on the extended signal)."""
    n = len(x)
    pad = min(n - 1, int(round(fs / cutoff)))
    m = max(2, pad)
    fit = np.polyfit(np.arange(m), x[:m], 1)  # (2, C)
    start = fit[1][None]  # the line's value at the first row
    fit_end = np.polyfit(np.arange(m), x[::-1][:m], 1)
    end = fit_end[1][None]
    ext = np.concatenate([2 * start - x[pad:0:-1], x, 2 * end - x[-2: -pad - 2: -1]])
    y = sosfiltfilt(butter(2, cutoff, fs=fs, output="sos"), ext, axis=0, padtype=None)
    return y[pad: len(y) - pad]


# Lengths around the block size (64), a length shorter than the padding, and a long one.
@pytest.mark.parametrize("n", [4, 5, 63, 64, 65, 129, 1000])
def test_the_filter_is_sosfiltfilts_over_an_odd_extension_about_fitted_ends(n):
    rng = np.random.default_rng(n)
    x = np.cumsum(rng.normal(size=(n, 5)), 0)  # (N, C) a random walk per column
    fs, cutoff = 30.0, 4.0
    times = np.arange(n) / fs
    ref = _reference(x, fs, cutoff)
    np.testing.assert_allclose(F.lowpass(x, times, cutoff), ref, rtol=0, atol=1e-9 * np.abs(ref).max())
    x3 = x.reshape(n, 5, 1) * np.ones(3)  # more axes are filtered alike
    np.testing.assert_allclose(F.lowpass(x3, times, cutoff)[..., 2], ref, rtol=0, atol=1e-9 * np.abs(ref).max())


def test_an_error_on_the_first_or_last_frame_does_not_pass_through():
    """A detector's miss on a clip's first and last frames: mirrored about those frames themselves, the
    output would meet them exactly; about the fitted ends it stays near the true path."""
    n, fs, cutoff = 60, 30.0, 4.0
    times = np.arange(n) / fs
    line = (0.5 + 0.8 * times)[:, None]  # (N, 1) a steady drift
    x = line.copy()
    x[0] += 0.3
    x[-1] -= 0.3
    y = F.lowpass(x, times, cutoff)
    assert abs(y[0, 0] - line[0, 0]) < 0.6 * 0.3 and abs(y[-1, 0] - line[-1, 0]) < 0.6 * 0.3  # (about itself: 0.3)
    np.testing.assert_allclose(F.lowpass(line, times, cutoff), line, atol=1e-3)  # a line stays itself
    accel = np.abs(np.diff(y[:, 0], 2)).max()
    accel_self = np.abs(np.diff(sosfiltfilt(butter(2, cutoff, fs=fs, output="sos"), x, axis=0, padtype="odd",
                                            padlen=8)[:, 0], 2)).max()
    assert accel < 0.6 * accel_self


def test_a_constant_stays_constant_and_nothing_imports_scipy_signal():
    code = ("import sys, numpy as np; from tar_core.capture.engines.keypoints.filters import lowpass; "
            "y = lowpass(np.full((50, 3), 2.5), np.arange(50) / 30.0, 4.0); "
            "print(float(np.abs(y - 2.5).max()), 'scipy.signal' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[2]).stdout.split()
    assert float(out[0]) < 1e-12 and out[1] == "False"


def _off(R: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """(N, 3) axis-angle from each rotation of the truth (N, 3, 3) to R's."""
    return matrix_to_axis_angle(np.swapaxes(truth, -1, -2) @ R)


def test_complementary_rotations_take_the_slow_part_from_the_fit_and_the_fast_from_the_start():
    """A joint swinging at 1.5 Hz, seen by a steady estimate 12 degrees off (its error drifting slowly) and by a
    fit on the truth with 3 degrees of frame-to-frame noise: merged, the error is far below the estimate's, and
    the error's frame-to-frame acceleration far below that of the fit low-passed on its own."""
    n, fs, cutoff = 90, 30.0, 4.0
    times = np.arange(n) / fs
    rng = np.random.default_rng(0)
    swing = np.zeros((n, 3))
    swing[:, 2] = 0.8 * np.sin(2 * np.pi * 1.5 * times)
    truth = axis_angle_to_matrix(swing)  # (N, 3, 3)
    bias = np.zeros((n, 3))
    bias[:, 0] = np.radians(12) * (1.0 + 0.3 * np.sin(2 * np.pi * 0.2 * times))
    start = truth @ axis_angle_to_matrix(bias)
    fit = truth @ axis_angle_to_matrix(rng.normal(0, np.radians(3) / np.sqrt(3), (n, 3)))
    merged = F.complementary_rotations(start, fit, times, cutoff, 2.5)
    plain = F.lowpass_rotations(fit, times, cutoff)
    err = np.degrees(np.linalg.norm(_off(merged, truth), axis=-1))
    assert err.mean() < 2.0, err.mean()  # the start's 12 degrees gone (1.5 left: noise under 2.5 Hz)

    def accel(R):  # mean degrees per frame^2 of the error
        d = _off(R, truth)
        return np.degrees(np.linalg.norm(d[2:] - 2 * d[1:-1] + d[:-2], axis=-1)).mean()

    assert accel(merged) < 0.6 * accel(plain), (accel(merged), accel(plain))
    np.testing.assert_allclose(F.complementary_rotations(start, fit, times, cutoff, cutoff), plain)
