"""``capture``: a clip -> one motion file per person + summary.json."""

from __future__ import annotations

from tar_core.cli.common import keywords

BODY_HELP = "SMPL .pkl/.npz (default: the built-in mannequin)"
DEFAULT_SMOOTH_HZ = 4.0  # FitConfig.cutoff_hz (not imported: the CLI starts without torch)


def register(sub) -> None:
    p = sub.add_parser("capture", help="capture a clip: one motion file per tracked person + summary.json")
    p.add_argument("clip", help="video file (mp4/mov/avi/mkv/webm) or a folder of images")
    p.add_argument("-o", "--output", required=True, help="output folder")
    p.add_argument("--engine", choices=["auto", "tar", "keypoints"], default="auto",
                   help="auto: tar with --checkpoint, else keypoints; tar without --checkpoint runs the built-in "
                        "demo checkpoint (synthetic training only)")
    p.add_argument("--checkpoint", default=None)
    p.add_argument("--body", default=None, help=BODY_HELP)
    p.add_argument("--device", choices=["cpu", "cuda", "auto"], default="auto")
    p.add_argument("--focal", type=float, default=None,
                   help="focal length in pixels (default: estimated from the landmarks where their perspective "
                        "tells it, else the image diagonal; both engines alike)")
    p.add_argument("--fov", type=float, default=None, help="field of view in degrees across the longer image side")
    p.add_argument("--focal-35mm", type=float, default=None, help="35 mm-equivalent focal length in mm (as phones "
                                                                   "report it)")
    p.add_argument("--smooth-hz", type=float, default=None,
                   help="cut-off of the motion's zero-phase low-pass (both engines), in Hz of real time "
                        f"(default {DEFAULT_SMOOTH_HZ:g}: lower is smoother, higher keeps faster moves)")
    p.add_argument("--no-align", dest="align", action="store_false",
                   help="tar engine refining the keypoints fit: keep the network's estimate as it is instead of "
                        "aligning it to the landmarks (the 2D image fit, smoothing and planted feet)")
    p.add_argument("--max-people", type=int, default=0, help="keep the N largest people (0 = everyone tracked)")
    p.add_argument("--person", default=None,
                   help="only this person: X,Y (a point on the first frame where they are visible) or an id "
                        "from --list-people")
    p.add_argument("--list-people", action="store_true",
                   help="dry run: track, then write people.png (first frame, numbered boxes) and people.json "
                        "(ids, frame ranges) into the output folder")
    p.add_argument("--boxes", default=None, help="JSON: frame -> list of [x0,y0,x1,y1] or with ids")
    p.add_argument("--fps", type=float, default=None, help="frame rate of an image folder (default 30)")
    p.add_argument("--progress", choices=["jsonl", "bar"], default="bar",
                   help="jsonl: one JSON event per line on stdout (for the Blender add-on)")
    p.set_defaults(func=run, uses_stop=True)


def run(args, stop) -> int:
    from tar_core.capture.pipeline import CaptureOptions, capture
    from tar_core.util.progress import Progress

    progress = Progress(jsonl=args.progress == "jsonl")
    summary = capture(CaptureOptions(**keywords(args, CaptureOptions)), progress, stop)
    if args.list_people:
        people = summary["people_preview"]["people"]
        progress.emit("people", people=people, out_dir=str(args.output))
        if not args.progress == "jsonl":
            for p in people:
                print(f"person {p['id']}: frames {p['first_frame']}-{p['last_frame']}, first box {p['first_box']}")
    progress.emit("done", completed=True, people=len(summary["people"]), out_dir=str(args.output),
                  timings_s=summary["timings_s"])
    return 0
