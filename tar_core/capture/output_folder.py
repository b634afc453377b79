"""A capture's output folder: one run at a time, and never a mix of two runs' files.

``OutputFolder.open()`` (at the start of a capture):

1. makes the folder and checks it is writable;
2. takes the lock ``.tar-capture.lock`` (created exclusively; it holds the pid, host, start time and clip
   of the run). A lock whose process is alive makes the capture fail with ``OutputError`` naming that
   run; one left by a process that is gone (killed, crashed) is taken over;
3. moves the previous run's ``summary.json`` and ``person_*.npz`` aside into ``previous/`` (summary first,
   so an interrupted move never leaves a summary describing files that are gone; ``previous/`` holds one
   earlier run and is replaced each time).

The pipeline then writes ``summary.json`` at once with ``"completed": false`` and the run's ``run_id``: the
run marker. ``close()`` removes the lock. Write failures (disk full, read-only) are ``OutputError`` (15).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import tempfile
import time
import uuid
from pathlib import Path

from tar_core.errors import OutputError

__all__ = ["LOCK_NAME", "PREVIOUS_NAME", "OutputFolder", "pid_alive"]

LOCK_NAME = ".tar-capture.lock"
PREVIOUS_NAME = "previous"
SUMMARY_NAME = "summary.json"


def pid_alive(pid: int) -> bool:
    """Whether a process with this id runs on this machine (never signals it)."""
    if pid <= 0:
        return False
    if os.name == "posix":
        try:
            os.kill(pid, 0)  # signal 0: existence check only
        except ProcessLookupError:
            return False
        except PermissionError:  # exists, owned by someone else
            return True
        except OverflowError:
            return False
        return True
    import ctypes  # Windows: os.kill would terminate the process

    kernel32 = ctypes.windll.kernel32
    handle = kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
    if not handle:
        return False
    try:
        code = ctypes.c_ulong()
        return bool(kernel32.GetExitCodeProcess(handle, ctypes.byref(code))) and code.value == 259  # STILL_ACTIVE
    finally:
        kernel32.CloseHandle(handle)


def _write_error(path: Path, exc: OSError) -> OutputError:
    return OutputError(f"cannot write {path}: {exc.strerror or exc}")


class OutputFolder:
    """The lock and the run marker of one capture into ``path`` (see the module docstring)."""

    def __init__(self, path: str | Path, clip: str = ""):
        self.path = Path(path)
        self.clip = clip
        self.lock = self.path / LOCK_NAME
        self.run_id = uuid.uuid4().hex
        self.started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        self.moved_aside: list[str] = []
        self._locked = False

    # ---------------------------------------------------------------------------------------- opening
    def open(self) -> OutputFolder:
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=self.path, prefix=".write-test-"):
                pass
        except OSError as exc:
            raise OutputError(f"output directory not writable: {self.path} ({exc.strerror or exc})") from None
        self._take_lock()
        try:
            self._set_previous_aside()
        except BaseException:
            self.close()
            raise
        return self

    def _lock_record(self) -> dict:
        return {"pid": os.getpid(), "host": socket.gethostname(), "started": self.started, "run_id": self.run_id,
                "clip": self.clip}

    def _take_lock(self) -> None:
        for _attempt in range(3):
            try:
                fd = os.open(self.lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                self._take_over_stale_lock()
                continue
            except OSError as exc:
                raise _write_error(self.lock, exc) from None
            try:
                with os.fdopen(fd, "w") as fh:
                    json.dump(self._lock_record(), fh)
            except OSError as exc:
                self.lock.unlink(missing_ok=True)
                raise _write_error(self.lock, exc) from None
            self._locked = True
            return
        raise OutputError(f"{self.path}: could not take the lock {LOCK_NAME} (another capture keeps taking it)")

    def _take_over_stale_lock(self) -> None:
        """Remove the lock if its process is gone; raise OutputError naming the run that holds it otherwise."""
        try:
            text = self.lock.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return  # released meanwhile: try again
        except OSError as exc:
            raise OutputError(f"{self.lock}: cannot read the lock ({exc.strerror or exc})") from None
        try:
            other = json.loads(text)
            pid, host = int(other["pid"]), str(other.get("host", ""))
        except (ValueError, TypeError, KeyError):
            # Being written this very moment, or damaged: a fresh one is another run starting, an old one junk.
            if time.time() - self._mtime() < 5.0:
                raise OutputError(f"{self.path} is in use by another capture just starting ({LOCK_NAME})") from None
            pid, host, other = 0, socket.gethostname(), {}
        if host == socket.gethostname() and not pid_alive(pid):
            # Stale: rename it away first, so two runs taking over the same stale lock cannot both win.
            stale = self.lock.with_name(f"{LOCK_NAME}.stale-{os.getpid()}")
            try:
                os.replace(self.lock, stale)
                stale.unlink(missing_ok=True)
            except FileNotFoundError:
                pass
            except OSError as exc:
                raise OutputError(f"{self.lock}: cannot take over the stale lock ({exc.strerror or exc})") from None
            return
        where = f"pid {pid}" + (f" on {host}" if host != socket.gethostname() else "")
        raise OutputError(
            f"{self.path} is in use by another capture ({where}, started {other.get('started', '?')}, clip "
            f"{other.get('clip') or '?'}); wait for it, cancel it, or remove {self.lock} if that run is gone")

    def _mtime(self) -> float:
        try:
            return self.lock.stat().st_mtime
        except OSError:
            return 0.0

    def _set_previous_aside(self) -> None:
        """Move the last run's summary and motion files into ``previous/`` (summary first)."""
        old = [self.path / SUMMARY_NAME] if (self.path / SUMMARY_NAME).is_file() else []
        old += sorted(p for p in self.path.glob("person_*.npz") if p.is_file())
        if not old:
            return
        previous = self.path / PREVIOUS_NAME
        try:
            if previous.is_dir() and not previous.is_symlink():
                shutil.rmtree(previous)
            elif previous.exists() or previous.is_symlink():
                previous.unlink()
            previous.mkdir()
            for file in old:
                os.replace(file, previous / file.name)
                self.moved_aside.append(file.name)
        except OSError as exc:
            raise OutputError(f"{self.path}: cannot move the previous run's files aside into {previous} "
                              f"({exc.strerror or exc})") from None

    # ---------------------------------------------------------------------------------------- closing
    def close(self) -> None:
        """Release the lock (only ours)."""
        if not self._locked:
            return
        self._locked = False
        try:
            if json.loads(self.lock.read_text()).get("run_id") == self.run_id:
                self.lock.unlink()
        except (OSError, ValueError):
            pass

    def __enter__(self) -> OutputFolder:
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()

