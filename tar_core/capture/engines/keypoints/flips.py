"""Front/back flips of MediaPipe's landmarks, undone by keeping the track consistent over time.

One picture of a person cannot tell facing the camera from facing away: the same image points fit a body
turned round with left and right exchanged and depth reversed. MediaPipe decides from appearance and, when
the body is half hidden or blurred, sometimes decides wrongly for a few frames: every left landmark then
carries the right one's label (in the image and in the world landmarks) and the world landmarks' depth is
mirrored. Fitted as seen, the body spins round by ~180 degrees and back within a frame or two.

A person cannot turn that fast, so per observed row we choose between the landmarks as given and their
flipped reading (labels exchanged, world depth negated about the hips) by dynamic programming (Viterbi):
the path's cost is how far the world landmarks jump between consecutive rows, plus a small price per second
spent on flipped readings, so that MediaPipe is believed wherever its landmarks move continuously. A real
turn moves them continuously and is left alone; a flip is a jump and is undone (a flip at the start of a
track as well: the rows after it outvote it). MediaPipe smooths its landmarks, so some of its flips are not
jumps but turns no person could make (180 degrees within a frame): turning faster than two turns a second
pays a price per radian too (``TURN_PRICE_PER_RAD``).

Another estimate of the person (the tar engine's network) may give the way the body faces per row: a reading
that faces more than 90 degrees away from it then pays a price per second too (``FACING_PRICE_PER_S``), so a
long flipped stretch that MediaPipe holds continuously can be overturned; a body seen side-on, whose two
readings face alike, is left to the landmarks.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from tar_core.capture.engines.keypoints.landmarks import TrackArrays

__all__ = ["FLIP_PAIRS", "choose_readings", "facing", "flip_landmarks", "flipped_rows", "unflip"]

# Left/right BlazePose landmark pairs (eyes inner/centre/outer, ears, mouth, and the body's points).
FLIP_PAIRS = ((1, 4), (2, 5), (3, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16), (17, 18), (19, 20),
              (21, 22), (23, 24), (25, 26), (27, 28), (29, 30), (31, 32))
_SWAP = np.arange(33)
for _a, _b in FLIP_PAIRS:
    _SWAP[_a], _SWAP[_b] = _b, _a
# The points compared between rows: shoulders, elbows, wrists, hips, knees, ankles.
_BODY = np.array([11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28])
# Price of a flipped reading, metres of mean landmark jump per second of flipped rows: a flip's two jumps
# (~0.2-0.4 m each) outweigh flipped stretches of up to ~2-4 s; a smooth track never pays it.
PRICE_PER_S = 0.15
# Price of a reading facing opposite another estimate's, metres per second of such rows (times the cosine of the
# angle past 90 degrees): a flipped stretch of ~0.3 s or more that the other estimate contradicts is overturned.
FACING_PRICE_PER_S = 1.5
# Fastest turn of a person (a pirouette at two turns a second), and the price per radian a reading pays for
# turning faster than that between rows: MediaPipe smooths its own landmarks, so it can read a body the other
# way round without a jump (it turns the body 180 degrees within a frame instead), which the jump alone took
# for a real turn. On the 256-pixel held-out renders: keypoints engine ACCEL 18.1 -> 10.3 mm/frame², 2D
# 10.65 -> 9.45 px; tar engine ACCEL 11.6 -> 9.3; the development renders unchanged (0.1 and 0.3 alike).
MAX_TURN_RAD_S = 4 * np.pi
TURN_PRICE_PER_RAD = 0.1


def _flip_world(world: np.ndarray) -> np.ndarray:
    """World landmarks (..., 33, 3) with left and right exchanged and the depth (z, hip-centred) negated."""
    out = world[..., _SWAP, :].copy()
    out[..., 2] *= -1.0
    return out


def facing(world: np.ndarray) -> np.ndarray:
    """(..., 3) unit vector the body faces, from world landmarks (..., 33, 3): across the shoulders and hips, square
    to the hips-to-shoulders direction (the body model's forward axis, +z of its pelvis)."""
    across = world[..., 12, :] + world[..., 24, :] - world[..., 11, :] - world[..., 23, :]  # left to right
    up = world[..., 11, :] + world[..., 12, :] - world[..., 23, :] - world[..., 24, :]
    f = np.cross(up, across)
    return f / np.maximum(np.linalg.norm(f, axis=-1, keepdims=True), 1e-9)


def _turn_cost(face: np.ndarray, dt: np.ndarray) -> np.ndarray:
    """(N-1, 2, 2) price of turning from reading a of row i to reading b of row i + 1 faster than a person can
    (``MAX_TURN_RAD_S``): ``TURN_PRICE_PER_RAD`` per radian beyond it; ``face`` (N, 2, 3) each reading's facing,
    ``dt`` (N-1,) the rows' intervals."""
    angle = np.arccos(np.clip((face[:-1, :, None] * face[1:, None]).sum(-1), -1.0, 1.0))  # (N-1, 2, 2)
    return TURN_PRICE_PER_RAD * np.maximum(angle - MAX_TURN_RAD_S * dt[:, None, None], 0.0)


def flip_landmarks(xy: np.ndarray, vis: np.ndarray, world: np.ndarray):
    """The other reading of rows of landmarks: (..., 33, 2), (..., 33), (..., 33, 3) with left and right
    exchanged and the world landmarks' depth (z, hip-centred) negated."""
    return xy[..., _SWAP, :].copy(), vis[..., _SWAP].copy(), _flip_world(world)


def choose_readings(world: np.ndarray, times: np.ndarray, price_per_s: float = PRICE_PER_S,
                    facing_ref: np.ndarray | None = None) -> np.ndarray:
    """(N,) bool: which rows of world landmarks (N, 33, 3), at ``times`` (N,) s, to read flipped, so that the
    track moves least (Viterbi over two readings per row); ``facing_ref`` (N, 3): another estimate's facing per
    row (camera axes), against which a reading facing the other way pays ``FACING_PRICE_PER_S``."""
    n = len(world)
    if n < 2:
        return np.zeros(n, dtype=bool)
    readings = (world, _flip_world(world))  # as given, flipped
    states = np.stack([r[:, _BODY] for r in readings], 1)  # (N, 2, 12, 3)
    face = np.stack([facing(r) for r in readings], 1)  # (N, 2, 3)
    # jump[i, a, b]: mean landmark distance from reading a of row i to reading b of row i + 1
    jump = np.linalg.norm(states[:-1, :, None] - states[1:, None], axis=-1).mean(-1)  # (N-1, 2, 2)
    dt = np.diff(times, prepend=times[0])
    dt = np.where(dt > 0, dt, float(np.median(np.diff(times))))
    jump = jump + _turn_cost(face, dt[1:])
    unary = np.zeros((n, 2))  # (N, 2) each row's price for reading it as given / flipped
    unary[:, 1] = price_per_s * dt
    if facing_ref is not None:
        against = np.clip(-(face * facing_ref[:, None]).sum(-1), 0.0, 1.0)  # (N, 2) 0 within 90 deg of the reference
        unary += FACING_PRICE_PER_S * dt[:, None] * against
    cost = unary[0].copy()  # (2,) the best path's cost ending in each reading
    back = np.zeros((n, 2), dtype=np.int8)
    for i in range(1, n):
        total = cost[:, None] + jump[i - 1]
        back[i] = total.argmin(0)
        cost = total.min(0) + unary[i]
    path = np.zeros(n, dtype=np.int8)
    path[-1] = cost.argmin()
    for i in range(n - 1, 0, -1):
        path[i - 1] = back[i, path[i]]
    return path.astype(bool)


def unflip(a: TrackArrays, facing_ref: np.ndarray | None = None) -> tuple[TrackArrays, int]:
    """``TrackArrays`` with flipped rows read the other way round; returns (arrays, number of rows changed).
    Rows without an observation (bridged gaps) are skipped and left as they are. ``facing_ref``: (n, 3) another
    estimate's facing on each observed row (``choose_readings``)."""
    flip = flipped_rows(a, facing_ref)
    if not flip.any():
        return a, 0
    xy, vis, world = a.xy.copy(), a.vis.copy(), a.world.copy()
    xy[flip], vis[flip], world[flip] = flip_landmarks(a.xy[flip], a.vis[flip], a.world[flip])
    return replace(a, xy=xy, vis=vis, world=world), int(flip.sum())


def flipped_rows(a: TrackArrays, facing_ref: np.ndarray | None = None) -> np.ndarray:
    """(N,) bool: the rows ``unflip`` reads the other way round."""
    rows = np.flatnonzero(a.observed)
    flip = np.zeros(len(a), dtype=bool)
    flip[rows] = choose_readings(a.world[rows], a.times[rows], facing_ref=facing_ref)
    return flip
