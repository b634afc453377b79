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


def _model_lengths(J: np.ndarray) -> np.ndarray:
    """Bone and torso lengths of rest joints (..., 24, 3)."""
    out = [np.linalg.norm(J[..., a, :] - J[..., b, :], axis=-1) for _, (a, b) in BONES]
    torso = 0.5 * (J[..., 16, :] + J[..., 17, :]) - 0.5 * (J[..., 1, :] + J[..., 2, :])
    return np.stack([*out, np.linalg.norm(torso, axis=-1)], -1)


def estimate_betas(body, world: np.ndarray, vis: np.ndarray) -> np.ndarray:
    """(10,) shape coefficients whose limbs are as long as the landmarks show."""
    from scipy.optimize import least_squares

    seen, valid = _seen_lengths(world, vis)
    if valid.sum() < 4:
        return np.zeros(10)
    Jt = body.j_template.double().numpy()  # (24, 3)
    Jd = body.j_shapedirs.double().numpy()  # (24, 3, 10)

    def residual(beta):
        lengths = _model_lengths(Jt + Jd @ beta)
        return np.concatenate([(lengths - seen)[valid], np.sqrt(W_PRIOR) * beta])

    return least_squares(residual, np.zeros(10), method="lm", max_nfev=200).x
