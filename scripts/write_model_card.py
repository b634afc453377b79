"""Write the model card of a trained checkpoint from what was measured: its provenance, the run's log
(steps, wall time, losses), the held-out evaluation JSON(s) and the training data on disk.

    python scripts/write_model_card.py --checkpoint tar_core/weights/tar-blazepose-synthetic.pt --run RUN \
        --heldout heldout.json [--compare NAME=FILE.json ...] [--recipe recipe.txt] [--limitation TEXT ...] \
        -o tar_core/weights/MODEL_CARD.md
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _data_summary(trained_on: str) -> list[str]:
    lines = []
    for entry in trained_on.split(","):
        d = Path(entry)
        clips = sorted(d.glob("clip_*.npz")) if d.is_dir() else []
        if not clips:
            lines.append(f"- `{entry}`")
            continue
        frames, motions, occluded, sizes = 0, {}, 0, set()
        for p in clips:
            with np.load(p, allow_pickle=False) as z:
                frames += len(z["center"])
                m = str(z["motion"])
                motions[m] = motions.get(m, 0) + 1
                occluded += int(z["occluders"]) > 0 if "occluders" in z.files else 0
                sizes.add(tuple(int(v) for v in z["image_size"]))
        mix = ", ".join(f"{k} {v}" for k, v in sorted(motions.items()))
        lines.append(f"- `{d.name}`: {len(clips)} clips, {frames} frames, renders {sorted(sizes)}; motions: {mix}; "
                     f"clips with occluders: {occluded}")
    return lines


DEMO_INTRO = ("The demo checkpoint of TAR Mocap's `tar` engine. No public TAR weights exist; this one was trained by "
              "the project on **synthetic** renders of the built-in mannequin only. It exists so that the tar engine, "
              "the add-on and `make demo ENGINE=tar` run out of the box; the default engine stays keypoints, and for "
              "real footage use the keypoints engine or train your own checkpoint (docs/training.md).")


def _write(out: list[str], path: Path, append: bool) -> None:
    """The card's lines to ``path``, or appended to it with every heading one level down."""
    if not append:
        path.write_text("\n".join(out) + "\n")
        return
    lines = [f"#{line}" if line.startswith("#") and not line.startswith("#!") else line for line in out]
    in_code = False
    for i, line in enumerate(out):  # comments inside code blocks are not headings
        in_code = in_code != line.startswith("```")
        if in_code:
            lines[i] = line
    with open(path, "a") as fh:
        fh.write("\n" + "\n".join(lines) + "\n")


