"""One error scheme: every command that takes ``--body``, ``--checkpoint`` or a video answers a bad one with
the documented exit code and a single line on stderr."""

import json

import pytest

from tar_core.errors import EXIT_CODES, BodyModelError, Cancelled, CheckpointError, TarError, UsageError, VideoError


def _one_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: ") and "Traceback" not in stderr
    return lines[0]


@pytest.mark.parametrize("command", [
    ["capture", "{clip}", "-o", "{out}"],
    ["render-clip", "--frames", "2", "-o", "{out}/c.mp4"],
    ["init-checkpoint", "--variant", "tar-tiny", "-o", "{out}/ck.pt"],
])  # fmt: skip
def test_a_missing_body_file_exits_14_with_one_line(cli, sample_clip, tmp_path, command):
    missing = tmp_path / "nowhere" / "SMPL_NEUTRAL.npz"
    args = [a.format(clip=sample_clip, out=tmp_path) for a in command] + ["--body", missing]
    res = cli(*args)
    assert res.returncode == EXIT_CODES["body_model"] == 14, res.stderr
    assert "SMPL_NEUTRAL.npz" in _one_line(res.stderr)


@pytest.mark.parametrize("command", [
    ["capture", "{clip}", "-o", "{out}", "--engine", "tar", "--checkpoint", "{bad}"],
    ["evaluate", "--checkpoint", "{bad}", "--data", "{out}"],
    ["init-checkpoint", "--variant", "tar-tiny", "--backbone-weights", "{bad}", "-o", "{out}/ck.pt"],
])  # fmt: skip
def test_a_corrupt_checkpoint_exits_13_with_one_line(cli, sample_clip, tmp_path, command):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint at all")
    res = cli(*[a.format(clip=sample_clip, out=tmp_path, bad=bad) for a in command])
    assert res.returncode == EXIT_CODES["checkpoint"] == 13, res.stderr
    assert "bad.pt" in _one_line(res.stderr)


def test_a_missing_video_exits_10_and_the_addon_gets_a_json_error_event(cli, tmp_path):
    res = cli("capture", tmp_path / "missing.mp4", "-o", tmp_path / "out", "--progress", "jsonl")
    assert res.returncode == EXIT_CODES["video"] == 10
    assert "missing.mp4" in _one_line(res.stderr)
    events = [json.loads(line) for line in res.stdout.splitlines()]
    assert events[-1]["event"] == "error" and events[-1]["code"] == 10 and events[-1]["kind"] == "video"
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["completed"] is False and summary["error_code"] == 10


def test_an_unknown_variant_is_a_usage_error(cli):
    res = cli("info", "--variant", "no-such-variant")
    assert res.returncode == EXIT_CODES["usage"] == 2
    assert "no-such-variant" in _one_line(res.stderr)


def test_error_classes_carry_their_codes():
    assert issubclass(BodyModelError, TarError) and BodyModelError("x").exit_code == 14
    assert CheckpointError("x").exit_code == 13 and VideoError("x").exit_code == 10 and UsageError("x").exit_code == 2
    assert isinstance(UsageError("x"), ValueError)  # bad values stay ValueErrors for library callers
    assert Cancelled(15).exit_code == 143 and Cancelled(2).exit_code == 130
