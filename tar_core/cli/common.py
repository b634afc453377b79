"""Argument types and helpers shared by the command modules (stdlib only)."""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time

__all__ = ["comma_list", "keywords", "positive_int", "progress_bar", "size"]


def size(text: str) -> tuple[int, int]:
    """``640x480`` -> (640, 480); even sides of at least 16 px."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 640x480, got {text!r}") from None
    if w < 16 or h < 16 or w % 2 or h % 2:
        raise argparse.ArgumentTypeError("width and height must be even and at least 16")
    return w, h


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def comma_list(text: str) -> list[str]:
    return [part for part in text.split(",") if part]


def keywords(args: argparse.Namespace, target) -> dict:
    """The options of ``args`` that ``target`` (a dataclass) takes, by name (like ``as_keywords()``)."""
    names = {f.name for f in dataclasses.fields(target)}
    return {k: v for k, v in vars(args).items() if k in names}


def progress_bar(label: str):
    """A ``(done, total)`` callback drawing a bar on stderr, a few times a second."""
    state = {"t": 0.0}

    def report(done: int, total: int) -> None:
        now = time.monotonic()
        if done < total and now - state["t"] < 0.5:
            return
        state["t"] = now
        fill = int(30 * done / max(total, 1))
        print(f"\r{label} [{'#' * fill}{'.' * (30 - fill)}] {done}/{total}", end="", file=sys.stderr)
        if done >= total:
            print(file=sys.stderr)

    return report
