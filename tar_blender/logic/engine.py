"""Run the engine (``python -m tar_core capture``) as a subprocess and follow its JSON lines.

Blender never imports the engine: it starts it with its own interpreter, reads one JSON object
per stdout line (``start``, ``progress``, ``output``, ``done``, ``error``) on a background thread,
and lets the UI poll without blocking. Cancel sends SIGINT, which the engine answers by flushing
finished outputs and exiting; SIGKILL follows if it does not stop in time.

Failures are reported in the engine's words: the message of its ``error`` event. When it died without
one (killed, crashed, a bug), the message is "the engine stopped unexpectedly (code N)" with the path
of the log that holds everything it wrote on stderr, never one stray stderr line (which is often a
library's log noise).
"""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import tempfile
import threading
from collections import deque
from pathlib import Path
from typing import Any

__all__ = ["EngineRun", "capture_command", "parse_event"]


def parse_event(line: str) -> dict | None:
    """One stdout line -> an event dict, or None for anything that is not an engine event."""
    line = line.strip()
    if not line.startswith("{"):
        return None
    try:
        event = json.loads(line)
    except json.JSONDecodeError:
        return None
    return event if isinstance(event, dict) and isinstance(event.get("event"), str) else None


def capture_command(python: str, clip: str, out_dir: str, engine: str = "auto", checkpoint: str = "",
                    body: str = "", device: str = "auto", focal: float = 0.0, max_people: int = 0,
                    person: str = "", list_people: bool = False, smooth_hz: float = 0.0) -> list[str]:
    """The engine's command line for one capture with JSON-line progress. ``person``: empty for all people,
    else an id from the people preview or "X,Y" (a point on the person's first frame); ``list_people``:
    the dry run that writes that preview (people.png, people.json) into ``out_dir``; ``smooth_hz``: the
    keypoints engine's low-pass cut-off (0: the engine's default)."""
    absolute = os.path.abspath  # the engine runs in its own folder (see EngineRun)
    cmd = [python, "-m", "tar_core", "capture", absolute(clip), "-o", absolute(out_dir), "--progress", "jsonl",
           "--device", device]
    if engine in ("tar", "keypoints"):
        cmd += ["--engine", engine]
    if checkpoint:
        cmd += ["--checkpoint", absolute(checkpoint)]
    if body:
        cmd += ["--body", absolute(body)]
    if focal and focal > 0:
        cmd += ["--focal", f"{focal:g}"]
    if max_people and max_people > 0:
        cmd += ["--max-people", str(int(max_people))]
    if smooth_hz and smooth_hz > 0 and engine != "tar":
        cmd += ["--smooth-hz", f"{smooth_hz:g}"]
    if person and person.strip():
        cmd += ["--person", person.strip().replace(" ", "")]
    if list_people:
        cmd += ["--list-people"]
    return cmd


def people_preview(out_dir: str) -> list[dict]:
    """The people listed by a ``--list-people`` run in ``out_dir`` (``people.json``), or [] if none."""
    try:
        with open(os.path.join(out_dir, "people.json"), encoding="utf-8") as fh:
            people = json.load(fh).get("people", [])
    except (OSError, ValueError, AttributeError):
        return []
    return [p for p in people if isinstance(p, dict) and isinstance(p.get("id"), int)]


