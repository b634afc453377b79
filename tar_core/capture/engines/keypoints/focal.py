"""Focal length from the landmarks' 2D/3D consistency, when the user gives none.

MediaPipe's world landmarks are a metric 3D body; its image landmarks are that body seen through the
camera. A rigid pose of the 3D body explains the 2D points only with the right amount of perspective
(near parts larger than far ones): per frame the best rigid pose is found for each candidate focal
length (PnP), and the focal length whose poses leave the smallest reprojection error over the clip wins.
Scale does not matter (a larger body farther away projects the same), only the body's depth structure.
When the error hardly changes with the focal length (a far or flat-on person), the estimate is not
trusted and the default (the image diagonal) is kept; ``FocalEstimate.method`` says which.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

__all__ = ["FocalEstimate", "estimate_focal"]

BODY_POINTS = (0, 7, 8, 11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32)
GRID = np.exp(np.linspace(np.log(0.35), np.log(4.0), 21))  # candidates, x the image diagonal
MAX_FRAMES = 24
MIN_CONTRAST = 0.04  # the error curve must rise by 4% within x/÷ 1.6 of its minimum to be trusted


@dataclass(frozen=True)
class FocalEstimate:
    focal: float  # pixels
    method: str  # "given", "fov", "35mm", "landmarks" or "default"
    detail: dict

    def provenance(self) -> dict:
        return {"focal_px": round(self.focal, 2), **{f"focal_{k}": v for k, v in asdict(self).items() if k != "focal"}}


def _frames(vis: np.ndarray) -> np.ndarray:
    """Up to MAX_FRAMES frames spread over the clip, where most body points are seen."""
    good = np.flatnonzero((vis[:, BODY_POINTS] > 0.5).sum(1) >= 12)
    if len(good) > MAX_FRAMES:
        good = good[np.linspace(0, len(good) - 1, MAX_FRAMES).round().astype(int)]
    return good


def _pnp_error(obj: np.ndarray, img: np.ndarray, focal: float, centre: tuple[float, float]) -> float:
    """RMS reprojection error (pixels) of the best rigid pose of ``obj`` seen as ``img``."""
    import cv2

    K = np.array([[focal, 0, centre[0]], [0, focal, centre[1]], [0, 0, 1]], dtype=np.float64)
    ok, rvec, tvec = cv2.solvePnP(obj, img, K, None, flags=cv2.SOLVEPNP_EPNP)
    if not ok or tvec[2, 0] <= 0:
        return np.inf
    ok, rvec, tvec = cv2.solvePnP(obj, img, K, None, rvec, tvec, useExtrinsicGuess=True,
                                  flags=cv2.SOLVEPNP_ITERATIVE)
    proj, _ = cv2.projectPoints(obj, rvec, tvec, K, None)
    return float(np.sqrt(((proj[:, 0] - img) ** 2).sum(1).mean()))


def _error_curve(xy, vis, world, frames, diag, centre, stop) -> np.ndarray:
    """(len(GRID),) median over frames of the PnP error relative to the person's size."""
    errs = np.full((len(GRID), len(frames)), np.inf)
    for k, i in enumerate(frames):
        stop.check()
        sel = [p for p in BODY_POINTS if vis[i, p] > 0.5]
        obj, img = world[i, sel].astype(np.float64), xy[i, sel].astype(np.float64)
        size = max(np.ptp(img[:, 0]), np.ptp(img[:, 1]), 1.0)
        for g, scale in enumerate(GRID):
            errs[g, k] = _pnp_error(obj, img, scale * diag, centre) / size
    return np.median(errs, axis=1)


def estimate_focal(xy: np.ndarray, vis: np.ndarray, world: np.ndarray, width: int, height: int, stop) -> FocalEstimate:
    """Estimate the focal length (pixels) of a clip from one person's landmarks (N, 33, ...)."""
    diag = float(np.hypot(width, height))
    frames = _frames(vis)
    if len(frames) < 3:
        return FocalEstimate(diag, "default", {"reason": "too few well-seen frames"})
    curve = _error_curve(xy, vis, world, frames, diag, (width / 2, height / 2), stop)
    best = int(np.argmin(curve))
    near = [g for g in range(len(GRID)) if abs(np.log(GRID[g] / GRID[best])) <= np.log(1.6) + 1e-9]
    contrast = float(min(curve[near[0]], curve[near[-1]]) / curve[best] - 1) if len(near) > 1 else 0.0
    scale = GRID[best]
    if 0 < best < len(GRID) - 1:  # parabola through the minimum and its neighbours, in log focal
        y0, y1, y2 = curve[best - 1: best + 2]
        den = y0 - 2 * y1 + y2
        step = np.log(GRID[1] / GRID[0])
        scale = GRID[best] * np.exp(np.clip(0.5 * (y0 - y2) / den, -0.5, 0.5) * step) if den > 0 else scale
    detail = {"frames": int(len(frames)), "contrast": round(contrast, 4), "at_grid_edge": best in (0, len(GRID) - 1),
              "relative_error": round(float(curve[best]), 5)}
    if contrast < MIN_CONTRAST or detail["at_grid_edge"]:
        return FocalEstimate(diag, "default", {**detail, "candidate_px": round(float(scale * diag), 1)})
    return FocalEstimate(float(scale * diag), "landmarks", detail)
