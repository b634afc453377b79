"""A small L-BFGS with a backtracking line search and a relative stopping tolerance.

Hand-written on purpose: ``torch.optim``'s optimisers import ``torch._dynamo`` on their first step (about
5-9 s once per process here), longer than the whole fit of a short clip. ``stop.check()`` runs every
iteration, so SIGINT / SIGTERM are honoured within one iteration (tens of milliseconds).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

__all__ = ["LbfgsResult", "lbfgs"]


@dataclass
class LbfgsResult:
    x: torch.Tensor
    loss: float
    iterations: int
    evaluations: int
    converged: bool


def _direction(g: torch.Tensor, S: list, Y: list) -> torch.Tensor:
    """The two-loop recursion: -H g with the inverse Hessian built from the stored pairs."""
    q = g.clone()
    alphas = []
    for s, y in zip(reversed(S), reversed(Y), strict=True):
        a = (s @ q) / (y @ s)
        q -= a * y
        alphas.append(a)
    if S:
        q *= (S[-1] @ Y[-1]) / (Y[-1] @ Y[-1])
    for (s, y), a in zip(zip(S, Y, strict=True), reversed(alphas), strict=True):
        q += (a - (y @ q) / (y @ s)) * s
    return -q


def lbfgs(fun: Callable[[torch.Tensor], tuple[float, torch.Tensor]], x: torch.Tensor, max_iter: int,
          tol: float, stop, history: int = 10, on_iter: Callable[[int], None] | None = None) -> LbfgsResult:
    """Minimise ``fun`` (x -> (loss, gradient)) from ``x`` (1-D). Stops after ``max_iter`` iterations or
    when an iteration lowers the loss by less than ``tol`` of its value."""
    f, g = fun(x)
    S: list = []
    Y: list = []
    evals, it, converged = 1, 0, False
    for it in range(1, max_iter + 1):
        stop.check()
        d = _direction(g, S, Y)
        gd = float(g @ d)
        if gd >= 0:  # not a descent direction: restart from the gradient
            S.clear(), Y.clear()
            d, gd = -g, -float(g @ g)
        step = 1.0 if S else min(1.0, 1.0 / max(float(g.abs().sum()), 1e-12))
        for _ in range(24):
            x_new = x + step * d
            f_new, g_new = fun(x_new)
            evals += 1
            if f_new <= f + 1e-4 * step * gd:
                break
            step *= 0.5
        else:
            converged = True  # no decrease possible along the direction: at the optimum to precision
            break
        s, y = x_new - x, g_new - g
        if float(s @ y) > 1e-12:
            S.append(s), Y.append(y)
            if len(S) > history:
                S.pop(0), Y.pop(0)
        decrease = f - f_new
        x, f, g = x_new, f_new, g_new
        if on_iter is not None:
            on_iter(it)
        if decrease <= tol * max(abs(f), 1e-12):
            converged = True
            break
    return LbfgsResult(x=x, loss=f, iterations=it, evaluations=evals, converged=converged)
