"""Fault injection: every bad input or fault the engine and the add-on can meet, made small by the test, run
through the real command line (or the add-on's logic), with its documented exit code, its single line and
the state of the output folder checked. Issue 13; the count of cases is the number of tests here."""

from __future__ import annotations

import io
import json
import os
import pickle
import shlex
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from tar_core.errors import EXIT_CODES

ROOT = Path(__file__).resolve().parents[2]
SAMPLE_MOTION = ROOT / "data" / "sample" / "sample_walk.npz"
W, H = 96, 64


# ------------------------------------------------------------------------------------------------ helpers
def cli(*args, timeout: float = 600, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tar_core", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT, **kwargs)


def start(*args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "tar_core", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT)


def one_error_line(stderr: str, prefix: str = "error: ") -> str:
    """The single line a failure prints: nothing else on stderr, no traceback."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert "Traceback" not in stderr, stderr
    assert len(lines) == 1 and lines[0].startswith(prefix), stderr
    return lines[0]


def capture(checkpoint, clip, out, *extra, boxes=None, timeout=600):
    """``capture --engine tar`` with ``checkpoint`` given explicitly (no note on stderr)."""
    args = ["capture", clip, "-o", out, "--engine", "tar", "--checkpoint", checkpoint, "--device", "cpu",
            "--progress", "jsonl", *extra]
    if boxes is not None:
        args += ["--boxes", boxes]
    return cli(*args, timeout=timeout)


def summary(out: Path) -> dict:
    return json.loads((out / "summary.json").read_text())


def frame(i: int) -> np.ndarray:
    img = np.full((H, W, 3), 90, np.uint8)
    cv2.rectangle(img, (30 + i, 10), (60 + i, 60), (200, 180, 160), -1)
    return img


def make_clip(path: Path, n: int, fps: float = 10.0) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (W, H))
    for i in range(n):
        writer.write(frame(i))
    writer.release()
    return path


def make_folder(path: Path, n: int) -> Path:
    path.mkdir()
    for i in range(n):
        cv2.imwrite(str(path / f"f{i:03d}.png"), frame(i))
    return path


def boxes_file(path: Path, people: dict[int, range]) -> Path:
    """person id -> the frames they are boxed in."""
    data: dict[str, list] = {}
    for pid, frames in people.items():
        for i in frames:
            data.setdefault(str(i), []).append([28 + i, 8 + 20 * pid, 62 + i, 40 + 20 * pid, pid])
    path.write_text(json.dumps(data))
    return path


def dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def write_lock(out: Path, pid: int) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / ".tar-capture.lock").write_text(json.dumps(
        {"pid": pid, "host": os.uname().nodename, "started": "2026-01-02T03:04:05", "run_id": "other",
         "clip": "other.mp4"}))


def npz_with(path: Path, members: dict[str, bytes | np.ndarray]) -> Path:
    """An .npz whose members are given as arrays or as raw .npy bytes (for lying headers)."""
    with zipfile.ZipFile(path, "w") as zf:
        for name, value in members.items():
            if isinstance(value, np.ndarray):
                buf = io.BytesIO()
                np.lib.format.write_array(buf, value, allow_pickle=False)
                value = buf.getvalue()
            zf.writestr(name + ".npy", value)
    return path


def npy_header_only(shape: tuple, dtype=np.float32) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)),
                                               "fortran_order": False, "shape": shape})
    return buf.getvalue() + b"\0" * 64


def sample_arrays() -> dict[str, np.ndarray]:
    with np.load(SAMPLE_MOTION) as z:
        return {k: z[k] for k in z.files}


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return make_clip(tmp_path_factory.mktemp("clip") / "walk.mp4", 6)


@pytest.fixture(scope="module")
def boxes(tmp_path_factory) -> Path:
    return boxes_file(tmp_path_factory.mktemp("boxes") / "boxes.json", {0: range(6)})


# ------------------------------------------------------------------------------------------------ clips
def test_a_fifo_as_the_clip_is_refused_not_waited_on(tiny_checkpoint, tmp_path):
    fifo = tmp_path / "clip.mp4"
    os.mkfifo(fifo)
    t0 = time.monotonic()
    res = capture(tiny_checkpoint, fifo, tmp_path / "out", timeout=120)
    assert res.returncode == EXIT_CODES["video"] == 10
    assert "clip.mp4" in one_error_line(res.stderr) and "not a regular file" in res.stderr
    assert summary(tmp_path / "out")["error_code"] == 10 and time.monotonic() - t0 < 110


def test_a_device_as_the_clip_is_refused(tiny_checkpoint, tmp_path):
    res = capture(tiny_checkpoint, "/dev/zero", tmp_path / "out")
    assert res.returncode == 10 and "/dev/zero" in one_error_line(res.stderr)


def test_an_image_folder_of_mixed_sizes_is_refused(tiny_checkpoint, tmp_path, boxes):
    folder = make_folder(tmp_path / "frames", 4)
    cv2.imwrite(str(folder / "f002.png"), cv2.resize(frame(2), (W // 2, H)))
    res = capture(tiny_checkpoint, folder, tmp_path / "out", boxes=boxes)
    assert res.returncode == 10
    line = one_error_line(res.stderr)
    assert "f002.png" in line and "48x64" in line and "96x64" in line
    s = summary(tmp_path / "out")
    assert s["completed"] is False and s["error_code"] == 10 and s["error_kind"] == "video"


def test_a_corrupt_image_in_a_folder_is_skipped_and_counted(tiny_checkpoint, tmp_path, boxes):
    folder = make_folder(tmp_path / "frames", 5)
    (folder / "f003.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    res = capture(tiny_checkpoint, folder, tmp_path / "out", boxes=boxes)
    assert res.returncode == 0, res.stderr
    s = summary(tmp_path / "out")
    assert s["completed"] is True and s["frames_read"] == 4 and s["frames_skipped"] == 1
    assert "f003.png" in s["skipped_examples"][0]
    assert [p["rows"] for p in s["people"]] == [4]


def test_a_folder_where_nothing_decodes_exits_10(tiny_checkpoint, tmp_path, boxes):
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(3):
        (folder / f"f{i}.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    res = capture(tiny_checkpoint, folder, tmp_path / "out", boxes=boxes)
    assert res.returncode == 10 and "could be decoded" in one_error_line(res.stderr)


def test_a_2_to_the_31_pixel_image_is_refused_from_its_header(tiny_checkpoint, tmp_path, boxes):
    folder = tmp_path / "frames"
    folder.mkdir()
    ihdr = b"IHDR" + (65536).to_bytes(4, "big") + (32768).to_bytes(4, "big") + b"\x08\x02\x00\x00\x00"
    (folder / "huge.png").write_bytes(b"\x89PNG\r\n\x1a\n" + (13).to_bytes(4, "big") + ihdr + b"\0" * 64)
    res = capture(tiny_checkpoint, folder, tmp_path / "out", boxes=boxes)
    assert res.returncode == 10
    line = one_error_line(res.stderr)
    assert "huge.png" in line and "65536x32768" in line and "megapixels" in line


def test_a_partly_corrupt_mp4_is_read_to_its_end_and_skipped_frames_counted(tiny_checkpoint, tmp_path):
    good = make_clip(tmp_path / "good.mp4", 30)
    data = bytearray(good.read_bytes())
    a, b = int(len(data) * 0.30), int(len(data) * 0.45)  # 15% of the stream garbled
    data[a:b] = np.random.default_rng(0).integers(0, 256, b - a, dtype=np.uint8).tobytes()
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(bytes(data))
    # The output folder holds another clip's finished run and a stale lock of a killed capture.
    out = tmp_path / "out"
    write_lock(out, dead_pid())
    (out / "summary.json").write_text(json.dumps({"completed": True, "clip": "other.mp4"}))
    (out / "person_2.npz").write_bytes(SAMPLE_MOTION.read_bytes())
    res = capture(tiny_checkpoint, bad, out, boxes=boxes_file(tmp_path / "b.json", {0: range(4)}))
    assert res.returncode == 0, res.stderr
    s = summary(out)
    assert s["completed"] is True and s["clip"] == str(bad)
    assert s["frames_skipped"] > 0 and s["frames_read"] > 20 and s["frames_read"] + s["frames_skipped"] == 30
    assert sorted(p.name for p in out.glob("person_*.npz")) == ["person_0.npz"]  # no stale person_2
    assert sorted(p.name for p in (out / "previous").iterdir()) == ["person_2.npz", "summary.json"]
    assert not (out / ".tar-capture.lock").exists()  # the stale lock was taken over, then released


def test_an_mp4_whose_frame_data_is_destroyed_exits_10(tiny_checkpoint, tmp_path, boxes):
    good = make_clip(tmp_path / "good.mp4", 30)
    data = bytearray(good.read_bytes())
    at = data.find(b"mdat")
    end = at - 4 + int.from_bytes(data[at - 4: at], "big")
    data[at + 4: end] = bytes(end - at - 4)  # every frame's data zeroed, the container intact
    bad = tmp_path / "zeroed.mp4"
    bad.write_bytes(bytes(data))
    res = capture(tiny_checkpoint, bad, tmp_path / "out", boxes=boxes)
    assert res.returncode == 10
    assert "zeroed.mp4" in one_error_line(res.stderr)
    assert summary(tmp_path / "out")["error_code"] == 10


# ------------------------------------------------------------------------------------------------ options
@pytest.mark.parametrize(("option", "value", "words"), [
    ("--fps", "1e-300", "--fps must be a frame rate"),
    ("--focal", "1e30", "--focal must be"),
    ("--max-people", "-3", "--max-people must be"),
    ("--smooth-hz", "0", "--smooth-hz must be"),
    ("--smooth-hz", "nan", "--smooth-hz must be"),
])  # fmt: skip
def test_absurd_option_values_are_usage_errors(tiny_checkpoint, tmp_path, clip, option, value, words):
    res = capture(tiny_checkpoint, clip, tmp_path / "out", option, value)
    assert res.returncode == EXIT_CODES["usage"] == 2
    assert words in one_error_line(res.stderr)


@pytest.mark.parametrize(("entry", "words"), [
    ("[10, 10, 50, 50, 1e300]", "track id 1e+300 is too large"),
    ("[10, 10, NaN, 50, 1]", "not finite"),
    ("[10, 10, 50, Infinity]", "not finite"),
    ("[10, 10, 1e300, 50]", "beyond"),
])  # fmt: skip
def test_a_boxes_file_with_absurd_numbers_is_a_usage_error(tiny_checkpoint, tmp_path, clip, entry, words):
    bad = tmp_path / "boxes.json"
    bad.write_text(f'{{"0": [{entry}]}}')
    res = capture(tiny_checkpoint, clip, tmp_path / "out", boxes=bad)
    assert res.returncode == 2
    line = one_error_line(res.stderr)
    assert "boxes.json" in line and words in line


# ------------------------------------------------------------------------------------------------ body models
class _Evil:
    def __reduce__(self):
        return (os.system, ("touch PWNED",))


def _sparse_pickle(path: Path, n: int) -> Path:
    from scipy import sparse

    regressor = sparse.csc_matrix((np.ones(1), (np.zeros(1, int), np.zeros(1, int))), shape=(n, n))
    with open(path, "wb") as fh:
        pickle.dump({"J_regressor": regressor, "v_template": np.zeros((6890, 3))}, fh, protocol=2)
    return path


@pytest.mark.parametrize("kind", ["hostile", "junk", "truncated", "not-a-dict", "sparse-200000^2", "huge-file",
                                  "nan-npz", "lying-npz-header"])
def test_a_bad_body_model_exits_14_with_one_line(tmp_path, clip, kind):
    body = tmp_path / ("body.npz" if "npz" in kind else "body.pkl")
    if kind == "hostile":
        body.write_bytes(pickle.dumps({"v_template": _Evil()}, protocol=2))
    elif kind == "junk":
        body.write_bytes(np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    elif kind == "truncated":
        body.write_bytes(pickle.dumps({"v_template": np.zeros((6890, 3))}, protocol=2)[:5000])
    elif kind == "not-a-dict":
        body.write_bytes(pickle.dumps([1, 2, 3], protocol=2))
    elif kind == "sparse-200000^2":
        _sparse_pickle(body, 200_000)
    elif kind == "huge-file":
        with open(body, "wb") as fh:  # sparse on disk: 3 GB declared, nothing written
            fh.truncate(3 << 30)
    elif kind == "nan-npz":
        with np.load(ROOT / "tar_core" / "body_model" / "data" / "mannequin.npz") as z:
            arrays = {k: z[k] for k in z.files}
        arrays["v_template"] = arrays["v_template"].copy()
        arrays["v_template"][5, 1] = np.nan
        np.savez(body, **arrays)
    else:
        npz_with(body, {"v_template": npy_header_only((10**9, 3))})
    t0 = time.monotonic()
    res = cli("capture", clip, "-o", tmp_path / "out", "--body", body, "--progress", "jsonl")
    assert res.returncode == EXIT_CODES["body_model"] == 14, res.stderr
    assert body.name in one_error_line(res.stderr)
    assert not (ROOT / "PWNED").exists() and not (tmp_path / "PWNED").exists()
    assert time.monotonic() - t0 < 120  # refused by declared size, not by trying
    assert summary(tmp_path / "out")["error_kind"] == "body_model"


# ------------------------------------------------------------------------------------------------ checkpoints
@pytest.mark.parametrize("kind", ["nan-weights", "oversized-config", "huge-file", "not-tensors"])
def test_a_bad_checkpoint_exits_13_with_one_line(tiny_checkpoint, tmp_path, clip, kind):
    import torch

    bad = tmp_path / "bad.pt"
    if kind == "huge-file":
        with open(bad, "wb") as fh:
            fh.truncate(9 << 30)
    else:
        payload = torch.load(tiny_checkpoint, map_location="cpu", weights_only=True)
        if kind == "nan-weights":
            name = next(k for k, v in payload["state_dict"].items() if v.is_floating_point())
            payload["state_dict"][name] = torch.full_like(payload["state_dict"][name], float("nan"))
        elif kind == "oversized-config":
            payload["config"]["gte_dim"] = 10**7
        else:
            payload["state_dict"] = {"x": [1, 2, 3]}
        torch.save(payload, bad)
    res = cli("capture", clip, "-o", tmp_path / "out", "--engine", "tar", "--checkpoint", bad, "--progress", "jsonl")
    assert res.returncode == EXIT_CODES["checkpoint"] == 13, res.stderr
    assert "bad.pt" in one_error_line(res.stderr)
    assert summary(tmp_path / "out")["error_code"] == 13


# ------------------------------------------------------------------------------------------------ output folder
def test_a_second_capture_into_a_busy_folder_exits_15_naming_the_other_run(tiny_checkpoint, tmp_path, clip, boxes):
    out = tmp_path / "out"
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        write_lock(out, other.pid)
        (out / "summary.json").write_text('{"completed": false, "run_id": "other"}')
        res = capture(tiny_checkpoint, clip, out, boxes=boxes)
    finally:
        other.kill()
        other.wait()
    assert res.returncode == EXIT_CODES["output"] == 15
    line = one_error_line(res.stderr)
    assert f"pid {other.pid}" in line and "2026-01-02T03:04:05" in line and "other.mp4" in line
    assert summary(out) == {"completed": False, "run_id": "other"}  # the other run's folder untouched
    assert json.loads((out / ".tar-capture.lock").read_text())["pid"] == other.pid


def test_an_unwritable_output_exits_15(tiny_checkpoint, tmp_path, clip):
    blocker = tmp_path / "file"
    blocker.write_text("a file, not a folder")
    res = capture(tiny_checkpoint, clip, blocker / "out")
    assert res.returncode == 15 and "not writable" in one_error_line(res.stderr)


def _can_mount_tmpfs() -> bool:
    if not shutil.which("unshare"):
        return False
    return subprocess.run(["unshare", "-rm", "sh", "-c", "mount -t tmpfs -o size=16k tmpfs /mnt"],
                          capture_output=True).returncode == 0


@pytest.mark.skipif(not _can_mount_tmpfs(), reason="needs unshare -rm and tmpfs (a real full disk)")
def test_a_full_disk_exits_15_and_keeps_the_summary(tiny_checkpoint, tmp_path, clip, boxes):
    disk = tmp_path / "disk"
    disk.mkdir()
    command = [sys.executable, "-m", "tar_core", "capture", str(clip), "-o", str(disk), "--engine", "tar",
               "--checkpoint", str(tiny_checkpoint), "--device", "cpu", "--progress", "jsonl", "--boxes", str(boxes)]
    script = (f"mount -t tmpfs -o size=12k tmpfs {disk} && cd {ROOT} && "
              f"{shlex.join(command)} >/dev/null 2>{tmp_path}/stderr; echo $? >{tmp_path}/rc; "
              f"cp -r {disk} {tmp_path}/after")
    subprocess.run(["unshare", "-rm", "sh", "-c", script], check=True, timeout=600)
    assert int((tmp_path / "rc").read_text()) == 15
    assert "No space left on device" in one_error_line((tmp_path / "stderr").read_text())
    s = json.loads((tmp_path / "after" / "summary.json").read_text())
    assert s["completed"] is False and not list((tmp_path / "after").glob("person_*"))
    assert not list((tmp_path / "after").glob(".person*"))  # no half-written file


def test_progress_to_a_closed_pipe_exits_quietly(tiny_checkpoint, tmp_path, clip, boxes):
    proc = subprocess.Popen([sys.executable, "-m", "tar_core", "capture", str(clip), "-o", str(tmp_path / "out"),
                             "--engine", "tar", "--checkpoint", str(tiny_checkpoint), "--device", "cpu", "--progress",
                             "jsonl", "--boxes", str(boxes)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=ROOT)
    proc.stdout.close()  # the reader went away
    _, stderr = proc.communicate(timeout=600)
    assert proc.returncode == EXIT_CODES["pipe_closed"] == 141
    assert "broken pipe" in one_error_line(stderr)
    s = summary(tmp_path / "out")
    assert s["completed"] is False and s["error_kind"] == "pipe_closed"


def test_motion_validate_into_a_closed_pipe_exits_quietly():
    res = subprocess.run(f"{sys.executable} -m tar_core motion validate {' '.join([str(SAMPLE_MOTION)] * 300)} "
                         "| head -c 1 >/dev/null; echo rc=${PIPESTATUS[0]} >&2", shell=True, executable="/bin/bash",
                         capture_output=True, text=True, cwd=ROOT, timeout=300)
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert lines[-1] == "rc=141" and "Traceback" not in res.stderr
    assert len(lines) == 2 and "broken pipe" in lines[0]


# ------------------------------------------------------------------------------------------------ signals
def _events_until(proc: subprocess.Popen, wanted) -> list[dict]:
    got = []
    for line in proc.stdout:
        got.append(json.loads(line))
        if wanted(got[-1]):
            return got
    raise AssertionError(f"the run ended before the awaited event: {got}")


def test_sigint_during_tracking_stops_within_a_second(tiny_checkpoint, tmp_path, sample_clip):
    out = tmp_path / "out"
    proc = start("capture", sample_clip, "-o", out, "--engine", "tar", "--checkpoint", tiny_checkpoint, "--device",
                 "cpu", "--progress", "jsonl")  # MediaPipe finds the person: tracking takes seconds
    _events_until(proc, lambda e: e["event"] == "progress" and e["stage"] == "tracking")
    t0 = time.monotonic()
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert time.monotonic() - t0 < 2.0
    assert proc.returncode == EXIT_CODES["SIGINT"] == 130
    assert [line for line in stderr.splitlines() if line.startswith("error: ")] == ["error: cancelled (SIGINT)"]
    assert "Traceback" not in stderr
    s = summary(out)
    assert s["completed"] is False and s["error_kind"] == "cancelled" and 0 < s["frames_read"] < 72
    assert s["people"] == [] and not (out / ".tar-capture.lock").exists()


def test_sigterm_during_the_tar_engine_keeps_the_finished_person(tiny_checkpoint, tmp_path):
    clip = make_clip(tmp_path / "clip.mp4", 20)
    both = boxes_file(tmp_path / "boxes.json", {0: range(3), 1: range(20)})  # person 0 finishes first
    out = tmp_path / "out"
    proc = start("capture", clip, "-o", out, "--engine", "tar", "--checkpoint", tiny_checkpoint, "--device", "cpu",
                 "--progress", "jsonl", "--boxes", both)
    _events_until(proc, lambda e: e["event"] == "output")
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == EXIT_CODES["SIGTERM"] == 143
    assert one_error_line(stderr) == "error: cancelled (SIGTERM)"
    s = summary(out)
    assert s["completed"] is False and [p["track_id"] for p in s["people"]] == [0]
    assert sorted(p.name for p in out.glob("person_*.npz")) == ["person_0.npz"]
    assert cli("motion", "validate", out / "person_0.npz").returncode == 0


def test_a_signal_on_the_last_frame_is_honoured(tiny_checkpoint, tmp_path, clip, boxes):
    """The flag set while the last frame is processed (as the handler would): the run reports cancelled."""
    from tar_core.capture.pipeline import CaptureOptions
    from tar_core.capture.pipeline import capture as run_capture
    from tar_core.errors import Cancelled
    from tar_core.util.progress import Progress
    from tar_core.util.stop import StopFlag

    stop = StopFlag()

    class LastFrameSignal(Progress):
        def progress(self, stage, done, total):
            if stage == "tar" and done == total:
                stop.signum = signal.SIGINT
            super().progress(stage, done, total)

    out = tmp_path / "out"
    opts = CaptureOptions(clip=str(clip), output=str(out), engine="tar", checkpoint=str(tiny_checkpoint), device="cpu",
                          boxes=str(boxes))
    with pytest.raises(Cancelled):
        run_capture(opts, LastFrameSignal(stream=io.StringIO()), stop)
    s = summary(out)
    assert s["completed"] is False and s["error_code"] == 130 and [p["rows"] for p in s["people"]] == [6]


# ------------------------------------------------------------------------------------------------ motion files
def _motion_case(tmp_path: Path, kind: str) -> Path:
    path = tmp_path / f"{kind}.npz"
    if kind == "truncated":
        data = SAMPLE_MOTION.read_bytes()
        path.write_bytes(data[: len(data) // 2])
        return path
    arrays = sample_arrays()
    if kind == "10^12-rows-header":
        members: dict = dict(arrays)
        members["poses"] = npy_header_only((10**12, 72))
        return npz_with(path, members)
    if kind == "1e30-rad":
        arrays["poses"] = arrays["poses"].copy()
        arrays["poses"][3, 7] = 1e30
    elif kind == "1e-300-fps":
        arrays["mocap_framerate"] = arrays["mocap_frame_rate"] = np.float64(1e-300)
    elif kind == "2^31-px-image":
        arrays["image_size"] = np.array([65536, 32768], dtype=np.int32)
    elif kind == "1e300-track-id":
        arrays["track_id"] = np.int64(2**62)
    np.savez(path, **arrays)
    return path


MOTION_CASES = {"truncated": "file", "10^12-rows-header": "poses", "1e30-rad": "poses",
                "1e-300-fps": "mocap_framerate", "2^31-px-image": "image_size", "1e300-track-id": "track_id"}


@pytest.mark.parametrize(("kind", "key"), MOTION_CASES.items())
def test_motion_validate_refuses_with_one_line(tmp_path, kind, key):
    path = _motion_case(tmp_path, kind)
    t0 = time.monotonic()
    res = cli("motion", "validate", path)
    assert res.returncode == EXIT_CODES["motion_file"] == 3
    line = one_error_line(res.stderr, prefix=f"{path}: INVALID: {key}: ")
    assert time.monotonic() - t0 < 60, line


@pytest.mark.parametrize(("kind", "key"), MOTION_CASES.items())
def test_motion_info_refuses_with_one_line(tmp_path, kind, key):
    path = _motion_case(tmp_path, kind)
    res = cli("motion", "info", path)
    assert res.returncode == 3 and one_error_line(res.stderr).startswith(f"error: {key}: ")


# ------------------------------------------------------------------------------------------------ the add-on
@pytest.mark.parametrize(("kind", "key"), [(k, v) for k, v in MOTION_CASES.items() if k != "1e300-track-id"])
def test_the_addon_reader_refuses_before_allocating(tmp_path, kind, key):
    from tar_blender.logic.motion import MotionError, read_motion

    path = _motion_case(tmp_path, kind)
    with pytest.raises(MotionError) as info:
        read_motion(path)
    assert info.value.key == key and path.name in str(info.value)


def test_the_addon_refuses_an_import_blender_cannot_hold(tmp_path):
    from tar_blender.logic.motion import MAX_ROWS, MotionData, MotionError, check_import

    def motion(rows: int, fps: float) -> MotionData:
        return MotionData(path=str(tmp_path / "long.npz"), poses=np.broadcast_to(np.zeros(72), (rows, 72)),
                          trans=np.broadcast_to(np.zeros(3), (rows, 3)), betas=np.zeros(10),
                          frame_times=np.arange(rows) / fps, fps=fps, image_size=(640, 480), K=np.eye(3),
                          joints_cam=np.zeros((1, 24, 3)), joints_2d=np.zeros((1, 24, 2)), body_model="mannequin",
                          gender="neutral", track_id=0, engine="tar", provenance={})

    million = motion(1_000_000, 60.0)  # the 3.9 MB file that made Blender use 14.4 GB
    with pytest.raises(MotionError, match="keyframes"):
        check_import([million], 60.0, budget=40_000_000)
    with pytest.raises(MotionError, match="beyond Blender's last frame"):
        check_import([motion(MAX_ROWS, 60.0)], 60.0, budget=10**12)
    check_import([motion(1000, 60.0)], 60.0)  # an ordinary import passes


def _script(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "engine.py"
    path.write_text("import json, os, signal, sys\n"
                    "def emit(**e): print(json.dumps(e), flush=True)\n" + textwrap.dedent(body))
    return path


def test_the_addon_reports_a_dying_engine_with_its_code_and_log(tmp_path):
    from tar_blender.logic.engine import EngineRun

    script = _script(tmp_path, """
        emit(event="start", frames=10)
        print("I0000 00:00:1 gl_context.cc:357] GL version: 3.2 (OpenGL ES 3.2 Mesa)", file=sys.stderr, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    log = tmp_path / "out" / "engine.log"
    run = EngineRun([sys.executable, str(script)], log_path=log)
    assert run.wait(timeout=30) == -9
    assert run.failure_message() == f"the engine stopped unexpectedly (code -9); its log: {log}"
    assert "gl_context" in log.read_text()


def test_the_addon_reports_the_engine_error_event(tmp_path):
    from tar_blender.logic.engine import EngineRun

    script = _script(tmp_path, """
        print("W0000 mediapipe noise", file=sys.stderr, flush=True)
        emit(event="error", message="clip.mp4: no person found in 30 frames", code=12, kind="no_person")
        print("W0000 more mediapipe noise", file=sys.stderr, flush=True)
        sys.exit(12)
    """)
    run = EngineRun([sys.executable, str(script)], log_path=tmp_path / "engine.log")
    assert run.wait(timeout=30) == 12
    assert run.failure_message() == "clip.mp4: no person found in 30 frames" and run.error_code == 12
