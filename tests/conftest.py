"""Shared test set-up and fixtures: Blender-as-a-module's user folder, the committed sample clip, a runner
for the engine's command line, a fresh output folder, a fast untrained checkpoint."""

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

# Must be set before the first `import bpy` anywhere in the test session.
os.environ.setdefault("BLENDER_USER_RESOURCES", tempfile.mkdtemp(prefix="tar-tests-blender-"))

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_CLIP = ROOT / "data" / "sample" / "sample_walk.mp4"
SAMPLE_MOTION = ROOT / "data" / "sample" / "sample_walk.npz"


@pytest.fixture(scope="session")
def sample_clip() -> Path:
    """The committed rendered clip (72 frames, 384x288) of the mannequin walking."""
    return SAMPLE_CLIP


@pytest.fixture(scope="session")
def sample_motion_path() -> Path:
    """The sample clip's exact ground-truth motion file."""
    return SAMPLE_MOTION


def read_video(path) -> tuple[list, float]:
    """Every decoded frame of a video (BGR arrays) and its frame rate, with OpenCV."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, img = cap.read()
        if not ok:
            break
        frames.append(img)
    fps = cap.get(cv2.CAP_PROP_FPS)
    cap.release()
    return frames, fps


def run_cli(*args, timeout: float = 600, **kwargs) -> subprocess.CompletedProcess:
    """``python -m tar_core ARGS`` from the repository root, text output captured."""
    return subprocess.run([sys.executable, "-m", "tar_core", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT, **kwargs)


@pytest.fixture
def cli():
    """Run the engine's command line: ``cli("capture", clip, "-o", out)`` -> CompletedProcess."""
    return run_cli


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """An untrained tar-tiny checkpoint (seed 0), written once per session: a network fast enough on the CPU for
    tests of the tar engine's plumbing, which the weights do not matter to (the demo checkpoint's trunk costs
    ~20 ms a crop)."""
    path = tmp_path_factory.mktemp("ckpt") / "tiny untrained.pt"
    res = run_cli("init-checkpoint", "--variant", "tar-tiny", "-o", path)
    assert res.returncode == 0, res.stderr
    return path


@pytest.fixture
def out_dir(tmp_path) -> Path:
    """A fresh output folder that does not exist yet."""
    return tmp_path / "out"
