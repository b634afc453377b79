"""Foot contacts, the ground plane, and where planted feet should stay.

Per frame and foot point (left heel, left toe, right heel, right toe) a contact probability from the
point's speed (m/s of real time) and its height above the ground: slow and low is planted. The ground is
a plane (unit normal pointing up, camera frame, ``n . p + d = 0`` on it) through the contacts: its normal
from the contact points where they spread enough, otherwise the body's mean up direction; its offset a
low percentile of the contact points' heights. A run of contact frames of one point becomes one target
position (the probability-weighted mean of the run, put on the ground), which the solver pins.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tar_core.capture.engines.keypoints.filters import lowpass

__all__ = ["ContactConfig", "Contacts", "estimate_contacts", "ground_targets", "pin_shift", "pin_targets"]


@dataclass(frozen=True)
class ContactConfig:
    speed: float = 0.5  # m/s at which the probability is one half (0.35 found 71 % of the planted-feet walk
    # render's standing frames, 0.5 finds 95 % at 92 % precision: slide 1.43 -> 0.96 cm/frame, 2D +0.13 px)
    speed_width: float = 0.08
    height: float = 0.06  # m above the ground at which it is one half
    height_width: float = 0.02
    max_tilt_deg: float = 25.0  # a plane fitted to contacts may lean this much from the body's up
    min_spread: float = 0.4  # m: contact points must spread this far in two directions to fit a normal
    on: float = 0.5  # a point is planted where its probability is above this


@dataclass
class Contacts:
    prob: np.ndarray  # (N, 4) left heel, left toe, right heel, right toe
    ground: np.ndarray  # (4,) n (unit, up), d: n . p + d = 0 on the ground, camera frame
    method: str  # "contacts" (normal fitted), "contacts-line" (footprints along a line) or "body-up"


SPEED_CUTOFF_HZ = 4.0  # foot positions are low-passed this much before their speed is taken (at 2 Hz a 0.4 s
# stance blurred into the swings around it: the planted-feet walk's stance never read slow)
DEPTH_SPEED_WEIGHT = 0.3  # a foot's speed along its viewing ray counts this much: depth is the fit's noisiest
# direction (on the squat render 1.23 of 1.30 cm/frame of foot motion); across the ray the image holds it
MERGE_GAP_S = 0.3  # contact runs of one point this close in time are one run (one target)


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-np.clip(x, -50, 50)))


def _speed(feet: np.ndarray, times: np.ndarray) -> np.ndarray:
    """(N, 4) speed of each point in m/s (central differences on real time, lightly smoothed), its part along
    the viewing ray (camera at the origin) weighted down."""
    if len(feet) < 2:
        return np.zeros(feet.shape[:2])
    v = np.gradient(lowpass(feet, times, SPEED_CUTOFF_HZ), times, axis=0)
    ray = feet / np.linalg.norm(feet, axis=-1, keepdims=True)
    along = (v * ray).sum(-1)
    across = np.linalg.norm(v - along[..., None] * ray, axis=-1)
    return np.sqrt(across**2 + (DEPTH_SPEED_WEIGHT * along) ** 2)


def _normal(points: np.ndarray, up: np.ndarray, cfg: ContactConfig) -> tuple[np.ndarray, str]:
    """Plane normal from contact points when they spread in two directions and lean plausibly; when they
    spread along one line only (footprints of a walk), the body's up made square to that line (a body that
    leans while it walks would otherwise tilt the ground along the path, and feet far along it would read
    raised); otherwise the body's up."""
    if len(points) >= 8:
        c = points - points.mean(0)
        _, s, vt = np.linalg.svd(c, full_matrices=False)
        spread = 2 * s[:2] / np.sqrt(len(points))
        n, method = vt[2] * np.sign(vt[2] @ up), "contacts"
        if spread[1] < cfg.min_spread <= spread[0]:
            n, method = up - (up @ vt[0]) * vt[0], "contacts-line"
            n = n / np.linalg.norm(n)
        if spread[0] >= cfg.min_spread and np.degrees(np.arccos(np.clip(n @ up, -1, 1))) <= cfg.max_tilt_deg:
            return n, method
    return up, "body-up"


