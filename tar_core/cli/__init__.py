"""``python -m tar_core``: the engine's command line, one module per group of commands.

Each module declares its commands beside their handlers (``register(sub)``); handlers pass options on
by name to the layer that does the work. Errors: every ``TarError`` raised anywhere below becomes one
line on stderr and its exit code here, in ``main`` and nowhere else (docs/capture.md has the table).
Command modules import what they need when they run, so quick commands (``motion validate``) stay
quick. May import every other package of ``tar_core``; nothing imports it.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import sys

from tar_core.errors import OutputError, PipeClosed, TarError, one_line
from tar_core.util.stop import StopFlag

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    from tar_core.cli import body, capture, evaluation, model, motion, synthetic, training

    ap = argparse.ArgumentParser(prog="python -m tar_core", description="TAR Mocap engine")
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (capture, motion, body, model, synthetic, training, evaluation):
        module.register(sub)
    return ap


def _quiet_stdout() -> None:
    """Point stdout at the null device so Python's final flush cannot fail on a closed pipe."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


def _say(text: str) -> None:
    try:
        print(text, file=sys.stderr)
    except (OSError, ValueError):  # stderr closed too: the exit code is all that is left
        pass


def _report(exc: TarError, args: argparse.Namespace | None) -> int:
    """The one place an error becomes output: a JSON ``error`` event for the add-on, one line for people."""
    message = one_line(exc) if exc.kind != "cancelled" else f"cancelled ({exc.signal_name})"
    if isinstance(exc, PipeClosed):  # nobody reads stdout any more
        _quiet_stdout()
    elif args is not None and getattr(args, "progress", None) == "jsonl":
        try:
            sys.stdout.write(json.dumps({"event": "error", "message": message, "code": exc.exit_code,
                                         "kind": exc.kind}) + "\n")
            sys.stdout.flush()
        except BrokenPipeError:
            _quiet_stdout()
    _say(f"error: {message}")
    return exc.exit_code


# Write failures that mean "the output place is full or refuses writes", wherever they surface.
_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS}


def main(argv: list[str] | None = None) -> int:
    # First: a SIGINT/SIGTERM during the heavy imports below is kept, not lost.
    stop = StopFlag().install()
    args = None
    try:
        args = build_parser().parse_args(argv)
        if not getattr(args, "uses_stop", False):
            stop.restore()  # commands that do not check the flag keep Python's default handling
            stop.check()
        code = int(args.func(args, stop) or 0)
        sys.stdout.flush()
        return code
    except TarError as exc:
        return _report(exc, args)
    except BrokenPipeError:  # output piped into a reader that quit (``| head``)
        return _report(PipeClosed("the output was closed (broken pipe)"), args)
    except OSError as exc:
        if exc.errno not in _FULL:
            raise
        where = f" writing {exc.filename}" if exc.filename else ""
        return _report(OutputError(f"cannot write{where}: {exc.strerror or exc}"), args)
    finally:
        stop.restore()
