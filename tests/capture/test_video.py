"""Tests for tar_core.capture.video: frame streaming with real timestamps, rotation, image folders, errors.

Every clip is made here, from frames with a known pattern: a red square in the top-left corner
(shows orientation and RGB order) and the frame index in binary as white blocks along the bottom
edge (shows order). Plain clips are written with cv2.VideoWriter; clips that need metadata
(rotation, variable frame rate) with the ffmpeg command-line tool, and those tests are skipped
when it is not installed.
"""

from __future__ import annotations

import math
import shutil
import subprocess
import tracemalloc
from pathlib import Path

import cv2
import numpy as np
import pytest

from tar_core.capture.video import DEFAULT_FOLDER_FPS, TIME_NUDGE, Frame, VideoReader, _strictly_after, probe
from tar_core.errors import VideoError

W, H = 128, 96
MARK = 24  # side of the red corner square
BITS = 10  # index blocks: enough for 1024 frames
RED = (255, 0, 0)

FFMPEG = shutil.which("ffmpeg")
needs_ffmpeg = pytest.mark.skipif(FFMPEG is None, reason="the ffmpeg command-line tool is not installed")


# --------------------------------------------------------------------------------------------- helpers
def make_frame(index: int, width: int = W, height: int = H) -> np.ndarray:
    """RGB frame: grey, a red top-left square, ``index`` in binary as 12x12 white blocks at the bottom."""
    image = np.full((height, width, 3), 40, np.uint8)
    image[:MARK, :MARK] = RED
    for bit in range(BITS):
        if index >> bit & 1:
            image[height - 16 : height - 4, 4 + 12 * bit : 16 + 12 * bit] = 255
    return image


def read_index(image: np.ndarray) -> int:
    """The index drawn by make_frame, read from the block centres of an upright frame."""
    height = image.shape[0]
    centres = [image[height - 10, 10 + 12 * bit].mean() for bit in range(BITS)]
    return sum(1 << bit for bit, value in enumerate(centres) if value > 128)


def marker_corner(image: np.ndarray) -> str:
    """Which corner ('tl', 'tr', 'bl', 'br') holds the red square."""
    s = MARK // 2
    patches = {"tl": image[:s, :s], "tr": image[:s, -s:], "bl": image[-s:, :s], "br": image[-s:, -s:]}
    redness = {k: float(p[..., 0].mean()) - float(p[..., 2].mean()) for k, p in patches.items()}
    return max(redness, key=redness.get)


