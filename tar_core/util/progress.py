"""Progress reporting: JSON lines on stdout for the add-on, or a human progress bar on stderr."""

from __future__ import annotations

import json
import sys
import time
from contextlib import contextmanager

from tar_core.errors import PipeClosed

__all__ = ["Progress"]


class Progress:
    """``emit`` sends events; ``progress`` events are limited to a few per second per stage.

    jsonl: one JSON object per line on stdout: ``start``, ``progress`` (stage, done, total),
    ``output`` (path), ``done`` or ``error`` (message). Otherwise a bar and messages on stderr.
    """

    def __init__(self, jsonl: bool = False, min_interval: float = 0.25, stream=None):
        self.jsonl = jsonl
        self.min_interval = min_interval
        self.out = stream or (sys.stdout if jsonl else sys.stderr)
        self._last: dict[str, float] = {}

    @contextmanager
    def _writing(self):
        """A reader that went away (closed pipe) ends the run: ``PipeClosed``, not a traceback."""
        try:
            yield
        except BrokenPipeError:
            raise PipeClosed("the progress output was closed (broken pipe); stopped") from None

    def emit(self, event: str, **fields) -> None:
        with self._writing():
            self._emit(event, **fields)

    def _emit(self, event: str, **fields) -> None:
        if self.jsonl:
            self.out.write(json.dumps({"event": event, **fields}) + "\n")
            self.out.flush()
        elif event == "error":
            self.out.write(f"\nerror: {fields.get('message')}\n")
        elif event == "output":
            self.out.write(f"\nwrote {fields.get('path')}\n")
        elif event in ("start", "done", "info"):
            text = fields.get("message") or ", ".join(f"{k}={v}" for k, v in fields.items())
            self.out.write(f"{event}: {text}\n")
        self.out.flush()

    def progress(self, stage: str, done: int, total: int | None) -> None:
        now = time.monotonic()
        final = total is not None and done >= total
        if not final and now - self._last.get(stage, 0.0) < self.min_interval:
            return
        self._last[stage] = now
        with self._writing():
            self._progress(stage, done, total, final)

    def _progress(self, stage: str, done: int, total: int | None, final: bool) -> None:
        if self.jsonl:
            self._emit("progress", stage=stage, done=int(done), total=int(total) if total else None)
            return
        if total:
            fill = int(30 * min(done, total) / total)
            self.out.write(f"\r{stage:>10} [{'#' * fill}{'.' * (30 - fill)}] {done}/{total}")
        else:
            self.out.write(f"\r{stage:>10} {done}")
        if final:
            self.out.write("\n")
        self.out.flush()
