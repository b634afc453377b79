"""Zero-phase smoothing with its cut-off in Hz of the clip's real timestamps.

A Butterworth low-pass run forwards and backwards (no lag, no overshoot of a step's timing), on a uniform
grid at the clip's median frame interval: variable-frame-rate rows are resampled onto the grid, filtered
and read back at their own times, so 60 fps and 24 fps footage smooth alike. Rotations are filtered as
matrices and projected back onto rotations (SVD); they change little from frame to frame, so this is the
filter of the rotation itself to well within a degree.
"""

from __future__ import annotations

import numpy as np

__all__ = ["lowpass", "lowpass_rotations", "nearest_rotation"]

ORDER = 2


def _grid(times: np.ndarray) -> np.ndarray | None:
    """A uniform time grid over ``times`` (None when the rows already are one)."""
    dt = np.diff(times)
    step = float(np.median(dt))
    if np.allclose(dt, step, rtol=1e-3, atol=1e-6):
        return None
    return times[0] + step * np.arange(int(np.floor((times[-1] - times[0]) / step + 1e-6)) + 1)


def lowpass(x: np.ndarray, times: np.ndarray, cutoff_hz: float) -> np.ndarray:
    """Zero-phase low-pass of ``x`` (N, ...) sampled at ``times`` (N,), cut-off in Hz."""
    from scipy.signal import butter, sosfiltfilt

    x = np.asarray(x, dtype=np.float64)
    times = np.asarray(times, dtype=np.float64)
    if len(x) < 4 or cutoff_hz <= 0:
        return x.copy()
    grid = _grid(times)
    t = times if grid is None else grid
    flat = x.reshape(len(x), -1)
    if grid is not None:
        flat = np.stack([np.interp(grid, times, c) for c in flat.T], 1)
    fs = 1.0 / float(np.median(np.diff(t)))
    if cutoff_hz >= 0.45 * fs:
        return x.copy()
    sos = butter(ORDER, cutoff_hz, fs=fs, output="sos")
    pad = min(len(flat) - 1, int(round(fs / cutoff_hz)))  # mirror about a second of motion at the ends
    out = sosfiltfilt(sos, flat, axis=0, padtype="odd", padlen=pad)
    if grid is not None:
        out = np.stack([np.interp(times, grid, c) for c in out.T], 1)
    return np.ascontiguousarray(out.reshape(x.shape))


def nearest_rotation(M: np.ndarray) -> np.ndarray:
    """(..., 3, 3) the rotation closest to each matrix (Frobenius), by SVD."""
    U, _, Vt = np.linalg.svd(M)
    d = np.sign(np.linalg.det(U @ Vt))
    U = U.copy()
    U[..., :, 2] *= d[..., None]
    return U @ Vt


def lowpass_rotations(R: np.ndarray, times: np.ndarray, cutoff_hz: float) -> np.ndarray:
    """Zero-phase low-pass of rotation matrices (N, ..., 3, 3)."""
    return nearest_rotation(lowpass(R, times, cutoff_hz))