def write_clip(path: Path, count: int, fourcc: str = "mp4v", fps: float = 30.0, size=(W, H)) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, size)
    assert writer.isOpened(), f"cv2 cannot write {path} with {fourcc}"
    for i in range(count):
        writer.write(cv2.cvtColor(make_frame(i, *size), cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def write_image(path: Path, rgb: np.ndarray) -> None:
    # imencode + tofile: independent of how OpenCV handles non-ASCII file names.
    ok, data = cv2.imencode(path.suffix, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    assert ok
    data.tofile(str(path))


def ffmpeg(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([FFMPEG, "-v", "error", "-y", *args], capture_output=True, text=True)


def ffmpeg_ok(*args: str) -> None:
    result = ffmpeg(*args)
    assert result.returncode == 0, result.stderr


def h264_or_mpeg4() -> str:
    encoders = subprocess.run([FFMPEG, "-hide_banner", "-encoders"], capture_output=True, text=True).stdout
    return "libx264" if " libx264 " in encoders else "mpeg4"


def mean_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


# --------------------------------------------------------------------------------------------- video files
CV2_FORMATS = [("mp4", "mp4v"), ("mov", "mp4v"), ("avi", "MJPG"), ("mkv", "XVID"), ("webm", "VP80")]


@pytest.mark.parametrize(("ext", "fourcc"), CV2_FORMATS)
def test_every_frame_in_order(tmp_path, ext, fourcc):
    clip = write_clip(tmp_path / f"clip.{ext}", 40, fourcc)
    with VideoReader(clip) as reader:
        info = reader.info
        frames = list(reader)
    assert (info.width, info.height, info.rotation, info.is_image_folder) == (W, H, 0, False)
    assert info.fps == pytest.approx(30.0, rel=1e-3)
    assert info.frame_count is None or abs(info.frame_count - 40) <= 3  # containers may estimate
    assert info.codec and info.codec != "images"
    assert info.path == str(clip)
    assert [f.index for f in frames] == list(range(40))
    assert [read_index(f.image) for f in frames] == list(range(40))
    np.testing.assert_allclose([f.time for f in frames], np.arange(40) / 30.0, atol=1e-3)
    for frame in frames:
        assert isinstance(frame, Frame)
        assert frame.image.shape == (H, W, 3) and frame.image.dtype == np.uint8
        assert frame.image.flags.c_contiguous
        assert marker_corner(frame.image) == "tl"
    red = frames[0].image[4 : MARK - 4, 4 : MARK - 4].mean(axis=(0, 1))
    assert red[0] > 180 and red[2] < 80  # RGB, not BGR
    assert probe(clip) == info


def test_iterating_again_restarts_and_close_stops(tmp_path):
    clip = write_clip(tmp_path / "clip.mp4", 10)
    reader = VideoReader(clip)
    first = [f.index for f, _ in zip(reader, range(3), strict=False)]
    assert first == [0, 1, 2]
    assert [read_index(f.image) for f in reader] == list(range(10))
    running = iter(reader)
    assert next(running).index == 0
    reader.close()
    assert list(running) == []  # its decoder was released
    with pytest.raises(VideoError, match="closed"):
        iter(reader)


def test_long_clip_keeps_memory_flat(tmp_path):
    count, size = 600, (320, 240)
    clip = write_clip(tmp_path / "long.mp4", count, size=size)
    frame_bytes = size[0] * size[1] * 3
    reader = VideoReader(clip)
    seen = 0
    tracemalloc.start()
    try:
        for frame in reader:
            assert frame.index == seen
            seen += 1
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert seen == count
    assert peak >= frame_bytes  # the frames' arrays are traced, so the bound below means something
    assert peak < 8 * frame_bytes, f"peak {peak} bytes for {count} frames of {frame_bytes}"


def test_zero_frame_avi_yields_nothing(tmp_path):
    clip = write_clip(tmp_path / "empty.avi", 0, "MJPG")
    with VideoReader(clip) as reader:
        assert (reader.info.width, reader.info.height) == (W, H)
        assert list(reader) == []


def test_zero_frame_mp4_has_no_video_stream(tmp_path):
    # The mp4 muxer drops a track without samples, so such a file is not a video at all.
    clip = write_clip(tmp_path / "empty.mp4", 0)
    with pytest.raises(VideoError, match="empty.mp4"):
        VideoReader(clip)


def test_missing_path(tmp_path):
    missing = tmp_path / "no such clip.mp4"
    for call in (VideoReader, probe):
        with pytest.raises(VideoError, match="does not exist") as err:
            call(missing)
        assert str(missing) in str(err.value)


@pytest.mark.parametrize("content", [b"this is plain text, not a video\n" * 40, b""], ids=["text", "empty"])
def test_not_a_video(tmp_path, content):
    fake = tmp_path / "fake.mp4"
    fake.write_bytes(content)
    for call in (VideoReader, probe):
        with pytest.raises(VideoError, match="cannot open video") as err:
            call(fake)
        assert str(fake) in str(err.value)


def test_not_a_video_without_ffprobe(tmp_path, monkeypatch):
    # ffprobe only refines the message; without it the error is still raised and names the file.
    monkeypatch.setattr("tar_core.capture.video.shutil.which", lambda name: None)
    fake = tmp_path / "fake.mov"
    fake.write_bytes(b"\x00\x01 not a movie" * 100)
    with pytest.raises(VideoError, match="fake.mov"):
        VideoReader(fake)


def test_path_with_spaces_and_non_ascii(tmp_path):
    folder = tmp_path / "clips ü 動画"
    folder.mkdir()
    clip = write_clip(folder / "my clip é.mp4", 12)
    with VideoReader(clip) as reader:
        assert reader.info.path == str(clip)
        assert [read_index(f.image) for f in reader] == list(range(12))


def test_bad_fps():
    for fps in (0, -1.0, math.nan, math.inf):
        with pytest.raises(ValueError, match="fps"):
            VideoReader("whatever", fps)


def test_timestamps_nudged_to_increase():
    assert _strictly_after(-math.inf, 0.0) == 0.0
    assert _strictly_after(1.0, 1.5) == 1.5
    assert _strictly_after(1.0, 1.0) == 1.0 + TIME_NUDGE  # duplicate
    assert _strictly_after(1.0, 0.9) == 1.0 + TIME_NUDGE  # out of order


# --------------------------------------------------------------------------------------------- ffmpeg-made clips
def tag_rotation(src: Path, dst: Path, degrees: int) -> None:
    """Copy ``src`` with a display rotation, however the installed ffmpeg spells it."""
    # ffmpeg >= 6 ignores the rotate tag and takes -display_rotation (an input option) instead.
    if ffmpeg("-display_rotation", str(degrees), "-i", str(src), "-c", "copy", str(dst)).returncode != 0:
        ffmpeg_ok("-i", str(src), "-c", "copy", "-metadata:s:v:0", f"rotate={degrees}", str(dst))


@needs_ffmpeg
@pytest.mark.parametrize("degrees", [90, 180, 270])
def test_rotated_clip_is_upright(tmp_path, degrees):
    src = write_clip(tmp_path / "plain.mp4", 6)
    clip = tmp_path / "rotated.mp4"
    tag_rotation(src, clip, degrees)
    # ffmpeg turns the frames upright itself when decoding, as players do: that is the reference.
    ffmpeg_ok("-i", str(clip), "-frames:v", "1", str(tmp_path / "reference.png"))
    reference = cv2.cvtColor(cv2.imread(str(tmp_path / "reference.png")), cv2.COLOR_BGR2RGB)
    candidates = {k: np.rot90(make_frame(0), k) for k in range(4)}  # k counter-clockwise quarter turns
    turns = [k for k, c in candidates.items() if c.shape == reference.shape and mean_diff(c, reference) < 10]
    assert len(turns) == 1 and turns[0] != 0, "the rotation tag did not take"
    ccw = 90 * turns[0]

    with VideoReader(clip) as reader:
        info = reader.info
        frames = list(reader)
    assert info.rotation == (-ccw) % 360  # clockwise turn
    expected_size = (H, W) if ccw in (90, 270) else (W, H)
    assert (info.width, info.height) == expected_size
    assert len(frames) == 6
    assert mean_diff(frames[0].image, reference) < 3
    assert marker_corner(frames[0].image) == {90: "bl", 180: "br", 270: "tr"}[ccw]
    for frame in frames:
        assert frame.image.shape == (info.height, info.width, 3)
        assert read_index(np.rot90(frame.image, -turns[0])) == frame.index


def write_vfr_clip(folder: Path, clip: Path, durations: list[float]) -> None:
    """Encode make_frame images so that frame i lasts durations[i], in ticks of 1/600 s (exact here)."""
    for i in range(len(durations)):
        write_image(folder / f"f{i:03d}.png", make_frame(i))
    ticks = np.round(np.concatenate([[0.0], np.cumsum(durations)[:-1]]) * 600).astype(int)
    expr = str(ticks[-1])
    for n in range(len(ticks) - 2, -1, -1):
        expr = f"if(eq(N,{n}),{ticks[n]},{expr})"
    args = ["-framerate", "30", "-i", str(folder / "f%03d.png"), "-vf", f"settb=1/600,setpts='{expr}'"]
    # The encoder's time base would otherwise be 1/30 and round the times to it; mpeg4 allows at most 1/65535.
    out = ["-enc_time_base", "1/600", "-c:v", h264_or_mpeg4(), "-pix_fmt", "yuv420p"]
    # Keep every frame at its own time; -fps_mode is ffmpeg >= 5.1, -vsync the older spelling.
    if ffmpeg(*args, "-fps_mode", "passthrough", *out, str(clip)).returncode != 0:
        ffmpeg_ok(*args, "-vsync", "passthrough", *out, str(clip))


@needs_ffmpeg
@pytest.mark.parametrize("ext", ["mp4", "mkv"])
def test_variable_frame_rate_keeps_timestamps(tmp_path, ext):
    durations = [1 / 30, 1 / 10, 1 / 30, 1 / 5, 1 / 15, 1 / 30, 1 / 60, 1 / 10, 1 / 30, 1 / 5, 1 / 30, 1 / 30]
    clip = tmp_path / f"vfr.{ext}"
    write_vfr_clip(tmp_path, clip, durations)
    with VideoReader(clip) as reader:
        frames = list(reader)
    times = np.array([f.time for f in frames])
    assert [read_index(f.image) for f in frames] == list(range(len(durations)))
    assert times[0] == 0.0
    assert np.all(np.diff(times) > 0)
    np.testing.assert_allclose(np.diff(times), durations[:-1], atol=1e-3)
    np.testing.assert_allclose(times, np.concatenate([[0.0], np.cumsum(durations)[:-1]]), atol=1e-3)


@needs_ffmpeg
def test_audio_only_file_has_no_video_stream(tmp_path):
    audio = tmp_path / "sound.mp4"
    ffmpeg_ok("-f", "lavfi", "-i", "sine=duration=0.5", "-c:a", "aac", str(audio))
    with pytest.raises(VideoError, match="sound.mp4") as err:
        VideoReader(audio)
    if shutil.which("ffprobe"):
        assert "no video stream" in str(err.value)


# --------------------------------------------------------------------------------------------- image folders
def test_image_folder_natural_order_and_fps(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    order = [7, 0, 11, 3, 9, 1, 5, 10, 2, 8, 4, 6]  # written shuffled; names frame1 .. frame12
    for i in order:
        write_image(folder / f"frame{i + 1}{'.JPG' if i == 9 else '.png'}", make_frame(i))
    (folder / "notes.txt").write_text("not an image")
    (folder / ".frame0.png").write_bytes(b"macOS resource fork, not an image")
    (folder / "frame0.png").mkdir()  # a folder that looks like an image

    with VideoReader(folder, fps=12.5) as reader:
        info = reader.info
        frames = list(reader)
    assert (info.width, info.height, info.fps, info.frame_count) == (W, H, 12.5, 12)
    assert (info.rotation, info.codec, info.is_image_folder) == (0, "images", True)
    assert [read_index(f.image) for f in frames] == list(range(12))  # frame2 before frame10
    assert [f.time for f in frames] == [i / 12.5 for i in range(12)]
    assert all(marker_corner(f.image) == "tl" for f in frames)
    assert probe(folder).fps == DEFAULT_FOLDER_FPS == 30.0


def test_image_folder_non_ascii_path(tmp_path):
    folder = tmp_path / "bilder ä 画像"
    folder.mkdir()
    for i in range(3):
        write_image(folder / f"bild é {i}.png", make_frame(i))
    with VideoReader(folder) as reader:
        assert [(f.time, read_index(f.image)) for f in reader] == [(i / 30.0, i) for i in range(3)]


def test_image_folder_without_images(tmp_path):
    (tmp_path / "readme.txt").write_text("nothing to see")
    with pytest.raises(VideoError, match="no images") as err:
        VideoReader(tmp_path)
    assert str(tmp_path) in str(err.value)


def test_image_folder_bad_image_is_skipped_and_size_change_refused(tmp_path):
    write_image(tmp_path / "a1.png", make_frame(0))
    (tmp_path / "a2.png").write_bytes(b"broken")
    reader = VideoReader(tmp_path)
    assert [f.index for f in reader] == [0]
    assert (reader.frames_read, reader.frames_skipped) == (1, 1) and "a2.png" in reader.skipped_examples[0]
    (tmp_path / "a2.png").unlink()
    write_image(tmp_path / "a3.png", make_frame(2, W // 2, H))
    with pytest.raises(VideoError, match="a3.png"):
        list(VideoReader(tmp_path))
