"""Capture engines behind one interface (``base.Engine``): ``tar`` (the network on crops) and ``keypoints``
(MediaPipe landmarks fitted with the body model). ``build_engine`` is the registry from names to builders.

May import: ``tar_core.capture`` (tracks, writer, cropping helpers), ``network``, ``body_model``,
``geometry``, ``motion_file``, ``util``, ``errors``. Never ``training``, ``evaluation``, ``synthetic`` or ``cli``.
"""

from __future__ import annotations

from tar_core.errors import UsageError

__all__ = ["ENGINE_NAMES", "build_engine", "resolve_engine_name"]

ENGINE_NAMES = ("tar", "keypoints")


def resolve_engine_name(name: str, checkpoint: str | None) -> str:
    """``auto`` is the tar engine when a checkpoint is given, otherwise the keypoints engine."""
    if name == "auto":
        return "tar" if checkpoint else "keypoints"
    if name not in ENGINE_NAMES:
        raise UsageError(f"unknown engine {name!r}; choose from auto, {', '.join(ENGINE_NAMES)}")
    return name


def build_engine(name: str, *, body, checkpoint: str | None = None, device: str = "auto",
                 boxes: str | None = None, batch_windows: int = 8, smooth_hz: float | None = None,
                 align: bool = True):
    """The engine called ``name``, ready to run (checkpoints loaded, so a bad one fails before tracking)."""
    if name == "tar":
        from tar_core.capture.engines.tar import TarCaptureEngine

        return TarCaptureEngine.load(checkpoint, body=body, device=device, batch_windows=batch_windows,
                                     smooth_hz=smooth_hz, align=align)
    if name == "keypoints":
        from tar_core.capture.engines.keypoints import FitConfig, KeypointsEngine

        cfg = FitConfig() if smooth_hz is None else FitConfig(cutoff_hz=smooth_hz)
        return KeypointsEngine(cfg)  # with --boxes, the landmarks come from a landmark pass inside each box
    raise UsageError(f"unknown engine {name!r}")
