"""``motion validate|info``: check and describe motion files (numpy only, quick)."""

from __future__ import annotations

import json
import sys


def register(sub) -> None:
    p = sub.add_parser("motion", help="motion files: validate, info")
    msub = p.add_subparsers(dest="motion_command", required=True, metavar="ACTION")
    q = msub.add_parser("validate", help="check motion files against the format; exit 3 if any is bad")
    q.add_argument("files", nargs="+")
    q.add_argument("--json", action="store_true", help="print one JSON object per file on stdout")
    q.set_defaults(func=validate)
    q = msub.add_parser("info", help="print a motion file's summary")
    q.add_argument("file")
    q.add_argument("--json", action="store_true", help="print it as JSON on stdout")
    q.set_defaults(func=info)


def validate(args, stop) -> int:
    from tar_core.errors import MotionFileError
    from tar_core.motion_file import read_motion

    status = 0
    for path in args.files:
        try:
            m = read_motion(path)
        except MotionFileError as exc:
            # A validator reports every file, so a bad one is a line per file rather than a raised error.
            if args.json:
                print(json.dumps({"file": path, "valid": False, "error": str(exc)}))
            print(f"{path}: INVALID: {exc}", file=sys.stderr)
            status = MotionFileError.exit_code
            continue
        if args.json:
            print(json.dumps({"file": path, "valid": True, "frames": m.num_frames, "fps": m.mocap_framerate}))
        else:
            print(f"{path}: ok, {m.num_frames} frames at {m.mocap_framerate:g} fps, engine {m.engine}, "
                  f"body {m.body_model}, track {m.track_id}")
    return status


def info(args, stop) -> int:
    from tar_core.motion_file import read_motion

    m = read_motion(args.file)
    summary = {
        "frames": m.num_frames, "fps": m.mocap_framerate, "engine": m.engine, "body_model": m.body_model,
        "gender": m.gender, "track_id": m.track_id, "image_size": m.image_size.tolist(),
        "duration_s": float(m.frame_times[-1] - m.frame_times[0]), "provenance": m.provenance_dict,
    }  # fmt: skip
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        for key, value in summary.items():
            print(f"{key:12s} {value}")
    return 0
