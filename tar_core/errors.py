"""The engine's one error scheme: every domain error carries the exit code the CLI returns.

Errors are raised where a problem is found (the video reader, the body-model loader, ...) and turned
into one line on stderr plus the exit code in exactly one place, ``tar_core.cli.main``. The table
of codes is documented in docs/capture.md. This module imports nothing from the project.
"""

from __future__ import annotations

import signal

__all__ = [
    "EXIT_CODES", "TarError", "UsageError", "ConfigError", "DatasetError", "VideoError", "NoFramesError",
    "NoPersonError", "CheckpointError", "BodyModelError", "UnsafePickleError", "OutputError", "EngineUnavailableError",
    "MotionFileError", "Cancelled", "PipeClosed", "one_line",
]  # fmt: skip


class TarError(Exception):
    """Base of every error the engine reports to a user; ``exit_code`` is what the CLI returns."""

    exit_code = 1
    kind = "error"


class UsageError(TarError, ValueError):
    """A bad option or option value."""

    exit_code = 2
    kind = "usage"


class ConfigError(UsageError):
    """An unknown variant or an invalid configuration."""


class DatasetError(UsageError):
    """Training or evaluation data that is missing or not in the documented layout."""

    kind = "dataset"


class MotionFileError(TarError, ValueError):
    """A motion file that does not follow docs/motion-file.md; ``key`` names the offending entry."""

    exit_code = 3
    kind = "motion_file"

    def __init__(self, key: str, message: str):
        super().__init__(f"{key}: {message}")
        self.key = key


class VideoError(TarError):
    """A missing, unreadable or unsupported video or image folder."""

    exit_code = 10
    kind = "video"


class NoFramesError(VideoError):
    """A video that decodes to no frame at all."""

    exit_code = 11
    kind = "no_frames"


class NoPersonError(TarError):
    """No person found (or none where the user pointed)."""

    exit_code = 12
    kind = "no_person"


class CheckpointError(TarError, ValueError):
    """A missing, corrupt or mismatched checkpoint (or pretrained trunk file)."""

    exit_code = 13
    kind = "checkpoint"


class BodyModelError(TarError, ValueError):
    """A missing or invalid SMPL / mannequin body-model file."""

    exit_code = 14
    kind = "body_model"


class UnsafePickleError(BodyModelError):
    """A pickle that asks for something other than plain arrays (never unpickled)."""


class OutputError(TarError):
    """An output folder or file that cannot be written."""

    exit_code = 15
    kind = "output"


class EngineUnavailableError(TarError):
    """The requested engine cannot run in this installation."""

    exit_code = 16
    kind = "engine"


class Cancelled(TarError):
    """SIGINT / SIGTERM: the run stopped early; what was finished is kept."""

    kind = "cancelled"

    def __init__(self, signum: int):
        super().__init__("cancelled")
        self.signum = signum
        self.signal_name = signal.Signals(signum).name
        self.exit_code = 128 + signum


class PipeClosed(TarError):
    """Whoever read the progress output (stdout or stderr) went away: the run stops quietly, what was finished
    kept. 141 is what a shell reports for a process ended by SIGPIPE."""

    exit_code = 141
    kind = "pipe_closed"


def one_line(text: object, limit: int = 400) -> str:
    """``text`` on a single line (whitespace runs collapsed), at most ``limit`` characters: error messages
    quote foreign exceptions, whose text may span paragraphs."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


# Code -> meaning, for docs and the add-on (which maps a code to advice).
EXIT_CODES = {
    "usage": UsageError.exit_code,
    "motion_file": MotionFileError.exit_code,
    "video": VideoError.exit_code,
    "no_frames": NoFramesError.exit_code,
    "no_person": NoPersonError.exit_code,
    "checkpoint": CheckpointError.exit_code,
    "body_model": BodyModelError.exit_code,
    "output": OutputError.exit_code,
    "engine": EngineUnavailableError.exit_code,
    "pipe_closed": PipeClosed.exit_code,
    "SIGINT": 128 + signal.SIGINT,
    "SIGTERM": 128 + signal.SIGTERM,
}
