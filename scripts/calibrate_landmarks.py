"""Where MediaPipe puts its limb landmarks relative to the body's joints, measured on rendered clips.

For every clip of a ``make-dataset`` folder (``clip_*.npz``: crops, crop boxes, camera, true poses and
joints), MediaPipe's ``Pose`` runs over the crops in order (video mode, as a capture does); each limb
landmark's 2D error against its true joint is then explained by one fixed offset in the frame of the bone
that carries it (hips: the pelvis; knees: the thighs; ...): linear least squares through the projection's
Jacobian at the true joint, once more without the worst 10 % of residuals, left and right mirrored and
averaged. Prints each offset (mm, rest axes: x left, y up, z forward) and the mean 2D error of the
landmarks before and after removing it, on these clips and on ``--check`` clips (another seed). The hip
offsets in ``tar_core/capture/engines/keypoints/landmarks.py`` (``LANDMARK_OFFSETS``) come from this.

    python scripts/calibrate_landmarks.py DATASET_DIR [--check OTHER_DATASET_DIR]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# MediaPipe landmark -> (its body joint, the joint whose world rotation carries the bone it sits on)
LANDMARKS = {11: (16, 9), 12: (17, 9), 13: (18, 16), 14: (19, 17), 15: (20, 18), 16: (21, 19),
             23: (1, 0), 24: (2, 0), 25: (4, 1), 26: (5, 2), 27: (7, 4), 28: (8, 5)}  # fmt: skip
PAIRS = ((11, 12), (13, 14), (15, 16), (23, 24), (25, 26), (27, 28))
MIRROR = np.array([-1.0, 1.0, 1.0])


def mediapipe_on_crops(clip: dict) -> tuple[np.ndarray, np.ndarray]:
    """(F, 33, 2) landmarks in full-image pixels (NaN where none) and (F, 33) visibility."""
    from tar_core.capture.detection import PoseDetector
    from tar_core.geometry.cropping import CropBox

    n = len(clip["crops"])
    uv, vis = np.full((n, 33, 2), np.nan), np.zeros((n, 33))
    with PoseDetector() as det:
        for i in range(n):
            found = det(clip["crops"][i])
            if not found:
                continue
            box = CropBox(clip["center"][i], float(clip["box_size"][i]))
            origin = box.to_crop(np.zeros(2))
            scale = box.to_crop(np.ones(2)) - origin
            uv[i] = (found[0].payload.image_xy - origin) / scale
            vis[i] = found[0].payload.visibility
    return uv, vis


def world_rotations(poses: np.ndarray) -> np.ndarray:
    """(F, 24, 3, 3) world rotation of every joint from axis-angle poses (F, 72)."""
    import torch

    from tar_core.body_model import PARENTS
    from tar_core.geometry.rotations import axis_angle_to_matrix

    local = axis_angle_to_matrix(torch.tensor(poses, dtype=torch.float64).reshape(len(poses), 24, 3)).numpy()
    out = np.empty_like(local)
    out[:, 0] = local[:, 0]
    for j in range(1, 24):
        out[:, j] = out[:, PARENTS[j]] @ local[:, j]
    return out


def systems(clip: dict, uv: np.ndarray, vis: np.ndarray) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Per landmark, the linear system A o = r (A: (2k, 3), r: (2k,)) of its seen frames."""
    G, P, f = world_rotations(clip["poses"]), clip["joints_cam"].astype(np.float64), float(clip["K"][0, 0])
    out = {}
    for lm, (joint, frame) in LANDMARKS.items():
        ok = np.isfinite(uv[:, lm, 0]) & (vis[:, lm] > 0.5)
        x, y, z = P[ok, joint].T
        jac = np.zeros((ok.sum(), 2, 3))
        jac[:, 0, 0], jac[:, 0, 2] = f / z, -f * x / z**2
        jac[:, 1, 1], jac[:, 1, 2] = f / z, -f * y / z**2
        out[lm] = ((jac @ G[ok, frame]).reshape(-1, 3), (uv[ok, lm] - clip["joints_2d"][ok, joint]).reshape(-1))
    return out


def solve(stacked: dict[int, tuple[np.ndarray, np.ndarray]]) -> dict[int, np.ndarray]:
    """Each landmark's offset (metres), robust to the worst residuals, then mirrored between the sides."""
    off = {}
    for lm, (A, r) in stacked.items():
        o = np.linalg.lstsq(A, r, rcond=None)[0]
        worst = np.abs(r - A @ o).reshape(-1, 2).max(1).repeat(2)
        keep = worst < np.percentile(worst, 90)
        off[lm] = np.linalg.lstsq(A[keep], r[keep], rcond=None)[0]
    for left, right in PAIRS:
        mean = 0.5 * (off[left] + MIRROR * off[right])
        off[left], off[right] = mean, MIRROR * mean
    return off


def error_px(per_clip: list[dict], off: dict[int, np.ndarray] | None) -> float:
    errs = []
    for sys_ in per_clip:
        for lm, (A, r) in sys_.items():
            res = r if off is None else r - A @ off[lm]
            errs.append(np.linalg.norm(res.reshape(-1, 2), axis=1))
    return float(np.concatenate(errs).mean())


def measure(folder: Path) -> list[dict]:
    per_clip = []
    for path in sorted(folder.glob("clip_*.npz")):
        with np.load(path) as z:
            clip = {k: z[k] for k in ("crops", "center", "box_size", "K", "poses", "joints_cam", "joints_2d")}
        per_clip.append(systems(clip, *mediapipe_on_crops(clip)))
        print(f"  {path.name}", flush=True)
    return per_clip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("dataset", type=Path)
    ap.add_argument("--check", type=Path, default=None, help="clips of another seed to check the offsets on")
    args = ap.parse_args()
    train = measure(args.dataset)
    stacked = {lm: tuple(np.concatenate([c[lm][i] for c in train]) for i in (0, 1)) for lm in LANDMARKS}
    off = solve(stacked)  # pyright: ignore[reportArgumentType]
    print("landmark  offset mm (x left, y up, z forward)")
    for lm in LANDMARKS:
        print(f"{lm:8d}  {np.round(off[lm] * 1000, 1)}")
    print(f"mean 2D error of the limb landmarks: {error_px(train, None):.2f} -> {error_px(train, off):.2f} px "
          f"({len(train)} clips)")
    if args.check:
        check = measure(args.check)
        print(f"check clips: {error_px(check, None):.2f} -> {error_px(check, off):.2f} px ({len(check)} clips)")


if __name__ == "__main__":
    main()
