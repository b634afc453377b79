"""Cancellation: SIGINT / SIGTERM set a flag that every long loop checks (stdlib only)."""

from __future__ import annotations

import signal

from tar_core.errors import Cancelled

__all__ = ["StopFlag"]


class StopFlag:
    """Set by SIGINT / SIGTERM; ``check()`` raises ``Cancelled`` once it is set.

    Install it before heavy imports so a signal is never lost while torch or MediaPipe load, and
    check it inside every loop so a run stops within one step's time.
    """

    def __init__(self):
        self.signum: int | None = None
        self._old: dict = {}

    def install(self) -> StopFlag:
        self._old = {s: signal.signal(s, self._handle) for s in (signal.SIGINT, signal.SIGTERM)}
        return self

    def restore(self) -> None:
        for s, h in self._old.items():
            signal.signal(s, h)
        self._old = {}

    def _handle(self, signum, frame) -> None:
        self.signum = signum

    @property
    def stopped(self) -> bool:
        return self.signum is not None

    def check(self) -> None:
        if self.signum is not None:
            raise Cancelled(self.signum)
