"""A small L-BFGS for many independent problems at once (one per frame), each row with its own curvature
pairs, backtracking line search and relative stopping tolerance.

Hand-written on purpose: ``torch.optim``'s optimisers import ``torch._dynamo`` on their first step (about
5-9 s once per process here), longer than the whole fit of a short clip. ``stop.check()`` runs every
iteration, so SIGINT / SIGTERM are honoured within one iteration (tens of milliseconds).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

__all__ = ["LbfgsResult", "lbfgs_rows"]


@dataclass
class LbfgsResult:
    x: torch.Tensor
    loss: float
    iterations: int
    evaluations: int  # calls of the objective
    converged: bool
    row_evaluations: int = 0  # rows evaluated over all calls (the work, in single-row evaluations)


def _two_loop_rows(g: torch.Tensor, S: list, Y: list, gamma: torch.Tensor) -> torch.Tensor:
    """The two-loop recursion for many independent rows at once: -H_i g_i for each row i of g (n, d).
    A pair whose s.y is not positive on a row (stored as zeros there) is skipped on that row."""
    q = g.clone()
    alphas = []
    for s, y in zip(reversed(S), reversed(Y), strict=True):
        ys = (y * s).sum(1)
        a = torch.where(ys > 1e-12, (s * q).sum(1) / ys.clamp_min(1e-12), torch.zeros_like(ys))
        q -= a[:, None] * y
        alphas.append((a, ys))
    q *= gamma[:, None]
    for (s, y), (a, ys) in zip(zip(S, Y, strict=True), reversed(alphas), strict=True):
        b = torch.where(ys > 1e-12, (y * q).sum(1) / ys.clamp_min(1e-12), torch.zeros_like(ys))
        q += (a - b)[:, None] * s
    return -q


def _line_search_rows(fun, x, f, g, d, gd, done):
    """Per-row backtracking (Armijo) along ``d``: each row halves its own step until its loss falls enough;
    only the rows still searching are evaluated again. Returns the new x, losses, gradients, the number of
    calls and rows evaluated, and the rows where no step helped (at their optimum to precision)."""
    x_new, f_new, g_new = x.clone(), f.clone(), g.clone()
    rows = torch.nonzero(~done).flatten()
    step = torch.ones(len(rows), dtype=x.dtype)
    calls = evals = 0
    for _ in range(24):
        if len(rows) == 0:
            break
        x_try = x[rows] + step[:, None] * d[rows]
        f_try, g_try = fun(x_try, rows)
        calls, evals = calls + 1, evals + len(rows)
        ok = f_try <= f[rows] + 1e-4 * step * gd[rows]
        took = rows[ok]
        x_new[took], f_new[took], g_new[took] = x_try[ok], f_try[ok], g_try[ok]
        rows, step = rows[~ok], 0.5 * step[~ok]
    stuck = torch.zeros_like(done)
    stuck[rows] = True
    return x_new, f_new, g_new, (calls, evals), stuck


RowFun = Callable[[torch.Tensor, torch.Tensor | None], tuple[torch.Tensor, torch.Tensor]]


def lbfgs_rows(fun: RowFun, x: torch.Tensor, max_iter: int, tol: float, stop, history: int = 10,
               on_iter: Callable[[int], None] | None = None) -> LbfgsResult:
    """Minimise n independent problems at once: ``fun(x, rows)`` maps x (k, d), the values of ``rows`` (k,)
    (None: all n rows, in order), to those rows' losses (k,) and gradients (k, d).

    Every row keeps its own curvature pairs, step length and stopping test, so a hard row does not shorten
    the easy rows' steps (one shared line search over a clip's frames needed about twice the iterations
    for the same accuracy), and only the rows still searching are evaluated again. A row stops when an
    iteration lowers its loss by less than ``tol`` of it; when all have stopped, the solve has converged."""
    f, g = fun(x, None)
    S: list = []
    Y: list = []
    gamma = (1.0 / g.abs().sum(1).clamp_min(1e-12)).clamp_max(1.0)  # the first step: a cautious gradient step
    done = torch.zeros_like(f, dtype=torch.bool)
    evals, row_evals, it = 1, len(x), 0
    for it in range(1, max_iter + 1):
        stop.check()
        d = _two_loop_rows(g, S, Y, gamma)
        gd = (g * d).sum(1)
        uphill = gd >= 0  # not a descent direction on these rows: a gradient step there instead
        d = torch.where(uphill[:, None], -g * gamma[:, None], d) * (~done)[:, None]
        gd = (g * d).sum(1)
        x_new, f_new, g_new, k, stuck = _line_search_rows(fun, x, f, g, d, gd, done)
        evals, row_evals = evals + k[0], row_evals + k[1]
        s, y = x_new - x, g_new - g
        fresh = ((s * y).sum(1) > 1e-12) & ~done & ~stuck
        S.append(s * fresh[:, None]), Y.append(y * fresh[:, None])
        if len(S) > history:
            S.pop(0), Y.pop(0)
        gamma = torch.where(fresh, (s * y).sum(1) / (y * y).sum(1).clamp_min(1e-20), gamma)
        done = done | stuck | ((f - f_new) <= tol * f_new.abs().clamp_min(1e-12))
        x, f, g = x_new, f_new, g_new
        if on_iter is not None:
            on_iter(it)
        if bool(done.all()):
            break
    return LbfgsResult(x=x, loss=float(f.sum()), iterations=it, evaluations=evals, converged=bool(done.all()),
                       row_evaluations=row_evals)