def estimate_contacts(joints: np.ndarray, feet: np.ndarray, times: np.ndarray,
                      cfg: ContactConfig | None = None) -> Contacts:
    """``joints`` (N, 24, 3) and ``feet`` (N, 4, 3) of the fitted body in the camera frame."""
    cfg = cfg or ContactConfig()
    up = (joints[:, 12] - joints[:, 0]).mean(0)  # pelvis -> neck, averaged: the body's up
    up = up / np.linalg.norm(up)
    speed = _speed(feet, times)
    n, method = up, "body-up"
    for _ in range(2):  # the slow, low points along the body's up, then along the plane they gave
        height = feet @ n  # up to an offset
        slow = speed < cfg.speed
        low = height < np.percentile(height, 5) + 2 * cfg.height
        cand = feet[slow & low] if (slow & low).sum() >= 3 else feet[height <= np.percentile(height, 10)]
        n, method = _normal(cand, up, cfg)
    d = -np.percentile(cand @ n, 25)
    # Each point against its own lowest level: a heel vertex stands higher on the floor than a toe tip.
    height = feet @ n - np.percentile(feet @ n, 10, axis=0)
    prob = _sigmoid((cfg.speed - speed) / cfg.speed_width) * _sigmoid((cfg.height - height) / cfg.height_width)
    return Contacts(prob=prob, ground=np.array([*n, d]), method=method)


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) of every run of True."""
    edges = np.diff(np.concatenate([[0], mask.astype(int), [0]]))
    return list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1), strict=True))


def pin_shift(feet: np.ndarray, target: np.ndarray, weight: np.ndarray, times: np.ndarray,
              cutoff_hz: float) -> np.ndarray:
    """(N, 3) translation that holds planted points at their targets: per frame the weighted mean of
    (target - point) over the planted points, faded in by their weight, then low-passed (no pops)."""
    w = weight[..., None]
    total = w.sum(1)
    shift = (w * (target - feet)).sum(1) / np.maximum(total, 1e-9) * np.minimum(total, 1.0)
    return lowpass(shift, times, cutoff_hz)


def _merged(runs: list, times: np.ndarray) -> list:
    out: list = []
    for a, b in runs:
        if out and times[a] - times[out[-1][1] - 1] <= MERGE_GAP_S:
            out[-1] = (out[-1][0], b)
        else:
            out.append((a, b))
    return out


def pin_targets(feet: np.ndarray, contacts: Contacts, times: np.ndarray, cfg: ContactConfig | None = None):
    """(N, 4, 3) targets and (N, 4) weights: each run of contact frames held at one place on the ground."""
    cfg = cfg or ContactConfig()
    target, weight = feet.copy(), np.zeros(contacts.prob.shape)
    n, d = contacts.ground[:3], contacts.ground[3]
    for k in range(feet.shape[1]):
        p = contacts.prob[:, k]
        for a, b in _merged(_runs(p > cfg.on), times):
            w = p[a:b, None] + 1e-6
            c = (w * feet[a:b, k]).sum(0) / w.sum()
            h = np.median(feet[a:b, k] @ n + d)  # the point's own height: a heel stands higher than a toe
            c = c - (c @ n + d - h) * n
            target[a:b, k] = c
            weight[a:b, k] = ((p[a:b] - cfg.on) / (1 - cfg.on)).clip(0, 1)  # from 0 at the run's ends
    return target, weight


MAX_SPREAD = 0.04  # m: across its ray, a frame's meeting with the ground this far from the run's is not in place
MIN_INLIERS = 0.5  # a run is a plant where at least this share of its seen frames are in place
GRAZING = 0.1  # |cos| between a ray and the ground's normal below which the meeting is too uncertain


def _weighted_median(points: np.ndarray, w: np.ndarray) -> np.ndarray:
    """(3,) per-axis weighted median of (n, 3) points."""
    out = np.empty(3)
    for j in range(3):
        o = np.argsort(points[:, j])
        c = np.cumsum(w[o])
        out[j] = points[o[np.searchsorted(c, 0.5 * c[-1])], j]
    return out


def ground_targets(feet: np.ndarray, contacts: Contacts, times: np.ndarray, seen: np.ndarray,
                   cfg: ContactConfig | None = None):
    """Like ``pin_targets``, but each run's place comes from where the point is *seen*: per frame its viewing
    ray (the camera at the origin) meets the plane at the point's own height above the ground in the run,
    and the run's target is the mean of the meetings in place (weighted by contact probability; ``seen``
    (N,) is 0 on rows with no landmarks). The image then fixes a planted foot's depth through the ground: a
    walking leg's forward or back is otherwise only as good as the landmarks' depth.

    Only the part of a meeting across its ray is what the image sees: along the ray, where rays graze the
    ground, a pixel of noise moves the meeting by centimetres. So a frame whose meeting lies more than
    ``MAX_SPREAD`` across the ray from the run's median is one the image sees elsewhere (a misread, a step):
    it is not pinned and does not count in the target. A run with fewer than ``MIN_INLIERS`` of its seen frames
    in place is a foot the image sees moving: it is not pinned at all. (Before, a run was dropped whole when its
    meetings spread more than 4 cm rms in any direction: on the real dance duo, feet called planted still
    moved 1.3 cm a frame, now 0.9.)"""
    cfg = cfg or ContactConfig()
    target, weight = pin_targets(feet, contacts, times, cfg)
    n, d = contacts.ground[:3], contacts.ground[3]
    rays = feet / np.linalg.norm(feet, axis=-1, keepdims=True)
    for k in range(feet.shape[1]):
        p = contacts.prob[:, k]
        for a, b in _merged(_runs(p > cfg.on), times):
            h = np.median(feet[a:b, k] @ n + d)
            cos = rays[a:b, k] @ n
            ok = (np.abs(cos) > GRAZING) & (seen[a:b] > 0)
            s = (h - d) / np.where(ok, cos, 1.0)  # distance along the ray to the plane n . x + d = h
            ok &= s > 0
            if not ok.any():
                continue
            w = p[a:b] * ok
            meet = rays[a:b, k] * s[:, None]
            off = meet - _weighted_median(meet, w)
            axis = rays[a:b, k][w.argmax()]
            across = np.linalg.norm(off - (off @ axis)[:, None] * axis, axis=1)  # what the image sees of it
            inlier = ok & (across <= MAX_SPREAD)
            if inlier.sum() < MIN_INLIERS * ok.sum():  # the image sees the foot moving: not a plant
                weight[a:b, k] = 0.0
                continue
            wi = w * inlier
            target[a:b, k] = (wi[:, None] * meet).sum(0) / wi.sum()
            weight[a:b, k] *= inlier
    return target, weight
