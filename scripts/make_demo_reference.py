"""Store what the float32 original of the demo checkpoint outputs, so a test can hold the shipped float16 file
to it without the float32 file in the repository.

    python scripts/make_demo_reference.py --fp32 RUN/model.pt \
        [--out tests/data/demo_fp32_reference.npz]

Input: the first 16 frames of the built-in sample clip, each cut at its ground-truth box
(``square_box`` of ``bbox_xyxy``, ``crop_batch`` at 256x256), the sample's intrinsics. The BlazePose trunk
(float32, from the mediapipe wheel) encodes the 16 crops; the float32 heads then run the 8 complete 9-frame
windows (middle frames 4..11), and the file keeps their last RRM estimate: ``joints`` (8, 24, 3) metres,
``joints_2d`` (8, 24, 2) pixels, ``rotmat`` (8, 24, 3, 3), ``betas`` (8, 10), ``transl`` (8, 3), with the
sha256 of the float32 file (``fp32_sha256``) and of the demo checkpoint it was made for (``demo_sha256``).
Only the heads differ between the two files, so the trunk need not be stored.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FRAMES = 16


def sample_windows(model, frames: int = FRAMES):
    """The sample clip's first ``frames`` frames through ``model``'s trunk: (global (W, T, Dg), local (W, L, Dl,
    64, 64), Geometry) for the W = frames - T + 1 complete windows."""
    import cv2
    import torch

    from tar_core.geometry.cropping import crop_batch, square_box
    from tar_core.network.refinement import Geometry

    gt = np.load(ROOT / "data" / "sample" / "sample_walk.npz")
    cap = cv2.VideoCapture(str(ROOT / "data" / "sample" / "sample_walk.mp4"))
    images = []
    for _ in range(frames):
        ok, bgr = cap.read()
        if not ok:
            raise RuntimeError("the sample clip has fewer frames than asked")
        images.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    cap.release()
    boxes = [square_box(gt["bbox_xyxy"][i]) for i in range(frames)]
    crops = torch.cat([crop_batch(images[i], [boxes[i]]) for i in range(frames)])
    with torch.no_grad():
        g, m = model.encode_frames(crops)
    T, tau = model.cfg.seq_len, model.cfg.tau
    mids = list(range(T // 2, frames - T // 2))
    K = gt["camera_intrinsics"]
    geom = Geometry(center=torch.tensor(np.array([boxes[c].center for c in mids]), dtype=torch.float32),
                    size=torch.tensor([boxes[c].size for c in mids], dtype=torch.float32),
                    focal=torch.full((len(mids),), float(K[0, 0])),
                    principal=torch.tensor(np.array([K[:2, 2]] * len(mids)), dtype=torch.float32))
    global_seq = torch.stack([g[c - T // 2: c + T // 2 + 1] for c in mids])
    local_seq = torch.stack([m[c - tau: c + tau + 1] for c in mids])
    return global_seq, local_seq, geom


def head_outputs(model, windows) -> dict[str, np.ndarray]:
    """The last RRM estimate of each window, as float32 arrays."""
    import torch

    with torch.no_grad():
        est = model.forward_features(*windows)[-1]
    return {k: getattr(est, k).numpy().astype(np.float32) for k in ("joints", "joints_2d", "rotmat", "betas",
                                                                     "transl")}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--fp32", type=Path, required=True, help="the float32 checkpoint the demo was exported from")
    ap.add_argument("--out", type=Path, default=ROOT / "tests" / "data" / "demo_fp32_reference.npz")
    args = ap.parse_args()
    import torch

    from tar_core.network.checkpoints import DEMO_CHECKPOINT, file_sha256, load_checkpoint, read_checkpoint

    torch.set_num_threads(1)
    if read_checkpoint(args.fp32).get("weights_dtype", "float32") != "float32":
        raise SystemExit(f"{args.fp32}: not a float32 checkpoint")
    ck = load_checkpoint(args.fp32)
    out = head_outputs(ck.model, sample_windows(ck.model))
    np.savez_compressed(args.out, **out, fp32_sha256=np.array(ck.sha256), demo_sha256=np.array(file_sha256(
        DEMO_CHECKPOINT)))
    print(f"wrote {args.out} ({args.out.stat().st_size / 1024:.0f} KiB) from {args.fp32} ({ck.sha256})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
