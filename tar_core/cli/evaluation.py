"""``evaluate``: the TCMR/GLoT protocol (MPJPE, PA-MPJPE, PVE, ACCEL) on held-out clips."""

from __future__ import annotations

import json

from tar_core.cli.common import comma_list, progress_bar


def register(sub) -> None:
    p = sub.add_parser("evaluate", help="the TCMR/GLoT protocol (MPJPE, PA-MPJPE, PVE, ACCEL) on clips")
    p.add_argument("--checkpoint", default=None, help="the TAR checkpoint to evaluate (tar engine)")
    p.add_argument("--engine", choices=["tar", "keypoints"], default="tar",
                   help="keypoints: the MediaPipe fit on the clips' full-frame videos (make-dataset --videos)")
    p.add_argument("--data", required=True, type=comma_list, help="dataset folders (clip_*.npz), comma-separated")
    p.add_argument("-o", "--output", default=None, help="also write the results here (JSON)")
    p.add_argument("--json", action="store_true", help="print the results as JSON on stdout")
    p.add_argument("--h36m-regressor", default=None, help="17 x V H36M joint regressor (.npy) for SMPL")
    p.add_argument("--smooth-hz", type=float, default=None,
                   help="tar engine: also score its motion low-passed at this cut-off, as capture writes it "
                        "(the protocol's figures stay the network's raw per-frame output)")
    p.set_defaults(func=run)


def run(args, stop) -> int:
    from tar_core.errors import UsageError
    from tar_core.evaluation.evaluate import evaluate, evaluate_keypoints, write_json

    if (args.engine == "tar") != bool(args.checkpoint):
        raise UsageError("--checkpoint is needed with the tar engine and only with it")
    if args.engine == "tar":
        result = evaluate(args.checkpoint, args.data, h36m_regressor=args.h36m_regressor,
                          progress=progress_bar("clips"), smooth_hz=args.smooth_hz)
    else:
        result = evaluate_keypoints(args.data, h36m_regressor=args.h36m_regressor, progress=progress_bar("clips"))
    if args.output:
        write_json(result, args.output)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    name = result.get("variant", result["engine"])
    print(f"{name} on {result['sequences']} sequences, {result['frames']} frames ({result['joints']}): "
          f"MPJPE {result['mpjpe']:.1f}  PA-MPJPE {result['pa_mpjpe']:.1f}  PVE {result['pve']:.1f} mm  "
          f"ACCEL {result['accel']:.2f} mm/frame^2"
          + (f"  (coverage {result['coverage']:.0%})" if "coverage" in result else ""))
    for key, label in (("smoothed", f"low-passed at {args.smooth_hz} Hz"), ("keypoints_start", "its keypoints start")):
        if result.get(key):
            r = result[key]
            print(f"  {label}: MPJPE {r['mpjpe']:.1f}  PA-MPJPE {r['pa_mpjpe']:.1f}  PVE {r['pve']:.1f} mm  "
                  f"ACCEL {r['accel']:.2f} mm/frame^2")
    return 0
