"""Engine set-up and check, stdlib only: a virtual environment with torch and the engine's
requirements, made by a background thread that the UI polls, never waits on.

- torch comes from the CPU-only index where no NVIDIA GPU is present (a tenth of the download);
- pip runs with ``--progress-bar off`` and every output line is kept, so the panel shows the
  current line and a failure shows pip's own ``ERROR:`` lines, not only the command;
- a failed or cancelled set-up removes the environment it started, and only an environment that
  finished (it holds ``READY_MARKER``) is ever used as the engine.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["CHECK_SCRIPT", "READY_MARKER", "TORCH", "TORCH_CPU_INDEX", "SetupRun", "Step", "has_nvidia_gpu",
           "pip_reason", "setup_steps", "venv_python", "venv_ready"]

TORCH = "torch==2.13.0"
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
READY_MARKER = ".tar-engine-ready"


def venv_python(venv: str | os.PathLike[str]) -> Path:
    return Path(venv) / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def venv_ready(venv: str | os.PathLike[str]) -> bool:
    """A finished environment: its interpreter exists and the set-up wrote its marker last."""
    return venv_python(venv).is_file() and (Path(venv) / READY_MARKER).is_file()


def has_nvidia_gpu() -> bool:
    """An NVIDIA driver is present (the CUDA build of torch is worth its download)."""
    if sys.platform == "darwin":
        return False
    return shutil.which("nvidia-smi") is not None or Path("/proc/driver/nvidia/version").exists()


@dataclass
class Step:
    label: str
    cmd: list[str]


def setup_steps(base_python: str, venv: str | os.PathLike[str], requirements: str | os.PathLike[str], *,
                gpu: bool, index_url: str = "") -> list[Step]:
    """The commands, in order. ``index_url`` (a mirror) replaces PyPI and the torch index alike."""
    py = str(venv_python(venv))
    pip = [py, "-m", "pip", "install", "--progress-bar", "off", "--disable-pip-version-check"]
    index = ["--index-url", index_url] if index_url else []
    torch_index = index or ([] if gpu or sys.platform == "darwin" else ["--index-url", TORCH_CPU_INDEX])
    return [
        Step("Creating the environment", [base_python, "-m", "venv", str(venv)]),
        Step("Installing torch" + ("" if gpu else " (CPU build)"), [*pip, *torch_index, TORCH]),
        Step("Installing the engine's packages", [*pip, *index, "-r", str(requirements)]),
    ]


def pip_reason(lines: list[str]) -> str:
    """pip's own words for a failure: its ``ERROR:`` lines (else the last non-empty line)."""
    errors = [ln.strip() for ln in lines if ln.strip().startswith("ERROR:")]
    if errors:
        return " ".join(dict.fromkeys(errors))  # in order, once each
    rest = [ln.strip() for ln in lines if ln.strip()]
    return rest[-1] if rest else "no output"


@dataclass
class _State:
    step: int = 0
    label: str = ""
    line: str = ""
    finished: bool = False
    error: str | None = None
    lines: deque[str] = field(default_factory=lambda: deque(maxlen=400))


class SetupRun:
    """Run the set-up steps on a thread. ``status()`` never blocks; ``cancel()`` stops the current command.

    On any failure the environment folder is removed when this run created it (or found it
    unfinished), so no half-made environment is ever picked up.
    """

    def __init__(self, steps: list[Step], venv: str | os.PathLike[str], env: dict[str, str] | None = None):
        self.steps = steps
        self.venv = Path(venv)
        self.env = dict(os.environ if env is None else env)
        self.env["PYTHONUNBUFFERED"] = "1"
        self.env.pop("PYTHONPATH", None)  # the new environment must not see this process's packages
        self.env.pop("PYTHONHOME", None)
        self.started = time.monotonic()
        self._state = _State()
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[str] | None = None
        self._cancel = False
        if self.venv.exists() and not venv_ready(self.venv):  # a half-made one from an earlier attempt
            shutil.rmtree(self.venv, ignore_errors=True)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def status(self) -> tuple[float, str]:
        """(fraction, text) for a progress bar."""
        with self._lock:
            s = self._state
            n = len(self.steps)
            if s.finished:
                return 1.0, s.error or "Engine ready"
            elapsed = time.monotonic() - self.started
            return s.step / n, f"{s.step + 1}/{n} {s.label} ({elapsed:.0f} s): {s.line}"[:200]

    @property
    def finished(self) -> bool:
        with self._lock:
            return self._state.finished

    @property
    def error(self) -> str | None:
        with self._lock:
            return self._state.error

    @property
    def output(self) -> list[str]:
        with self._lock:
            return list(self._state.lines)

    def cancel(self) -> None:
        self._cancel = True
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.terminate()

    def wait(self, timeout: float | None = None) -> bool:
        self._thread.join(timeout)
        return self.finished

    def _run(self) -> None:
        error = None
        try:
            for i, step in enumerate(self.steps):
                with self._lock:
                    self._state.step, self._state.label, self._state.line = i, step.label, " ".join(step.cmd[:3])
                error = self._run_step(step)
                if error:
                    break
        except OSError as exc:
            error = f"{self._state.label} failed: {exc}"
        if error is None:
            try:
                (self.venv / READY_MARKER).write_text(time.strftime("%Y-%m-%d %H:%M:%S\n"), encoding="utf-8")
            except OSError as exc:
                error = f"cannot finish the environment: {exc}"
        if error is not None:
            shutil.rmtree(self.venv, ignore_errors=True)
        with self._lock:
            self._state.finished, self._state.error = True, error

    def _run_step(self, step: Step) -> str | None:
        if self._cancel:
            return "set-up cancelled"
        proc = subprocess.Popen(step.cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                text=True, encoding="utf-8", errors="replace", env=self.env)
        self._proc = proc
        lines: list[str] = []
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.rstrip()
            if not line:
                continue
            lines.append(line)
            with self._lock:
                self._state.lines.append(line)
                self._state.line = line
        rc = proc.wait()
        self._proc = None
        if self._cancel:
            return "set-up cancelled"
        if rc != 0:
            return f"{step.label} failed (exit {rc}): {pip_reason(lines)}"
        return None


# Run by the engine's interpreter (tar_core on its path): one JSON line on what is installed.
CHECK_SCRIPT = r"""
import importlib, json, sys
out = {"event": "check", "python": sys.executable, "version": sys.version.split()[0], "packages": {}}
for name in ("numpy", "torch", "scipy", "cv2", "smplx", "mediapipe", "tar_core"):
    try:
        m = importlib.import_module(name)
        out["packages"][name] = str(getattr(m, "__version__", "ok"))
    except Exception as exc:
        out["packages"][name] = None
        out.setdefault("missing", []).append(f"{name} ({type(exc).__name__}: {exc})")
try:
    import torch
    out["cuda"] = bool(torch.cuda.is_available())
except Exception:
    out["cuda"] = None
print(json.dumps(out), flush=True)
"""
