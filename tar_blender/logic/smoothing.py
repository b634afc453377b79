"""Zero-phase smoothing of motion curves (numpy only).

A Gaussian kernel applied as a centred (symmetric) convolution has no phase lag: peaks stay on
their frame, unlike a causal filter. Ends are padded by odd reflection (2·x₀ − x₍ₖ₎), which keeps a
steady trend at the clip's ends instead of pulling it towards zero or flattening it.

Rotations are smoothed as quaternions: first made hemisphere-consistent along time (q and −q are
the same rotation; averaging across a sign flip would cancel), then filtered per component and
renormalised, which is the weighted chordal mean of nearby rotations.
"""

from __future__ import annotations

import numpy as np

from .rotations import continuous_quaternions

__all__ = ["gaussian_kernel", "smooth_quaternions", "smooth_series"]


def gaussian_kernel(sigma: float) -> np.ndarray:
    """Normalised, symmetric kernel of radius ceil(3 sigma); [1.0] for sigma <= 0."""
    if sigma <= 0:
        return np.ones(1)
    r = max(1, int(np.ceil(3.0 * sigma)))
    x = np.arange(-r, r + 1, dtype=np.float64)
    k = np.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


def smooth_series(x: np.ndarray, sigma: float, axis: int = 0) -> np.ndarray:
    """Zero-phase Gaussian smoothing of ``x`` along ``axis`` (time); sigma in samples, 0 = unchanged."""
    x = np.asarray(x, dtype=np.float64)
    k = gaussian_kernel(sigma)
    n = x.shape[axis]
    if len(k) == 1 or n < 2:
        return x.copy()
    r = len(k) // 2
    xt = np.moveaxis(x, axis, 0)
    r_pad = min(r, n - 1)  # odd reflection needs samples to reflect
    head = 2 * xt[:1] - xt[1 : r_pad + 1][::-1]
    tail = 2 * xt[-1:] - xt[-r_pad - 1 : -1][::-1]
    padded = np.concatenate([head, xt, tail], axis=0)
    if r_pad < r:  # very short clips: hold the end values beyond the reflection
        padded = np.concatenate([np.repeat(padded[:1], r - r_pad, 0), padded, np.repeat(padded[-1:], r - r_pad, 0)])
    out = np.zeros_like(xt)
    for i, w in enumerate(k):  # a small kernel over many channels: shifted sums are fast and exact
        out += w * padded[i : i + n]
    return np.moveaxis(out, 0, axis)


def smooth_quaternions(q: np.ndarray, sigma: float, axis: int = 0) -> np.ndarray:
    """(..., 4) quaternions smoothed along ``axis``: hemisphere-consistent, filtered, unit length.

    The result keeps the (continuous) sign of the input's first sample.
    """
    q = continuous_quaternions(np.asarray(q, dtype=np.float64), axis=axis)
    if sigma <= 0:
        return q
    s = smooth_series(q, sigma, axis=axis)
    norm = np.linalg.norm(s, axis=-1, keepdims=True)
    return s / np.where(norm < 1e-12, 1.0, norm)
