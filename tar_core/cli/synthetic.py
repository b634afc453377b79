"""``render-clip`` and ``make-dataset``: synthetic clips of the mannequin with exact ground truth."""

from __future__ import annotations

import sys

from tar_core.cli.capture import BODY_HELP
from tar_core.cli.common import keywords, positive_int, progress_bar, size


def register(sub) -> None:
    p = sub.add_parser("render-clip", help="render a synthetic clip of the mannequin with exact ground truth")
    p.add_argument("--motion", default="walk", help="walk, turn, arms, squat or random")
    p.add_argument("--frames", type=positive_int, default=90)
    p.add_argument("--size", type=size, default=(480, 360), metavar="WxH")
    p.add_argument("--fps", type=float, default=30.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--samples", type=int, default=16, help="Cycles samples per pixel")
    p.add_argument("--focal", type=float, default=None, help="focal length in pixels (default: diagonal)")
    p.add_argument("--tilt", type=float, default=0.0, help="camera roll about the optical axis, radians")
    p.add_argument("--backdrop", choices=["plain", "textured"], default="plain")
    p.add_argument("--occluders", type=int, default=0, help="objects between camera and person (partial)")
    p.add_argument("--planted-feet", action="store_true",
                   help="the body travels by its standing foot (no foot slides) instead of the motion's scripted path")
    p.add_argument("--body", default=None, help=BODY_HELP)
    p.add_argument("-o", "--output", required=True, help="CLIP.mp4 (CLIP.npz is written beside it)")
    p.set_defaults(func=render_clip)

    p = sub.add_parser("make-dataset", help="render synthetic training clips (resumable)")
    p.add_argument("--out", required=True)
    p.add_argument("--clips", type=positive_int, required=True)
    p.add_argument("--frames", type=positive_int, default=32)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--samples", type=int, default=4, help="Cycles samples per pixel")
    p.add_argument("--videos", action="store_true",
                   help="also keep the full frames as clip_<i>.mp4 (for evaluate --engine keypoints)")
    p.add_argument("--threads", type=int, default=0, help="Cycles render threads (default 0: one per core)")
    p.add_argument("--denoise", choices=["fast", "high"], default="fast",
                   help="OIDN quality: fast (default, a third of the CPU time per frame) or high")
    p.add_argument("--planted-feet", action="store_true",
                   help="bodies travel by their standing foot (no foot slides over the floor, as with render-clip "
                        "--planted-feet); off by default so existing datasets render as before")
    p.set_defaults(func=make_dataset)


def render_clip(args, stop) -> int:
    from tar_core.body_model import load_body_model
    from tar_core.errors import UsageError
    from tar_core.synthetic.groundtruth import ClipSpec
    from tar_core.synthetic.motions import MOTIONS
    from tar_core.synthetic.render import render_clip as render

    if args.motion not in MOTIONS:
        raise UsageError(f"unknown motion {args.motion!r}; choose from {', '.join(MOTIONS)}")
    body = load_body_model(args.body)
    print(f"body model: {body.describe()}", file=sys.stderr)
    args.width, args.height = args.size
    spec = ClipSpec(**keywords(args, ClipSpec))
    video, motion, _, timings = render(spec, args.output, body, progress=progress_bar("render"))
    print(f"wrote {video} and {motion} ({timings['render_s_per_frame']:.2f} s/frame)", file=sys.stderr)
    return 0


def make_dataset(args, stop) -> int:
    from tar_core.synthetic.dataset import make_dataset as make

    paths = make(args.out, clips=args.clips, frames=args.frames, size=args.size, seed=args.seed,
                 samples=args.samples, progress=progress_bar("clips"), videos=args.videos,
                 threads=args.threads, fast_denoise=args.denoise == "fast", planted_feet=args.planted_feet)
    print(f"{len(paths)} clips in {args.out}")
    return 0