def _sample_clip_rows(checkpoint: Path, variant: str) -> list[str]:
    """Capture the committed sample clip with the checkpoint and with an untrained one; compare with its truth."""
    import subprocess
    import tempfile

    from tar_core.evaluation.evaluate import MANNEQUIN_LSP14 as LSP14
    from tar_core.evaluation.metrics import mpjpe, pa_mpjpe
    from tar_core.motion_file import read_motion

    clip = ROOT / "data" / "sample" / "sample_walk.mp4"
    gt = read_motion(clip.with_suffix(".npz"))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        untrained = Path(tmp) / "untrained.pt"
        subprocess.run([sys.executable, "-m", "tar_core", "init-checkpoint", "--variant", variant, "-o",
                        str(untrained)], check=True, capture_output=True)
        for name, ck in (("this checkpoint", checkpoint), (f"untrained {variant}", untrained)):
            out = Path(tmp) / name.replace(" ", "_")
            subprocess.run([sys.executable, "-m", "tar_core", "capture", str(clip), "-o", str(out), "--engine", "tar",
                            "--checkpoint", str(ck)], check=True, capture_output=True)
            m = read_motion(out / "person_0.npz")
            p, g = m.joints_cam[:, LSP14], gt.joints_cam[:, LSP14]
            e2d = np.linalg.norm(m.joints_2d[:, LSP14] - gt.joints_2d[:, LSP14], axis=-1).mean()
            depth = np.median(m.trans[:, 2] / gt.trans[:, 2])
            rows.append(f"| {name} | {mpjpe(p, g).mean():.1f} | {pa_mpjpe(p, g).mean():.1f} | {e2d:.1f} | "
                        f"{depth:.2f} |")
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", type=Path, required=True)
    ap.add_argument("--run", type=Path, required=True, help="the training run folder (log.csv)")
    ap.add_argument("--heldout", type=Path, required=True, help="evaluate -o output for this checkpoint")
    ap.add_argument("--compare", nargs="*", default=[], help="NAME=FILE.json rows to put beside it")
    ap.add_argument("--recipe", type=Path, default=None, help="a text file with the commands that made it")
    ap.add_argument("--machine", default=None, help="where it was trained (default: this machine)")
    ap.add_argument("--intro", default=None, help="the card's first paragraph (default: the demo checkpoint's)")
    ap.add_argument("--limitation", action="append", default=[], help="one more line under Limitations")
    ap.add_argument("--append", action="store_true",
                    help="append to OUT as a section (headings one level down) instead of replacing it")
    ap.add_argument("-o", "--out", type=Path, required=True)
    args = ap.parse_args()
    from tar_core.motion_file import read_motion
    from tar_core.network.checkpoints import file_sha256, load_checkpoint, read_checkpoint

    gt_frames = read_motion(ROOT / "data" / "sample" / "sample_walk.npz").num_frames

    ck = load_checkpoint(args.checkpoint)
    prov = ck.provenance
    dtype = read_checkpoint(args.checkpoint).get("weights_dtype", "float32")
    with open(args.run / "log.csv") as fh:
        log = list(csv.DictReader(fh))
    wall = float(log[-1]["time_s"]) if log else float("nan")
    first, last = (log[0], log[-1]) if log else ({}, {})
    held = json.loads(args.heldout.read_text())
    rows = [("this checkpoint", held)]
    for item in args.compare:
        name, path = item.split("=", 1)
        rows.append((name, json.loads(Path(path).read_text())))
    params = sum(p.numel() for n, p in ck.model.named_parameters() if not n.startswith("body."))
    machine = args.machine or f"{platform.machine()} CPU, {platform.system()}"
    recipe = args.recipe.read_text().strip() if args.recipe else ""

    out = [
        f"# Model card: `{args.checkpoint.name}`",
        "",
        args.intro or DEMO_INTRO,
        "",
        "| | |",
        "|---|---|",
        f"| file | `tar_core/weights/{args.checkpoint.name}`, {args.checkpoint.stat().st_size / 2**20:.2f} MiB |",
        f"| sha256 | `{file_sha256(args.checkpoint)}` |",
        f"| variant | `{ck.config.name}` ({params / 1e6:.2f} M parameters; config saved inside) |",
        f"| storage | {dtype} weights" + (" (`export-checkpoint`), loaded into float32 modules |" if dtype != "float32"
                                         else " |"),
        f"| body model | {ck.body_model} (its betas do not transfer to SMPL) |",
        f"| provenance | data `{prov.get('data')}`, {prov.get('steps')} steps |",
        "",
        "## Training data (synthetic)",
        *_data_summary(str(prov.get("trained_on", ""))),
        "",
        "Rendered with `python -m tar_core make-dataset` (Blender Cycles on the CPU; docs/synthetic.md): scripted "
        "and random motions, seeded shapes, clothing, light, camera; exact ground truth.",
        "",
        "## Training",
        f"- steps: {prov.get('steps')}, batch {prov.get('batch')} (over {prov.get('processes')} process(es)), "
        f"learning rate {prov.get('lr')}, augmentation {'on' if prov.get('augment') else 'off'}, "
        f"seed {prov.get('seed')}",
        *([f"- started from the weights of `{prov['init_weights']['path']}` (sha256 "
           f"`{prov['init_weights']['sha256'][:16]}…`, {prov['init_weights']['steps']} steps; `train --init-weights`)"]
          if prov.get("init_weights") else []),
        *(["- the RRM starts from the keypoints engine's fit of each frame (`rrm_init=\"keypoints\"`), fitted on "
           "MediaPipe's landmarks of every cached draw's crops and kept beside the feature cache"]
          if ck.config.rrm_init == "keypoints" else []),
        f"- wall time: {wall:.0f} s ({wall / 60:.1f} min) on {machine}",
        f"- loss (eq. 10-14, x60): {float(first.get('loss', 'nan')):.1f} at step {first.get('step')} -> "
        f"{float(last.get('loss', 'nan')):.1f} at step {last.get('step')}",
        "- Adam, gradient clipping 4.0, the reference augmentation (flip, rotation/scale with the box centre moved, "
        "colour, occlusion)" + (f", baked into {prov['feature_cache_draws']} cached draws per clip (draw 0 as rendered)"
                                " of the frozen trunk's features (`train --feature-cache`)"
                                if prov.get("feature_cache_draws") else ""),
        "",
        "## Held-out metrics",
        f"TCMR/GLoT protocol (`python -m tar_core evaluate`) on {held['sequences']} held-out synthetic clips, "
        f"{held['frames']} frames, joints `{held['joints']}`; mm (ACCEL mm/frame^2).",
        "",
        "| model | MPJPE | PA-MPJPE | PVE | ACCEL |",
        "|---|---|---|---|---|",
    ]
    for name, r in rows:
        cov = f" (coverage {r['coverage']:.0%})" if "coverage" in r else ""
        out.append(f"| {name}{cov} | {r['mpjpe']:.1f} | {r['pa_mpjpe']:.1f} | {r['pve']:.1f} | {r['accel']:.2f} |")
    out += [
        "",
        f"On the committed sample clip (`data/sample/sample_walk.mp4`, {gt_frames} frames, 384x288, plain backdrop; "
        "2D = mean distance of the projected joints from the truth in pixels; depth = median ratio of the root's "
        "distance from the camera to the truth):",
        "",
        "| model | MPJPE | PA-MPJPE | 2D px | depth ratio |",
        "|---|---|---|---|---|",
        *_sample_clip_rows(args.checkpoint, ck.config.name),
    ]
    out += [
        "",
        "## Limitations",
        "- Trained briefly on a CPU (above): far from the paper's numbers; it learns the mannequin's appearance in "
        "these renders, not real people in real clothes.",
        "- Shape: mannequin betas. With an SMPL model configured, poses and root motion transfer, shapes do not "
        "(the engine says so).",
        "- Depth: the root's distance from the camera comes from the full-image (CLIFF) camera, which this brief "
        "training fits only roughly (depth ratio above); the overlay on the footage (2D) is better than the depth.",
        "- Single person crops from the tracker, like every TAR checkpoint.",
        *(f"- {line}" for line in args.limitation),
    ]
    if recipe:
        out += ["", "## How it was made", "```bash", recipe, "```"]
    _write(out, args.out, args.append)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
