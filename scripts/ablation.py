"""The paper's ablations on a held-out synthetic set: full TAR, without RRM, only GTE, only LTE (tiny scale by
default), and the keypoints engine on the same clips. Trains what is missing (resumable), evaluates with the
TCMR/GLoT protocol, prints a table and checks the paper's directions (RRM lowers MPJPE, the LTE lowers ACCEL).

    python scripts/ablation.py --train DIR[,DIR] --heldout DIR --runs RUNS [--steps 600] [--parallel 2]
                               [--keypoints] [--json RUNS/ablation.json]

Every variant trains with the same data, steps, batch, learning rate and seed; ``--parallel`` runs that many
trainings at once with the cores split between them.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

VARIANTS = {"full TAR": "tar-tiny", "without RRM": "tar-tiny-no-rrm", "only GTE": "tar-tiny-gte-only",
            "only LTE": "tar-tiny-lte-only"}


def _trained_steps(run: Path) -> int:
    from tar_core.network.checkpoints import read_checkpoint

    model = run / "model.pt"
    return int(read_checkpoint(model)["provenance"].get("steps", 0)) if model.is_file() else 0


def train_all(args, variants: dict[str, str]) -> dict[str, float]:
    """Train every variant still short of ``args.steps``; returns the wall time of each training run."""
    todo = [v for v in variants.values() if _trained_steps(args.runs / v) < args.steps]
    threads = max(1, (os.cpu_count() or 1) // args.parallel)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    running: dict[str, tuple[subprocess.Popen, float]] = {}
    walls: dict[str, float] = {}
    while todo or running:
        while todo and len(running) < args.parallel:
            v = todo.pop(0)
            (args.runs / v).mkdir(parents=True, exist_ok=True)
            cmd = [sys.executable, "-m", "tar_core", "train", "--variant", v, "--data", args.train, "--out",
                   str(args.runs / v), "--steps", str(args.steps), "--batch", str(args.batch), "--lr", str(args.lr),
                   "--seed", str(args.seed), "--resume", "--device", "cpu"]
            log = open(args.runs / v / "train.log", "a")  # noqa: SIM115 (closed when the process ends)
            print(f"training {v} ({threads} threads): {' '.join(cmd[1:])}", flush=True)
            running[v] = (subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT),
                          time.perf_counter())
        time.sleep(2.0)
        for v, (proc, t0) in list(running.items()):
            if proc.poll() is None:
                continue
            del running[v]
            if proc.returncode != 0:
                raise SystemExit(f"training {v} failed ({proc.returncode}); see {args.runs / v / 'train.log'}")
            walls[v] = time.perf_counter() - t0
            print(f"trained {v} in {walls[v]:.0f} s", flush=True)
    return walls


def _cached(path: Path, heldout: list[str], run_eval, sha: str | None) -> dict:
    """An evaluation result, reused while it is for the same held-out folders (and checkpoint sha256)."""
    if path.is_file():
        cached = json.loads(path.read_text())
        if cached.get("heldout") == heldout and cached.get("checkpoint_sha256") == sha:
            return cached
    result = {**run_eval(), "heldout": heldout}
    result.setdefault("checkpoint_sha256", None)
    path.write_text(json.dumps(result, indent=2))
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--train", required=True, help="training data (train --data syntax)")
    ap.add_argument("--heldout", required=True, help="held-out clip folder(s), comma-separated")
    ap.add_argument("--runs", type=Path, required=True)
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--parallel", type=int, default=2)
    ap.add_argument("--keypoints", action="store_true", help="also the keypoints engine (needs --videos clips)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    from tar_core.evaluation.evaluate import evaluate, evaluate_keypoints
    from tar_core.network.checkpoints import file_sha256

    args.runs.mkdir(parents=True, exist_ok=True)
    walls = train_all(args, VARIANTS)
    heldout = [d for d in args.heldout.split(",") if d]
    rows = {}
    for label, v in VARIANTS.items():
        run = args.runs / v
        rows[label] = _cached(run / "heldout.json", heldout, lambda m=run / "model.pt": evaluate(m, heldout),
                              file_sha256(run / "model.pt"))
        rows[label]["train_wall_s"] = walls.get(v)
        rows[label]["steps"] = _trained_steps(run)
    if args.keypoints:
        rows["keypoints engine"] = _cached(args.runs / "keypoints_heldout.json", heldout,
                                           lambda: evaluate_keypoints(heldout), None)

    first = next(iter(rows.values()))
    print(f"\nheld-out: {first['sequences']} clips, {first['frames']} frames, joints {first['joints']}; "
          f"{args.steps} steps x batch {args.batch}, lr {args.lr:g}, seed {args.seed}")
    print("| model | variant | MPJPE | PA-MPJPE | PVE | ACCEL |")
    print("|---|---|---|---|---|---|")
    for label, r in rows.items():
        extra = f" (coverage {r['coverage']:.0%})" if "coverage" in r else ""
        print(f"| {label}{extra} | {r.get('variant', r.get('engine'))} | {r['mpjpe']:.1f} | {r['pa_mpjpe']:.1f} | "
              f"{r['pve']:.1f} | {r['accel']:.2f} |")
    checks = {
        "RRM lowers MPJPE (full < without RRM)": rows["full TAR"]["mpjpe"] < rows["without RRM"]["mpjpe"],
        "LTE lowers ACCEL (full < only GTE)": rows["full TAR"]["accel"] < rows["only GTE"]["accel"],
        "GTE+LTE beat either alone on MPJPE": rows["full TAR"]["mpjpe"] < min(rows["only GTE"]["mpjpe"],
                                                                              rows["only LTE"]["mpjpe"]),
    }
    for what, ok in checks.items():
        print(f"{what}: {'reproduced' if ok else 'NOT reproduced'}")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "checks": checks, "steps": args.steps, "batch": args.batch,
                                         "lr": args.lr, "seed": args.seed, "train": args.train,
                                         "heldout": heldout}, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
