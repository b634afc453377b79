"""``python -m tar_core``: the engine's command line, one module per group of commands.

Each module declares its commands beside their handlers (``register(sub)``); handlers pass options on
by name to the layer that does the work. Errors: every ``TarError`` raised anywhere below becomes one
line on stderr and its exit code here, in ``main`` and nowhere else (docs/capture.md has the table).
Command modules import what they need when they run, so quick commands (``motion validate``) stay
quick. May import every other package of ``tar_core``; nothing imports it.
"""

from __future__ import annotations

import argparse
import json
import sys

from tar_core.errors import TarError, one_line
from tar_core.util.stop import StopFlag

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    from tar_core.cli import body, capture, evaluation, model, motion, synthetic, training

    ap = argparse.ArgumentParser(prog="python -m tar_core", description="TAR Mocap engine")
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (capture, motion, body, model, synthetic, training, evaluation):
        module.register(sub)
    return ap


def _report(exc: TarError, args: argparse.Namespace | None) -> int:
    """The one place an error becomes output: a JSON ``error`` event for the add-on, one line for people."""
    message = one_line(exc) if exc.kind != "cancelled" else f"cancelled ({exc.signal_name})"
    if args is not None and getattr(args, "progress", None) == "jsonl":
        sys.stdout.write(json.dumps({"event": "error", "message": message, "code": exc.exit_code,
                                     "kind": exc.kind}) + "\n")
        sys.stdout.flush()
    print(f"error: {message}", file=sys.stderr)
    return exc.exit_code


def main(argv: list[str] | None = None) -> int:
    # First: a SIGINT/SIGTERM during the heavy imports below is kept, not lost.
    stop = StopFlag().install()
    args = None
    try:
        args = build_parser().parse_args(argv)
        if not getattr(args, "uses_stop", False):
            stop.restore()  # commands that do not check the flag keep Python's default handling
            stop.check()
        return int(args.func(args, stop) or 0)
    except TarError as exc:
        return _report(exc, args)
    finally:
        stop.restore()