class EngineRun:
    """One engine subprocess: start, poll events without blocking, cancel, and the outcome."""

    def __init__(self, cmd: list[str], env: dict | None = None, cwd: str | None = None,
                 engine_path: str | Path | None = None, log_path: str | Path | None = None):
        """``log_path``: where the engine's stderr is kept (default: a new file in the temporary folder)."""
        env = dict(os.environ if env is None else env)
        if engine_path:  # where tar_core lives (inside the installed add-on)
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(engine_path), env.get("PYTHONPATH", "")]))
            # `python -m` puts the working folder first on sys.path: run there, so that this engine
            # is the one imported (not another tar_core in whatever folder Blender was started from).
            cwd = cwd or str(engine_path)
        env["PYTHONUNBUFFERED"] = "1"
        self.cmd = cmd
        self.events: queue.Queue = queue.Queue()
        self.stderr_tail: deque[str] = deque(maxlen=40)
        self.outputs: list[str] = []
        self.last_progress: dict | None = None
        self.error: str | None = None
        self.error_code: int | None = None
        self.done: dict | None = None
        self.cancelled = False
        self.log_path, self._log = self._open_log(log_path)
        kwargs: dict[str, Any] = {"start_new_session": True} if os.name == "posix" else {}
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                     text=True, encoding="utf-8", errors="replace", env=env, cwd=cwd, **kwargs)
        self._readers = [threading.Thread(target=self._read_stdout, daemon=True),
                         threading.Thread(target=self._read_stderr, daemon=True)]
        for t in self._readers:
            t.start()

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None  # PIPE
        for line in self.proc.stdout:
            event = parse_event(line)
            if event is not None:
                self.events.put(event)

    @staticmethod
    def _open_log(log_path):
        try:
            if log_path is None:
                fd, name = tempfile.mkstemp(prefix="tar-engine-", suffix=".log")
                return name, os.fdopen(fd, "w", encoding="utf-8", errors="replace")
            Path(log_path).parent.mkdir(parents=True, exist_ok=True)
            return str(log_path), open(log_path, "w", encoding="utf-8", errors="replace")
        except OSError:
            return None, None  # no log: the failure message says so

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None  # PIPE
        try:
            for line in self.proc.stderr:
                self.stderr_tail.append(line.rstrip("\n"))
                if self._log is not None:
                    try:
                        self._log.write(line)
                        self._log.flush()
                    except OSError:
                        self._log = None
        finally:
            if self._log is not None:
                self._log.close()

    def poll(self) -> list[dict]:
        """Events that arrived since the last call (never blocks); updates the summary fields."""
        got = []
        while True:
            try:
                event = self.events.get_nowait()
            except queue.Empty:
                break
            kind = event["event"]
            if kind == "progress":
                self.last_progress = event
            elif kind == "output" and "path" in event:
                self.outputs.append(str(event["path"]))
            elif kind == "error":
                self.error = str(event.get("message") or "engine error")
                code = event.get("code")
                self.error_code = code if isinstance(code, int) else None
            elif kind == "done":
                self.done = event
            got.append(event)
        return got

    @property
    def running(self) -> bool:
        return self.proc.poll() is None

    @property
    def returncode(self) -> int | None:
        return self.proc.poll()

    def wait(self, timeout: float | None = None) -> int:
        rc = self.proc.wait(timeout)
        for t in self._readers:
            t.join(timeout=5)
        self.poll()
        return rc

    def cancel(self, grace: float = 5.0) -> int:
        """Ask the engine to stop (SIGINT), kill it if it has not stopped after ``grace`` seconds."""
        self.cancelled = True
        if self.running:
            try:
                self.proc.send_signal(signal.SIGINT if os.name == "posix" else signal.CTRL_BREAK_EVENT)
                return self.wait(grace)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        return self.wait()

    # Non-blocking stop, for the UI (``cancel`` above waits for the engine).
    def interrupt(self) -> None:
        """Send the engine SIGINT and return at once; it flushes the people it finished and exits."""
        self.cancelled = True
        if self.running:
            try:
                self.proc.send_signal(signal.SIGINT if os.name == "posix" else signal.CTRL_BREAK_EVENT)
            except OSError:
                pass

    def kill(self) -> None:
        """Stop the engine now (SIGKILL), e.g. when the file it captures for is closed."""
        self.cancelled = True
        if self.running:
            self.proc.kill()

    def failure_message(self) -> str | None:
        """What went wrong: the engine's ``error`` event message, or that it stopped unexpectedly (its exit
        code, and the log with its stderr); None if it succeeded or is still running."""
        rc = self.returncode
        if rc is None or (rc == 0 and self.error is None):
            return None
        if self.cancelled:
            return "capture cancelled"
        if self.error:
            return self.error
        log = f"; its log: {self.log_path}" if self.log_path else ""
        raised = self._raised()
        return f"the engine stopped unexpectedly (code {rc}){': ' + raised if raised else ''}{log}"

    def _raised(self) -> str | None:
        """The Python exception that ended the engine, if its stderr ends with one (``ModuleNotFoundError: …``
        means no engine is set up); never another stderr line, such as a library's log message."""
        for line in reversed(self.stderr_tail):
            text = line.strip()
            if _EXCEPTION_LINE.match(text):
                return text
        return None


_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception)(: .*)?$")


def default_python() -> str:
    """The interpreter that runs the engine: $TAR_PYTHON, else this one."""
    return os.environ.get("TAR_PYTHON") or sys.executable
