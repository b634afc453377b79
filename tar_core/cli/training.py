"""``train``: a TAR variant on synthetic and/or real data (torchrun for several processes)."""

from __future__ import annotations

import argparse
import sys

from tar_core.cli.common import comma_list, keywords, positive_int


def register(sub) -> None:
    p = sub.add_parser("train", help="train a TAR variant (torchrun for several processes / GPUs / nodes)")
    p.add_argument("--variant", required=True)
    p.add_argument("--data", required=True, type=comma_list,
                   help="comma-separated sources: synthetic DIR, real FILE.npz@IMAGE_ROOT, or LIST.json with weights "
                        "(see tar_core/training/sources.py)")
    p.add_argument("--out", required=True, help="run folder (checkpoints, log.csv)")
    p.add_argument("--steps", type=positive_int, default=1000)
    p.add_argument("--batch", type=positive_int, default=8)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--resume", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--save-every", type=positive_int, default=500)
    p.add_argument("--device", default="auto")
    p.add_argument("--augment", action=argparse.BooleanOptionalAction, default=True,
                   help="the reference augmentation (--no-augment to train without it)")
    p.add_argument("--feature-cache", default=None, metavar="DIR",
                   help="frozen trunks (tar-blazepose*): compute the trunk's features once per augmented frame into "
                        "DIR (resumable) and train the heads on them; synthetic sources only")
    p.add_argument("--draws", type=positive_int, default=4,
                   help="augmentation draws cached per clip with --feature-cache (draw 0: the clip as rendered)")
    p.add_argument("--init-weights", default=None, metavar="CHECKPOINT",
                   help="start from this checkpoint's weights (fine-tuning; same architecture, e.g. tar-blazepose "
                        "weights for tar-blazepose-kp-init)")
    p.set_defaults(func=run)


def _start_fit(stop):
    """The keypoints engine's fit of a crop sequence, for variants whose RRM starts from it."""
    from tar_core.body_model import load_body_model
    from tar_core.capture.engines.keypoints.starts import crop_sequence_starts

    body = load_body_model()

    def fit(crops, centers, sizes, K, times):
        r = crop_sequence_starts(body, crops, centers, sizes, K, times, stop)
        return r.rotmat, r.betas, r.transl, r.valid

    return fit


def run(args, stop) -> int:
    from tar_core.training.train import TrainOptions, train

    path = train(TrainOptions(**keywords(args, TrainOptions)), log=lambda m: print(m, file=sys.stderr),
                 start_fit=_start_fit(stop))
    print(f"trained checkpoint: {path}")
    return 0
