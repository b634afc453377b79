"""``smpl-convert``: an official SMPL .pkl -> a clean .npz (no chumpy, no pickle at load time)."""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("smpl-convert", help="convert an official SMPL .pkl to a clean .npz (no chumpy)")
    p.add_argument("input")
    p.add_argument("output")
    p.set_defaults(func=run)


def run(args, stop) -> int:
    from tar_core.body_model import convert_smpl_file, load_body_model_data

    out = convert_smpl_file(args.input, args.output)
    data = load_body_model_data(out)
    print(f"wrote {out}: {data.describe()}, {data.num_vertices} vertices")
    return 0
