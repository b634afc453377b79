"""The best one-to-one assignment of rows to columns of a score matrix (the Hungarian method), for the tracker.

``scipy.optimize.linear_sum_assignment`` solves the same problem, but importing ``scipy.optimize`` took about
0.45 s of every capture (it brings ``scipy.linalg`` and much more), while the tracker's matrices are a few tracks
by a few detections. This is the shortest-augmenting-path form with row and column potentials, O(n^2 m), one row
added at a time, vectorised over the columns.
"""

from __future__ import annotations

import numpy as np

__all__ = ["max_assignment"]


def max_assignment(scores) -> tuple[np.ndarray, np.ndarray]:
    """Rows and columns of an assignment of ``scores`` (n, m) with the largest total: min(n, m) pairs, every row
    and column at most once, rows in increasing order (as ``linear_sum_assignment(maximize=True)`` returns them)."""
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 2 or not np.all(np.isfinite(s)):
        raise ValueError(f"scores must be a finite 2-D matrix, got shape {s.shape}")
    if s.shape[0] == 0 or s.shape[1] == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    if s.shape[0] > s.shape[1]:
        cols, rows = _min_cost(-s.T)
    else:
        rows, cols = _min_cost(-s)
    order = np.argsort(rows)
    return rows[order], cols[order]


def _min_cost(cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows and columns of a least-cost assignment of every row of ``cost`` (n, m), n <= m."""
    n, m = cost.shape
    u, v = np.zeros(n + 1), np.zeros(m + 1)  # potentials; index 0 is the virtual row / column
    match = np.zeros(m + 1, dtype=np.int64)  # match[j]: the row (1-based) on column j, 0 for none
    way = np.zeros(m + 1, dtype=np.int64)  # the column before j on the shortest path found
    for i in range(1, n + 1):
        match[0], j0 = i, 0
        dist = np.full(m + 1, np.inf)
        used = np.zeros(m + 1, dtype=bool)
        while True:  # grow the shortest path from row i until it reaches a free column
            used[j0] = True
            free = ~used[1:]
            reduced = cost[match[j0] - 1] - u[match[j0]] - v[1:]  # (m,) reduced costs from this row
            closer = free & (reduced < dist[1:])
            dist[1:][closer], way[1:][closer] = reduced[closer], j0
            j1 = int(np.argmin(np.where(free, dist[1:], np.inf))) + 1
            delta = dist[j1]
            u[match[used]] += delta
            v[used] -= delta
            dist[1:][free] -= delta
            j0 = j1
            if match[j0] == 0:
                break
        while j0:  # turn the path: every column on it takes the row before it
            j1 = way[j0]
            match[j0] = match[j1]
            j0 = j1
    cols = np.flatnonzero(match[1:]) + 1
    return match[cols] - 1, cols - 1
