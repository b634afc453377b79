"""The PoseLandmarker ``.task`` bundle, built offline from the two models inside the ``mediapipe`` wheel.

MediaPipe's Tasks-API ``PoseLandmarker`` (several people per frame) wants a ``.task`` bundle that its docs
download. The wheel already holds both models it needs (``pose_detection.tflite`` and
``pose_landmark_full.tflite``) but without TFLite metadata, so this module adds the image-input
normalisation with mediapipe's own metadata writer (detector: mean 127.5, std 127.5; landmark model:
mean 0, std 255 -- with wrong values it runs and finds nobody) and zips the two *uncompressed*
(``ZIP_STORED``; compressed bundles are refused) as ``pose_detector.tflite`` and
``pose_landmarks_detector.tflite``. Facts checked in ``../shared/docs/multi-person.md``.

The bundle is built at first use into the user's cache folder (``$XDG_CACHE_HOME/tar-mocap`` or
``~/.cache/tar-mocap``), named after the hash of the two wheel models so a new mediapipe wheel gets a new
bundle, and written atomically (``util.atomic``: a temporary file in the same folder, then a rename), so two
processes building it at once both end with a whole file.
"""

from __future__ import annotations

import hashlib
import io
import os
import zipfile
from pathlib import Path

from tar_core.util.atomic import atomic_path

__all__ = ["cache_dir", "pose_bundle_path", "wheel_models"]

DETECTOR = ("modules/pose_detection/pose_detection.tflite", 127.5, 127.5, 2)
LANDMARKER = ("modules/pose_landmark/pose_landmark_full.tflite", 0.0, 255.0, 5)


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/tar-mocap``, or ``~/.cache/tar-mocap``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "tar-mocap"


def wheel_models() -> tuple[Path, Path]:
    """Paths of the detector and the landmark model inside the installed mediapipe wheel."""
    import mediapipe

    root = Path(mediapipe.__file__).resolve().parent
    return root / DETECTOR[0], root / LANDMARKER[0]


def _with_metadata(model: bytes, mean: float, std: float, n_outputs: int) -> bytes:
    from mediapipe.tasks.python.metadata.metadata_writers import metadata_writer

    writer = metadata_writer.MetadataWriter.create(model).add_image_input(norm_mean=[mean], norm_std=[std])
    for _ in range(n_outputs):
        writer.add_feature_output()
    tflite, _ = writer.populate()
    return tflite


def _build(detector: bytes, landmarker: bytes) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr("pose_detector.tflite", _with_metadata(detector, *DETECTOR[1:]))
        zf.writestr("pose_landmarks_detector.tflite", _with_metadata(landmarker, *LANDMARKER[1:]))
    return buf.getvalue()


def pose_bundle_path(folder: Path | None = None) -> Path:
    """The bundle for the installed wheel, built (atomically) if it is not in the cache yet."""
    det_path, lm_path = wheel_models()
    detector, landmarker = det_path.read_bytes(), lm_path.read_bytes()
    key = hashlib.sha256(hashlib.sha256(detector).digest() + hashlib.sha256(landmarker).digest()).hexdigest()
    folder = Path(folder) if folder is not None else cache_dir()
    path = folder / f"pose_landmarker_{key[:16]}.task"
    if path.is_file():
        return path
    data = _build(detector, landmarker)
    with atomic_path(path, suffix=".task") as tmp:
        tmp.write_bytes(data)
    return path
