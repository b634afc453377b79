"""``info``, ``init-checkpoint`` and ``export-checkpoint``: a variant's size and cost, an untrained checkpoint, a
trained one made ready to ship."""

from __future__ import annotations

import json

from tar_core.cli.capture import BODY_HELP

# Table S3 of the paper: the LTE size S vs GFLOPs and parameters (HRNet-W48).
PAPER_TABLE_S3 = {64: (184.6, 25.0), 32: (72.4, 29.9), 16: (43.5, 34.3), 8: (36.3, 38.5)}


def register(sub) -> None:
    p = sub.add_parser("init-checkpoint", help="write an untrained checkpoint (for pipeline tests, benchmarks)")
    p.add_argument("--variant", required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--body", default=None, help=BODY_HELP)
    p.add_argument("--backbone-weights", default=None,
                   help="public backbone checkpoint to start from (torchvision ResNet-50, official HRNet)")
    p.add_argument("-o", "--output", required=True)
    p.set_defaults(func=init_checkpoint)

    p = sub.add_parser("export-checkpoint", help="a checkpoint's inference part (no optimizer state), its weights "
                       "stored in float16 (half the size) or float32")
    p.add_argument("checkpoint", help="a trained checkpoint (RUN/model.pt or RUN/last.pt)")
    p.add_argument("--dtype", choices=["float16", "float32"], default="float16",
                   help="how the weights are stored (default float16); loading always gives float32 modules")
    p.add_argument("-o", "--output", required=True)
    p.set_defaults(func=export_checkpoint)

    p = sub.add_parser("info", help="parameters and GFLOPs of a variant, beside the paper's Table S3")
    p.add_argument("--variant", required=True)
    p.add_argument("--json", action="store_true", help="print the figures as JSON on stdout")
    p.set_defaults(func=info)


def init_checkpoint(args, stop) -> int:
    import torch

    from tar_core.body_model import load_body_model
    from tar_core.network.backbones import load_backbone_weights
    from tar_core.network.checkpoints import save_checkpoint
    from tar_core.network.config import get_variant
    from tar_core.network.tar import TAR

    cfg = get_variant(args.variant)
    body = load_body_model(args.body)
    torch.manual_seed(args.seed)
    model = TAR(cfg, body)
    provenance: dict | str = "untrained"
    if args.backbone_weights:
        fresh = load_backbone_weights(model.backbone, args.backbone_weights, strict=True)
        provenance = {"trained_on": "untrained", "backbone_weights": str(args.backbone_weights),
                      "backbone_layers_left_fresh": len(fresh)}
    path = save_checkpoint(args.output, model, provenance)
    print(f"wrote untrained {cfg.name} checkpoint {path} ({body.describe()})")
    return 0


def export_checkpoint(args, stop) -> int:
    from tar_core.network.checkpoints import export_checkpoint as export
    from tar_core.network.checkpoints import load_checkpoint

    path = export(args.checkpoint, args.output, args.dtype)
    ck = load_checkpoint(path)  # builds the model: the exported file loads strictly
    print(f"wrote {ck.config.name} checkpoint {path} ({args.dtype} weights, {path.stat().st_size / 2**20:.2f} MiB, "
          f"sha256 {ck.sha256})")
    return 0


def _print_info(cfg, info: dict) -> None:
    print(f"{cfg.name}: backbone {cfg.backbone}, T={cfg.seq_len}, L={cfg.lte_window}, S={cfg.lte_size}")
    for key in ("params_backbone", "params_temporal", "params_refinement", "params_total"):
        print(f"  {key:28s} {info[key] / 1e6:8.2f} M")
    if info["backbone_frozen"]:
        print(f"  {'frozen_trunk_weights':28s} {info['frozen_trunk_weights'] / 1e6:8.2f} M  (pretrained, not trained, "
              "not saved in checkpoints)")
    print(f"  {'gflops_backbone_per_frame':28s} {info['gflops_backbone_per_frame']:8.2f}")
    print(f"  {'gflops_head_per_output_frame':28s} {info['gflops_head_per_output_frame']:8.2f}")
    print(f"  {'gflops_per_output_frame':28s} {info['gflops_per_output_frame']:8.2f}  (backbone once per frame + head)")
    if "paper_table_s3" in info:
        p = info["paper_table_s3"]
        print(f"  paper Table S3 (S={cfg.lte_size}): {p['gflops']} GFLOPs, {p['params_m']} M params "
              f"(here: head {info['gflops_head_per_output_frame']:.1f} GFLOPs, "
              f"{(info['params_total'] - info['params_backbone']) / 1e6:.1f} M params without the backbone)")
    print("  FLOPs are counted by torch.utils.flop_counter (a multiply-add counts as 2).")


def info(args, stop) -> int:
    from tar_core.network.config import get_variant
    from tar_core.network.info import model_info

    cfg = get_variant(args.variant)
    figures = model_info(cfg)
    if cfg.backbone == "hrnet48" and cfg.use_lte and cfg.lte_size in PAPER_TABLE_S3:
        gf, mp = PAPER_TABLE_S3[cfg.lte_size]
        figures["paper_table_s3"] = {"gflops": gf, "params_m": mp}
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        _print_info(cfg, figures)
    return 0
