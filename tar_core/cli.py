"""``python -m tar_core``: the engine's command line.

Commands import what they need when they run, so quick ones (``motion validate``) stay quick.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

__all__ = ["main"]

EXIT_USAGE = 2
EXIT_BAD_INPUT = 3


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 640x480, got {text!r}") from None
    if w < 16 or h < 16 or w % 2 or h % 2:
        raise argparse.ArgumentTypeError("width and height must be even and at least 16")
    return w, h


def _progress_bar(label: str):
    state = {"t": 0.0}

    def report(done: int, total: int) -> None:
        now = time.monotonic()
        if done < total and now - state["t"] < 0.5:
            return
        state["t"] = now
        width = 30
        fill = int(width * done / max(total, 1))
        print(f"\r{label} [{'#' * fill}{'.' * (width - fill)}] {done}/{total}", end="", file=sys.stderr)
        if done >= total:
            print(file=sys.stderr)

    return report


def cmd_render_clip(args) -> int:
    from .body_model import load_body_model
    from .synthetic.groundtruth import ClipSpec
    from .synthetic.motions import MOTIONS
    from .synthetic.render import render_clip

    if args.motion not in MOTIONS:
        print(f"error: unknown motion {args.motion!r}; choose from {', '.join(MOTIONS)}", file=sys.stderr)
        return EXIT_USAGE
    body = load_body_model(args.body)
    print(f"body model: {body.describe()}", file=sys.stderr)
    spec = ClipSpec(motion=args.motion, frames=args.frames, width=args.size[0], height=args.size[1],
                    fps=args.fps, seed=args.seed, samples=args.samples, focal=args.focal, tilt=args.tilt,
                    backdrop=args.backdrop, occluders=args.occluders)
    video, motion, _, timings = render_clip(spec, args.output, body, progress=_progress_bar("render"))
    print(f"wrote {video} and {motion} ({timings['render_s_per_frame']:.2f} s/frame)", file=sys.stderr)
    return 0


def cmd_motion_validate(args) -> int:
    from .motion_file import MotionFileError, read_motion

    status = 0
    for path in args.files:
        try:
            m = read_motion(path)
        except MotionFileError as exc:
            print(f"{path}: INVALID: {exc}", file=sys.stderr)
            status = 1
            continue
        print(f"{path}: ok, {m.num_frames} frames at {m.mocap_framerate:g} fps, engine {m.engine}, "
              f"body {m.body_model}, track {m.track_id}")
    return status


def cmd_motion_info(args) -> int:
    from .motion_file import MotionFileError, read_motion

    try:
        m = read_motion(args.file)
    except MotionFileError as exc:
        print(f"{args.file}: INVALID: {exc}", file=sys.stderr)
        return 1
    info = {
        "frames": m.num_frames, "fps": m.mocap_framerate, "engine": m.engine, "body_model": m.body_model,
        "gender": m.gender, "track_id": m.track_id, "image_size": m.image_size.tolist(),
        "duration_s": float(m.frame_times[-1] - m.frame_times[0]), "provenance": m.provenance_dict,
    }  # fmt: skip
    print(json.dumps(info, indent=2))
    return 0


def cmd_smpl_convert(args) -> int:
    from .body_model import BodyModelError, UnsafePickleError, convert_smpl_file, load_body_model_data

    try:
        out = convert_smpl_file(args.input, args.output)
        data = load_body_model_data(out)
    except (BodyModelError, UnsafePickleError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(f"wrote {out}: {data.describe()}, {data.num_vertices} vertices")
    return 0


def cmd_init_checkpoint(args) -> int:
    import torch

    from .body_model import load_body_model
    from .checkpoints import save_checkpoint
    from .config import ConfigError, get_variant
    from .network.tar import TAR

    try:
        cfg = get_variant(args.variant)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    torch.manual_seed(args.seed)
    body = load_body_model(args.body)
    model = TAR(cfg, body)
    provenance: dict | str = "untrained"
    if args.backbone_weights:
        from .network.backbones import load_backbone_weights

        try:
            fresh = load_backbone_weights(model.backbone, args.backbone_weights, strict=True)
        except (FileNotFoundError, ValueError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_BAD_INPUT
        provenance = {"trained_on": "untrained", "backbone_weights": str(args.backbone_weights),
                      "backbone_layers_left_fresh": len(fresh)}
    path = save_checkpoint(args.output, model, provenance)
    print(f"wrote untrained {cfg.name} checkpoint {path} ({body.describe()})")
    return 0


# Table S3 of the paper: the LTE size S vs GFLOPs and parameters (HRNet-W48).
PAPER_TABLE_S3 = {64: (184.6, 25.0), 32: (72.4, 29.9), 16: (43.5, 34.3), 8: (36.3, 38.5)}


def cmd_info(args) -> int:
    from .config import ConfigError, get_variant
    from .network.info import model_info

    try:
        cfg = get_variant(args.variant)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    info = model_info(cfg)
    if cfg.backbone == "hrnet48" and cfg.use_lte and cfg.lte_size in PAPER_TABLE_S3:
        gf, mp = PAPER_TABLE_S3[cfg.lte_size]
        info["paper_table_s3"] = {"gflops": gf, "params_m": mp}
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"{cfg.name}: backbone {cfg.backbone}, T={cfg.seq_len}, L={cfg.lte_window}, S={cfg.lte_size}")
    for key in ("params_backbone", "params_temporal", "params_refinement", "params_total"):
        print(f"  {key:28s} {info[key] / 1e6:8.2f} M")
    print(f"  {'gflops_backbone_per_frame':28s} {info['gflops_backbone_per_frame']:8.2f}")
    print(f"  {'gflops_head_per_output_frame':28s} {info['gflops_head_per_output_frame']:8.2f}")
    print(f"  {'gflops_per_output_frame':28s} {info['gflops_per_output_frame']:8.2f}  (backbone once per frame + head)")
    if "paper_table_s3" in info:
        p = info["paper_table_s3"]
        print(f"  paper Table S3 (S={cfg.lte_size}): {p['gflops']} GFLOPs, {p['params_m']} M params "
              f"(here: head {info['gflops_head_per_output_frame']:.1f} GFLOPs, "
              f"{(info['params_total'] - info['params_backbone']) / 1e6:.1f} M params without the backbone)")
    print("  FLOPs are counted by torch.utils.flop_counter (a multiply-add counts as 2).")
    return 0


def cmd_capture(args) -> int:
    from .pipeline import Cancelled, CaptureError, CaptureOptions, StopFlag, capture
    from .progress import Progress

    progress = Progress(jsonl=args.progress == "jsonl")
    opts = CaptureOptions(clip=args.clip, out_dir=args.output, engine=args.engine, checkpoint=args.checkpoint,
                          body=args.body, device=args.device, focal=args.focal, max_people=args.max_people,
                          boxes=args.boxes, fps=args.fps)
    stop = StopFlag().install()
    try:
        summary = capture(opts, progress, stop)
    except CaptureError as exc:
        progress.emit("error", message=str(exc), code=exc.code, kind=exc.kind)
        return exc.code
    except Cancelled as exc:
        progress.emit("error", message="cancelled", code=exc.code, kind="cancelled")
        return exc.code
    finally:
        stop.restore()
    progress.emit("done", completed=True, people=len(summary["people"]), out_dir=str(args.output),
                  timings_s=summary["timings_s"])
    return 0


def cmd_make_dataset(args) -> int:
    from .dataset import make_dataset

    paths = make_dataset(args.out, clips=args.clips, frames=args.frames, size=args.size, seed=args.seed,
                         samples=args.samples, progress=_progress_bar("clips"), videos=args.videos)
    print(f"{len(paths)} clips in {args.out}")
    return 0


def cmd_train(args) -> int:
    from .config import ConfigError
    from .train import TrainOptions, train

    opts = TrainOptions(variant=args.variant, data=[d for d in args.data.split(",") if d], out=args.out,
                        steps=args.steps, batch=args.batch, lr=args.lr, resume=args.resume, seed=args.seed,
                        workers=args.workers, save_every=args.save_every, device=args.device,
                        augment=not args.no_augment)
    try:
        path = train(opts, log=lambda m: print(m, file=sys.stderr))
    except (ConfigError, ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(f"trained checkpoint: {path}")
    return 0


def cmd_evaluate(args) -> int:
    from .checkpoints import CheckpointError
    from .evaluate import evaluate, evaluate_keypoints, write_json

    data = [d for d in args.data.split(",") if d]
    if (args.engine == "tar") != bool(args.checkpoint):
        print("error: --checkpoint is needed with the tar engine and only with it", file=sys.stderr)
        return EXIT_USAGE
    try:
        if args.engine == "tar":
            result = evaluate(args.checkpoint, data, h36m_regressor=args.h36m_regressor,
                              progress=_progress_bar("clips"))
        else:
            result = evaluate_keypoints(data, h36m_regressor=args.h36m_regressor, progress=_progress_bar("clips"))
    except CheckpointError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 13
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.json:
        write_json(result, args.json)
    name = result.get("variant", result["engine"])
    print(f"{name} on {result['sequences']} sequences, {result['frames']} frames ({result['joints']}): "
          f"MPJPE {result['mpjpe']:.1f}  PA-MPJPE {result['pa_mpjpe']:.1f}  PVE {result['pve']:.1f} mm  "
          f"ACCEL {result['accel']:.2f} mm/frame^2"
          + (f"  (coverage {result['coverage']:.0%})" if "coverage" in result else ""))
    return 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m tar_core", description="TAR Mocap engine")
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("render-clip", help="render a synthetic clip of the mannequin with exact ground truth")
    p.add_argument("--motion", default="walk", help="walk, turn, arms, squat or random")
    p.add_argument("--frames", type=int, default=90)
    p.add_argument("--size", type=_size, default=(480, 360), metavar="WxH")
    p.add_argument("--fps", type=float, default=30.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--samples", type=int, default=16, help="Cycles samples per pixel")
    p.add_argument("--focal", type=float, default=None, help="focal length in pixels (default: diagonal)")
    p.add_argument("--tilt", type=float, default=0.0, help="camera roll about the optical axis, radians")
    p.add_argument("--backdrop", choices=["plain", "textured"], default="plain")
    p.add_argument("--occluders", type=int, default=0, help="objects between camera and person (partial)")
    p.add_argument("--body", default=None, help="SMPL .pkl/.npz (default: the built-in mannequin)")
    p.add_argument("-o", "--output", required=True, help="CLIP.mp4 (CLIP.npz is written beside it)")
    p.set_defaults(func=cmd_render_clip)

    p = sub.add_parser("capture", help="capture a clip: one motion file per tracked person + summary.json")
    p.add_argument("clip", help="video file (mp4/mov/avi/mkv/webm) or a folder of images")
    p.add_argument("-o", "--output", required=True, help="output folder")
    p.add_argument("--engine", choices=["auto", "tar", "keypoints"], default="auto",
                   help="auto: tar with --checkpoint, else keypoints; tar without --checkpoint runs the built-in "
                        "demo checkpoint (synthetic training only)")
    p.add_argument("--checkpoint", default=None)
    p.add_argument("--body", default=None, help="SMPL .pkl/.npz (default: the built-in mannequin)")
    p.add_argument("--device", choices=["cpu", "cuda", "auto"], default="auto")
    p.add_argument("--focal", type=float, default=None, help="focal length in pixels (default: image diagonal)")
    p.add_argument("--max-people", type=int, default=0, help="0 = everyone tracked")
    p.add_argument("--boxes", default=None, help="JSON: frame -> list of [x0,y0,x1,y1] or with ids")
    p.add_argument("--fps", type=float, default=None, help="frame rate of an image folder (default 30)")
    p.add_argument("--progress", choices=["jsonl", "bar"], default="bar",
                   help="jsonl: one JSON event per line on stdout (for the Blender add-on)")
    p.set_defaults(func=cmd_capture)

    p = sub.add_parser("motion", help="motion files: validate, info")
    msub = p.add_subparsers(dest="motion_command", required=True, metavar="ACTION")
    q = msub.add_parser("validate", help="check motion files against the format; non-zero exit if any is bad")
    q.add_argument("files", nargs="+")
    q.set_defaults(func=cmd_motion_validate)
    q = msub.add_parser("info", help="print a motion file's summary as JSON")
    q.add_argument("file")
    q.set_defaults(func=cmd_motion_info)

    p = sub.add_parser("smpl-convert", help="convert an official SMPL .pkl to a clean .npz (no chumpy)")
    p.add_argument("input")
    p.add_argument("output")
    p.set_defaults(func=cmd_smpl_convert)

    p = sub.add_parser("init-checkpoint", help="write an untrained checkpoint (for pipeline tests, benchmarks)")
    p.add_argument("--variant", required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--body", default=None, help="SMPL .pkl/.npz (default: the built-in mannequin)")
    p.add_argument("--backbone-weights", default=None,
                   help="public backbone checkpoint to start from (torchvision ResNet-50, official HRNet)")
    p.add_argument("-o", "--output", required=True)
    p.set_defaults(func=cmd_init_checkpoint)

    p = sub.add_parser("info", help="parameters and GFLOPs of a variant, beside the paper's Table S3")
    p.add_argument("--variant", required=True)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("make-dataset", help="render synthetic training clips (resumable)")
    p.add_argument("--out", required=True)
    p.add_argument("--clips", type=int, required=True)
    p.add_argument("--frames", type=int, default=32)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--samples", type=int, default=4, help="Cycles samples per pixel")
    p.add_argument("--videos", action="store_true",
                   help="also keep the full frames as clip_<i>.mp4 (for evaluate --engine keypoints)")
    p.set_defaults(func=cmd_make_dataset)

    p = sub.add_parser("evaluate", help="the TCMR/GLoT protocol (MPJPE, PA-MPJPE, PVE, ACCEL) on clips")
    p.add_argument("--checkpoint", default=None, help="the TAR checkpoint to evaluate (tar engine)")
    p.add_argument("--engine", choices=["tar", "keypoints"], default="tar",
                   help="keypoints: the MediaPipe fit on the clips' full-frame videos (make-dataset --videos)")
    p.add_argument("--data", required=True, help="dataset folders (clip_*.npz), comma-separated")
    p.add_argument("--json", default=None, help="also write the results here")
    p.add_argument("--h36m-regressor", default=None, help="17 x V H36M joint regressor (.npy) for SMPL")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("train", help="train a TAR variant (torchrun for several processes / GPUs / nodes)")
    p.add_argument("--variant", required=True)
    p.add_argument("--data", required=True,
                   help="comma-separated sources: synthetic DIR, real FILE.npz@IMAGE_ROOT, or LIST.json with weights "
                        "(see tar_core/sources.py)")
    p.add_argument("--out", required=True, help="run folder (checkpoints, log.csv)")
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--resume", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--save-every", type=int, default=500)
    p.add_argument("--device", default="auto")
    p.add_argument("--no-augment", action="store_true", help="train without the reference augmentation")
    p.set_defaults(func=cmd_train)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "frames", 1) is not None and getattr(args, "frames", 1) < 1:
        print("error: --frames must be at least 1", file=sys.stderr)
        return EXIT_USAGE
    return int(args.func(args) or 0)
