"""Stream the frames of a clip, in order, with presentation timestamps.

A clip is either a video file (mp4, mov, avi, mkv, webm, ... anything OpenCV's FFmpeg backend
decodes) or a folder of images (png, jpg, jpeg, bmp, tif, tiff, webp). Frames are decoded one at a
time and handed out as RGB ``uint8`` arrays in display orientation, so a long clip never sits in
memory; iterating a reader again starts over from the first frame.

What the OpenCV FFmpeg backend does (opencv-python 4.11, checked against ffmpeg 5.1):

* Rotation. Phone clips store landscape pixels plus a display matrix. OpenCV reports the needed
  clockwise turn as ``CAP_PROP_ORIENTATION_META`` and only turns the frames itself when
  ``CAP_PROP_ORIENTATION_AUTO`` is on. That default is on up to 4.10, off in 4.11 (opencv#26795,
  put back by opencv#26800), so to apply the turn exactly once whatever the version, the reader
  switches auto-rotation off and turns the frames itself (leaving it to OpenCV if the switch is
  refused). Only multiples of 90 degrees are handled; mirrored display matrices are not.
* Timestamps. ``CAP_PROP_POS_MSEC`` after each ``read()`` is the decoded frame's real
  presentation time (FFmpeg's best-effort timestamp, minus the stream's start time). It matched
  ffprobe's per-frame timestamps exactly on variable-frame-rate mp4, mov, mkv, webm, avi and
  MPEG-TS clips, with B-frames and edit lists, so it is used directly: the frame rate is never
  assumed constant and ffprobe is not needed to read a clip. (ffprobe, when installed, only
  explains why a file could not be opened.)
* A zero-frame mp4/mov/mkv cannot be opened at all (the muxers drop the empty track), so it raises
  :class:`VideoError`; a zero-frame AVI opens and iterates to nothing.

Times are seconds from the first frame, which is at 0.0. Should a source give a frame a timestamp
not after its predecessor's (duplicates, or out-of-order pts in a broken stream), the time is
nudged to 1 microsecond after the previous one, so times are always strictly increasing.

Image folders are read in natural name order (``frame2`` before ``frame10``), skipping hidden
files and other extensions, at ``fps`` frames per second (30.0 when not given): frame ``i`` is at
``i / fps``. All images must have the size of the first (a folder of mixed sizes is refused when the
first odd one is reached); EXIF orientation is applied by OpenCV.

Faults. Only a regular file or a folder is opened (a FIFO or a device would block or never end). A
frame (or image) that does not decode is skipped and counted (``frames_skipped``), and reading goes on:
a failed read is only the end of a video once the decoded and skipped frames reach the container's
frame count (or, when the count is unknown, after ``MAX_FAILED_READS`` failed reads in a row). Frame
indices count skipped frames, so they stay the positions in the source. A clip where nothing decodes
raises :class:`VideoError`. Frames larger than ``MAX_PIXELS`` are refused before decoding (from the
container's size, or from a PNG / JPEG header), and a folder's ``fps`` must lie in ``FPS_RANGE``.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import stat
import struct
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

# FFmpeg's own messages about damaged frames would go straight to stderr; a skipped frame is counted
# instead (set before the first clip is opened, when OpenCV reads it).
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")

import cv2  # noqa: E402
import numpy as np  # noqa: E402

# OpenCV's own warnings (e.g. "backend is generally available but can't be used to capture by name") would
# add lines to the one line a failure prints; the reader says what went wrong itself.
if hasattr(cv2, "utils") and hasattr(cv2.utils, "logging"):
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)

from tar_core.errors import UsageError, VideoError

__all__ = [
    "DEFAULT_FOLDER_FPS",
    "FPS_RANGE",
    "IMAGE_EXTENSIONS",
    "MAX_PIXELS",
    "Frame",
    "VideoError",
    "VideoInfo",
    "VideoReader",
    "probe",
]

DEFAULT_FOLDER_FPS = 30.0
IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"})
TIME_NUDGE = 1e-6  # seconds added to a timestamp that does not increase
MAX_PIXELS = 1 << 27  # largest frame accepted (134 megapixels, e.g. 16384 x 8192)
FPS_RANGE = (0.01, 10000.0)  # frame rates accepted for an image folder
MAX_FAILED_READS = 1000  # failed reads in a row taken as the end of a video (without reaching its frame count)

_ROTATE_CODES = {90: cv2.ROTATE_90_CLOCKWISE, 180: cv2.ROTATE_180, 270: cv2.ROTATE_90_COUNTERCLOCKWISE}


@dataclass(frozen=True)
class VideoInfo:
    """What a clip is, as far as can be told without decoding it all.

    ``width`` and ``height`` are in display orientation (after ``rotation``, the clockwise turn in
    degrees applied to the stored frames). ``fps`` is the container's nominal (average) rate, 0.0
    if it declares none, or the given rate for image folders. ``frame_count`` is the container's
    count, which may be approximate, or None when unknown; exact for image folders.
    """

    path: str
    width: int
    height: int
    fps: float
    frame_count: int | None
    rotation: int
    codec: str
    is_image_folder: bool


@dataclass
class Frame:
    """One decoded frame: ``index`` in decode order, ``time`` in seconds from the first frame,
    ``image`` as an (H, W, 3) uint8 RGB array in display orientation."""

    index: int
    time: float
    image: np.ndarray


class VideoReader:
    """Opens a video file or image folder and streams its frames.

    ``fps`` is the frame rate of an image folder (default 30.0); it is ignored for video files,
    whose timestamps come from the container. Raises :class:`VideoError` if the path is missing,
    unreadable, not a regular file or folder, or holds no video stream or images. After (or during)
    an iteration ``frames_read`` and ``frames_skipped`` count the frames decoded and those that did
    not decode. ``stop`` (a StopFlag) is checked while undecodable frames are skipped.
    """

    def __init__(self, path: str | os.PathLike[str], fps: float | None = None, stop=None):
        self._path = os.fsdecode(os.fspath(path))
        if fps is not None and not (math.isfinite(fps) and FPS_RANGE[0] <= fps <= FPS_RANGE[1]):
            raise UsageError(f"--fps must be a frame rate from {FPS_RANGE[0]:g} to {FPS_RANGE[1]:g}, got {fps!r}")
        self._closed = False
        self._stop = stop
        self._captures: set[cv2.VideoCapture] = set()  # open by running iterations
        self._images: list[str] = []
        self.frames_read = 0
        self.frames_skipped = 0
        self.skipped_examples: list[str] = []  # the first few frames that did not decode, and why
        try:
            mode = os.stat(self._path).st_mode
        except FileNotFoundError:
            raise VideoError(f"video '{self._path}' does not exist") from None
        except OSError as exc:
            raise VideoError(f"video '{self._path}' cannot be examined ({exc.strerror or exc})") from None
        if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
            raise VideoError(f"video '{self._path}' is not a regular file or a folder of images "
                             "(a pipe, device or socket is not read)")
        if not os.access(self._path, os.R_OK):
            raise VideoError(f"video '{self._path}' is not readable (permission denied)")
        if stat.S_ISDIR(mode):
            self._images = _list_images(self._path)
            self.info = self._probe_folder(DEFAULT_FOLDER_FPS if fps is None else float(fps))
        else:
            self.info = self._probe_video()

    def __iter__(self) -> Iterator[Frame]:
        if self._closed:
            raise VideoError(f"reader for '{self._path}' is closed")
        return self._iter_folder() if self.info.is_image_folder else self._iter_video()

    def close(self) -> None:
        """Release any open decoder; the reader cannot be iterated afterwards."""
        self._closed = True
        for cap in list(self._captures):
            cap.release()
        self._captures.clear()

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- video files -------------------------------------------------------------------------

    def _open(self) -> tuple[cv2.VideoCapture, int, bool]:
        """Open a capture; return it, the display rotation and whether OpenCV applies it itself."""
        cap = cv2.VideoCapture(self._path, cv2.CAP_FFMPEG)
        if not cap.isOpened():
            cap.release()
            raise VideoError(f"cannot open video '{self._path}': {_why_unopenable(self._path)}")
        # OpenCV's default for auto-rotation changed between versions; pin it so the turn happens exactly once.
        cap.set(cv2.CAP_PROP_ORIENTATION_AUTO, 0)
        backend_rotates = bool(cap.get(cv2.CAP_PROP_ORIENTATION_AUTO))
        meta = cap.get(cv2.CAP_PROP_ORIENTATION_META)
        rotation = int(round(meta / 90.0)) * 90 % 360 if math.isfinite(meta) else 0
        return cap, rotation, backend_rotates

    def _probe_video(self) -> VideoInfo:
        cap, rotation, backend_rotates = self._open()
        try:
            width = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))
            height = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
            fps = cap.get(cv2.CAP_PROP_FPS)
            count = cap.get(cv2.CAP_PROP_FRAME_COUNT)
            fourcc = int(cap.get(cv2.CAP_PROP_FOURCC))
        finally:
            cap.release()
        if width <= 0 or height <= 0:
            raise VideoError(f"cannot open video '{self._path}': its video stream has no frame size")
        _check_pixels(self._path, width, height)
        if rotation in (90, 270) and not backend_rotates:  # OpenCV reports stored sizes unless it turns
            width, height = height, width
        return VideoInfo(
            path=self._path,
            width=width,
            height=height,
            fps=fps if math.isfinite(fps) and fps > 0 else 0.0,
            # OpenCV returns 0 (or garbage) when it cannot tell.
            frame_count=int(count) if math.isfinite(count) and 0 < count < 2**53 else None,
            rotation=rotation,
            codec=_fourcc_name(fourcc),
            is_image_folder=False,
        )

    def _skip(self, first: int, n: int, why: str) -> None:
        """Count ``n`` frames from index ``first`` that did not decode."""
        self.frames_skipped += n
        if len(self.skipped_examples) < 5:
            self.skipped_examples.append(f"frame {first}" + (f"-{first + n - 1}" if n > 1 else "") + f" ({why})")

    def _iter_video(self) -> Iterator[Frame]:
        cap, rotation, backend_rotates = self._open()
        self._captures.add(cap)
        turn = None if backend_rotates else _ROTATE_CODES.get(rotation)
        count = self.info.frame_count
        self.frames_read = self.frames_skipped = 0
        try:
            index, start, last, pending = 0, None, -math.inf, 0  # pending: failed reads since the last frame
            while not self._closed:
                try:
                    ok, bgr = cap.read()
                except cv2.error:
                    ok, bgr = False, None
                if not ok or bgr is None:
                    # A damaged frame, or the end: only the frame count (or a long run of failures) tells.
                    if (count is not None and index >= count) or pending >= MAX_FAILED_READS:
                        break
                    pending, index = pending + 1, index + 1
                    if self._stop is not None:
                        self._stop.check()
                    continue
                if pending:
                    self._skip(index - pending, pending, "does not decode")
                    pending = 0
                pts = cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
                if start is None:
                    start = pts
                time = _strictly_after(last, pts - start)
                rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
                if turn is not None:
                    rgb = cv2.rotate(rgb, turn)
                self.frames_read += 1
                yield Frame(index=index, time=time, image=rgb)
                index, last = index + 1, time
        finally:
            cap.release()
            self._captures.discard(cap)
        if pending and count is not None:  # damaged frames at the end, within the container's count
            self._skip(index - pending, pending, "does not decode")
        self._check_decoded()

    def _check_decoded(self) -> None:
        if self.frames_read == 0 and self.frames_skipped > 0:
            raise VideoError(f"no frame of '{self._path}' could be decoded ({self.frames_skipped} damaged: "
                             f"{self.skipped_examples[0]})")

    # -- image folders -----------------------------------------------------------------------

    def _probe_folder(self, fps: float) -> VideoInfo:
        first = None
        for name in self._images:  # the size of the first image that decodes
            first = _read_image(os.path.join(self._path, name))
            if first is not None:
                break
        if first is None:
            raise VideoError(f"no image of folder '{self._path}' could be decoded ({len(self._images)} damaged, "
                             f"first: {self._images[0]})")
        return VideoInfo(
            path=self._path,
            width=first.shape[1],
            height=first.shape[0],
            fps=fps,
            frame_count=len(self._images),
            rotation=0,
            codec="images",
            is_image_folder=True,
        )

    def _iter_folder(self) -> Iterator[Frame]:
        size = (self.info.height, self.info.width)
        self.frames_read = self.frames_skipped = 0
        for index, name in enumerate(self._images):
            if self._closed:
                return
            file = os.path.join(self._path, name)
            image = _read_image(file)
            if image is None:
                self._skip(index, 1, f"{name} does not decode")
                if self._stop is not None:
                    self._stop.check()
                continue
            if image.shape[:2] != size:
                raise VideoError(
                    f"image '{file}' is {image.shape[1]}x{image.shape[0]}, "
                    f"but the folder's first image is {size[1]}x{size[0]} (all images must have one size)"
                )
            self.frames_read += 1
            yield Frame(index=index, time=index / self.info.fps, image=image)
        self._check_decoded()


def probe(path: str | os.PathLike[str], fps: float | None = None) -> VideoInfo:
    """The :class:`VideoInfo` of a video file or image folder (see :class:`VideoReader`)."""
    with VideoReader(path, fps) as reader:
        return reader.info


def _strictly_after(previous: float, time: float) -> float:
    """``time``, or ``previous`` plus a microsecond if it does not come after ``previous``."""
    return time if time > previous else previous + TIME_NUDGE


def _natural_key(name: str) -> tuple[list[int | str], str]:
    # re.split with a group alternates text and digit runs, so the parts always compare like with like.
    parts = re.split(r"(\d+)", name, flags=re.ASCII)
    return [int(p) if i % 2 else p.casefold() for i, p in enumerate(parts)], name


def _list_images(folder: str) -> list[str]:
    try:
        with os.scandir(folder) as entries:
            # Hidden files include macOS "._name.png" resource forks, which are not images.
            names = [
                e.name
                for e in entries
                if not e.name.startswith(".")
                and os.path.splitext(e.name)[1].lower() in IMAGE_EXTENSIONS
                and e.is_file()
            ]
    except OSError as exc:
        raise VideoError(f"cannot list image folder '{folder}': {exc.strerror or exc}") from exc
    if not names:
        extensions = ", ".join(sorted(IMAGE_EXTENSIONS))
        raise VideoError(f"image folder '{folder}' has no images ({extensions})")
    return sorted(names, key=_natural_key)


def _check_pixels(what: str, width: int, height: int) -> None:
    if width * height > MAX_PIXELS:
        raise VideoError(f"'{what}' is {width}x{height} px ({width * height / 1e6:.0f} megapixels), more than "
                         f"the {MAX_PIXELS / 1e6:.0f} megapixels a frame may have")


def _header_size(head: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG or JPEG header, or None where it does not say (other formats, damage)."""
    if head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR" and len(head) >= 24:
        return struct.unpack(">II", head[16:24])
    if head[:2] != b"\xff\xd8":
        return None
    i = 2
    while i + 9 <= len(head):  # JPEG segments up to the first start-of-frame
        if head[i] != 0xFF:
            return None
        marker = head[i + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # markers without a length
            i += 2
            continue
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height, width = struct.unpack(">HH", head[i + 5: i + 9])
            return width, height
        i += 2 + struct.unpack(">H", head[i + 2: i + 4])[0]
    return None


def _read_image(file: str) -> np.ndarray | None:
    """Decode one image to RGB, or None when it does not decode; refuses (VideoError) an unreadable file or
    one larger than ``MAX_PIXELS``, from its header before decoding where it is a PNG or a JPEG.
    np.fromfile + imdecode also copes with non-ASCII paths on Windows."""
    try:
        if os.path.getsize(file) > 4 * MAX_PIXELS:
            raise VideoError(f"image '{file}' is a {os.path.getsize(file) / 1e9:.1f} GB file, larger than any "
                             f"image of at most {MAX_PIXELS / 1e6:.0f} megapixels")
        data = np.fromfile(file, dtype=np.uint8)
    except OSError as exc:
        raise VideoError(f"cannot read image '{file}': {exc.strerror or exc}") from exc
    size = _header_size(data[: 1 << 16].tobytes())
    if size is not None:
        _check_pixels(file, *size)
    try:
        bgr = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    except cv2.error:
        bgr = None
    if bgr is None:
        return None
    _check_pixels(file, bgr.shape[1], bgr.shape[0])
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _fourcc_name(fourcc: int) -> str:
    text = (fourcc & 0xFFFFFFFF).to_bytes(4, "little").decode("ascii", "replace").strip("\0 ")
    return text if text.isprintable() and text else "unknown"


def _why_unopenable(path: str) -> str:
    """Best explanation of why OpenCV could not open ``path``, asking ffprobe when installed."""
    generic = "not a video, or a format OpenCV's FFmpeg backend cannot read"
    ffprobe = shutil.which("ffprobe")
    if ffprobe is None:
        return generic
    # "file:" keeps a name that starts with "-" or contains ":" from being read as an option or protocol.
    target = "file:" + os.path.abspath(path)
    command = [ffprobe, "-v", "error", "-show_entries", "stream=codec_type", "-of", "csv=p=0", "-i", target]
    try:
        result = subprocess.run(command, capture_output=True, text=True, errors="replace", timeout=30)
    except (OSError, subprocess.SubprocessError):
        return generic
    if result.returncode != 0:
        lines = result.stderr.strip().splitlines()
        detail = lines[-1].removeprefix(target + ": ") if lines else "ffprobe failed"
        return f"not a readable media file ({detail})"
    if "video" not in result.stdout.split():
        return "it has no video stream (an mp4/mov/mkv with zero frames has none)"
    return "its video stream cannot be decoded by OpenCV's FFmpeg backend"
