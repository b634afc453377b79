"""Re-render the committed sample clip (data/sample/) and its exact ground-truth motion file.

    python scripts/make_sample.py            # or: make sample
"""

from __future__ import annotations

import sys
from pathlib import Path

from tar_core.cli import main

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "sample" / "sample_walk.mp4"
ARGS = ["render-clip", "--motion", "walk", "--frames", "72", "--size", "384x288", "--fps", "24",
        "--seed", "1", "--samples", "12", "-o", str(SAMPLE)]

if __name__ == "__main__":
    sys.exit(main(ARGS))
