"""Store reference outputs of the BlazePose trunk, computed by the TFLite interpreter (LiteRT).

    pip install ai-edge-litert==2.3.0      # only for this script; the engine does not need it
    python scripts/make_trunk_reference.py [--out tests/data/blazepose/reference.npz]

Two person crops of the built-in sample clip (frames 10 and 50, boxes from its ground-truth file) are
cut at 128x128 with ``tar_core.geometry.cropping.crop`` and stored as uint8; the 256x256 trunk input is their
exact 2x nearest-neighbour enlargement (``np.repeat``), so the test rebuilds the very same input without
any resampling code. The interpreter runs the unmodified ``pose_landmark_full.tflite`` from the installed
mediapipe package on ``crop / 255`` and the file keeps (NHWC, float32):

- ``landmarks`` (2, 195), ``world`` (2, 117), ``pose_flag`` (2, 1): the model's outputs;
- ``global`` (2, 1152): the 2x2x288 vector before the landmark heads, flattened;
- ``decoder_sub`` (2, 16, 16, 48) and ``heatmaps_sub`` (2, 16, 16, 39): the 64x64 decoder map and
  heatmaps at every 4th pixel from (1, 1) (``[:, 1::4, 1::4]``), to keep the file small.

No weight is stored. The trunk file's sha256 and the LiteRT version are recorded beside the arrays.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tar_core.geometry.cropping import crop, square_box  # noqa: E402
from tar_core.network.blazepose import (  # noqa: E402
    DECODER_MAP,
    GLOBAL_VECTOR,
    HEATMAPS,
    LANDMARKS,
    POSE_FLAG,
    TRUNK_SHA256,
    WORLD_LANDMARKS,
    find_trunk_file,
    read_trunk_file,
)

SAMPLE = ROOT / "data" / "sample" / "sample_walk.mp4"
FRAMES = (10, 50)
STORED_SIZE = 128  # crops are stored at half the trunk's size
BOX_SCALE = 1.25
SUB = (slice(1, None, 4), slice(1, None, 4))  # every 4th pixel of a 64x64 map


def sample_crops() -> np.ndarray:
    """(2, 128, 128, 3) uint8 RGB crops of the sample clip around the person."""
    truth = np.load(SAMPLE.with_suffix(".npz"))
    video = cv2.VideoCapture(str(SAMPLE))
    crops, k = [], 0
    while len(crops) < len(FRAMES):
        ok, bgr = video.read()
        if not ok:
            raise RuntimeError(f"{SAMPLE} ended before frame {FRAMES[len(crops)]}")
        if k in FRAMES:
            box = square_box(truth["bbox_xyxy"][k], BOX_SCALE)
            crops.append(crop(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), box, STORED_SIZE))
        k += 1
    video.release()
    return np.stack(crops)


def trunk_input(crops: np.ndarray) -> np.ndarray:
    """(N, 128, 128, 3) uint8 -> (N, 256, 256, 3) uint8, each pixel doubled (the test does the same)."""
    return crops.repeat(2, axis=1).repeat(2, axis=2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "tests" / "data" / "blazepose" / "reference.npz")
    args = parser.parse_args(argv)

    from ai_edge_litert import __version__ as litert_version
    from ai_edge_litert.interpreter import Interpreter

    data = read_trunk_file()
    interpreter = Interpreter(model_content=data, experimental_preserve_all_tensors=True)
    interpreter.allocate_tensors()
    index = {d["name"]: d["index"] for d in interpreter.get_tensor_details()}
    (inp,) = interpreter.get_input_details()

    crops = sample_crops()
    rows: dict[str, list[np.ndarray]] = {k: [] for k in ("landmarks", "world", "pose_flag", "global", "decoder_sub",
                                                         "heatmaps_sub")}
    for image in trunk_input(crops):
        interpreter.set_tensor(inp["index"], (image.astype(np.float32) / 255.0)[None])
        interpreter.invoke()
        get = lambda name: interpreter.get_tensor(index[name])[0].copy()  # noqa: E731
        rows["landmarks"].append(get(LANDMARKS))
        rows["world"].append(get(WORLD_LANDMARKS))
        rows["pose_flag"].append(get(POSE_FLAG))
        rows["global"].append(get(GLOBAL_VECTOR).reshape(-1))
        rows["decoder_sub"].append(get(DECODER_MAP)[SUB])
        rows["heatmaps_sub"].append(get(HEATMAPS)[SUB])

    args.out.parent.mkdir(parents=True, exist_ok=True)
    arrays = {k: np.stack(v).astype(np.float32) for k, v in rows.items()}
    np.savez_compressed(args.out, crops=crops, frames=np.array(FRAMES), sha256=np.array(TRUNK_SHA256),
                        litert_version=np.array(litert_version), **arrays)
    lm = arrays["landmarks"].reshape(len(crops), -1, 5)
    print(f"trunk {find_trunk_file()} ({len(data)} bytes), LiteRT {litert_version}")
    print(f"wrote {args.out} ({args.out.stat().st_size / 1024:.0f} KiB): "
          + ", ".join(f"{k} {v.shape}" for k, v in arrays.items()))
    print("pose flag", arrays["pose_flag"].ravel().round(3).tolist(),
          "| landmark x range", lm[..., 0].min().round(1), lm[..., 0].max().round(1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
