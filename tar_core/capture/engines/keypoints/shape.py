"""One body shape per person from the limb lengths in MediaPipe's metric world landmarks.

The rest joints are linear in the shape coefficients, so the lengths of the upper arms, forearms,
thighs, shins, the shoulder width and the torso are matched (medians over well-seen frames) by a small
least-squares fit with a prior that keeps the shape plausible.
"""

from __future__ import annotations

import numpy as np

__all__ = ["estimate_betas"]

# (MediaPipe a, b) -> (body joint a, b); a negative pair stands for a midpoint (hips / shoulders).
BONES = (
    ((11, 13), (16, 18)), ((12, 14), (17, 19)), ((13, 15), (18, 20)), ((14, 16), (19, 21)),
    ((23, 25), (1, 4)), ((24, 26), (2, 5)), ((25, 27), (4, 7)), ((26, 28), (5, 8)),
    ((11, 12), (16, 17)),
)  # fmt: skip
W_PRIOR = 0.002  # per coefficient squared, against squared metres of length error


def _seen_lengths(world: np.ndarray, vis: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Median length of every bone (and the torso) over frames where both ends are seen; (B,), valid (B,)."""
    lengths, valid = [], []
    for (a, b), _ in BONES:
        ok = (vis[:, a] > 0.6) & (vis[:, b] > 0.6)
        lengths.append(np.median(np.linalg.norm(world[ok, a] - world[ok, b], axis=-1)) if ok.sum() >= 3 else 0.0)
        valid.append(ok.sum() >= 3)
    ok = (vis[:, [11, 12, 23, 24]] > 0.6).all(1)
    torso = 0.5 * (world[:, 11] + world[:, 12]) - 0.5 * (world[:, 23] + world[:, 24])
    lengths.append(np.median(np.linalg.norm(torso[ok], axis=-1)) if ok.sum() >= 3 else 0.0)
    valid.append(ok.sum() >= 3)
    return np.array(lengths), np.array(valid)


def _length_terms(Jt: np.ndarray, Jd: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every bone (and the torso) as a vector linear in the shape: A (B, 3) + D (B, 3, 10) @ beta."""
    A = [Jt[a] - Jt[b] for _, (a, b) in BONES]
    D = [Jd[a] - Jd[b] for _, (a, b) in BONES]
    A.append(0.5 * (Jt[16] + Jt[17]) - 0.5 * (Jt[1] + Jt[2]))
    D.append(0.5 * (Jd[16] + Jd[17]) - 0.5 * (Jd[1] + Jd[2]))
    return np.stack(A), np.stack(D)


def estimate_betas(body, world: np.ndarray, vis: np.ndarray) -> np.ndarray:
    """(10,) shape coefficients whose limbs are as long as the landmarks show."""
    seen, valid = _seen_lengths(world, vis)
    if valid.sum() < 4:
        return np.zeros(10)
    A, D = _length_terms(body.j_template.double().numpy(), body.j_shapedirs.double().numpy())
    return _levenberg_marquardt(A[valid], D[valid], seen[valid], np.sqrt(W_PRIOR))


def _levenberg_marquardt(A: np.ndarray, D: np.ndarray, target: np.ndarray, prior: float, iters: int = 100):
    """beta minimising sum (|A + D beta| - target)^2 + prior^2 |beta|^2, from zero. Written here: scipy's
    ``least_squares`` needs ``scipy.optimize``, whose import took ~0.45 s of every capture."""
    eye = np.eye(D.shape[-1])

    def residual(beta):
        vec = A + D @ beta  # (B, 3)
        length = np.linalg.norm(vec, axis=-1)
        return np.concatenate([length - target, prior * beta]), vec, length

    beta, damping = np.zeros(D.shape[-1]), 1e-3
    r, vec, length = residual(beta)
    for _ in range(iters):
        jac = np.concatenate([np.einsum("bi,bij->bj", vec / length[:, None], D), prior * eye])  # (B + 10, 10)
        H, g = jac.T @ jac, jac.T @ r
        step = np.linalg.solve(H + damping * np.diag(np.diag(H)), -g)
        r_new, vec_new, length_new = residual(beta + step)
        if r_new @ r_new < r @ r:
            beta, r, vec, length, damping = beta + step, r_new, vec_new, length_new, damping / 3
            if np.abs(step).max() < 1e-10:
                break
        else:
            damping *= 3
            if damping > 1e10:
                break
    return beta
