"""CPU time per crop of the blazepose trunk: the torch port (1 and 2 threads) and, if installed, LiteRT.

    python scripts/bench_trunk.py [--batch 16] [--repeats 5] [--threads 1 2]

Torch: ``BlazePoseTrunk.forward`` on a batch of ImageNet-normalised 256x256 crops (decoder map + global
vector; heatmap head pruned), in channels-last (the default) and plain NCHW memory. LiteRT
(``pip install ai-edge-litert``, not a dependency): the unmodified ``pose_landmark_full.tflite``, one
crop per call (its input is batch 1), segmentation branch included. Figures are ms per crop: median
and best wall time of ``--repeats`` timed runs after one warm-up, and the best process CPU time (all
threads together). On a shared machine wall times move with the load; the CPU time much less so.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tar_core.network.blazepose import BlazePoseTrunk, read_trunk_file  # noqa: E402


def _timed(fn, repeats: int) -> tuple[list[float], list[float]]:
    """(wall seconds, process CPU seconds) of ``repeats`` calls, after one warm-up call."""
    fn()  # warm-up: oneDNN builds its kernels on the first call
    wall, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return wall, cpu


def _report(label: str, times: tuple[list[float], list[float]], per: int) -> None:
    wall, cpu = ([1000.0 * t / per for t in ts] for ts in times)
    print(f"{label:<44} wall median {statistics.median(wall):6.1f}  best {min(wall):6.1f} | "
          f"CPU best {min(cpu):6.1f} ms/crop", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--no-nchw", action="store_true", help="skip the plain NCHW layout")
    args = parser.parse_args(argv)

    images = torch.randn(args.batch, 3, 256, 256).clamp_(-2.0, 2.0)  # (B, 3, 256, 256), ImageNet-normalised
    layouts = [True] if args.no_nchw else [True, False]
    trunks = {cl: BlazePoseTrunk(channels_last=cl) for cl in layouts}
    chunk = trunks[True].chunk_size
    print(f"torch {torch.__version__}, batch {args.batch} (run in chunks of {chunk}), {args.repeats} repeats")
    for threads in args.threads:
        torch.set_num_threads(threads)
        for cl, trunk in trunks.items():
            with torch.inference_mode():
                times = _timed(lambda trunk=trunk: trunk(images), args.repeats)
            _report(f"torch port, {'channels_last' if cl else 'NCHW'}, {threads} thread(s)", times, args.batch)

    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        print("LiteRT: not installed (pip install ai-edge-litert) - skipped")
        return 0
    data = read_trunk_file()
    crops = np.random.default_rng(0).random((args.batch, 1, 256, 256, 3), dtype=np.float32)
    for threads in args.threads:
        interpreter = Interpreter(model_content=data, num_threads=threads)
        interpreter.allocate_tensors()
        index = interpreter.get_input_details()[0]["index"]

        def run_all(interpreter=interpreter, index=index):
            for crop in crops:
                interpreter.set_tensor(index, crop)
                interpreter.invoke()

        _report(f"LiteRT (XNNPACK), batch 1, {threads} thread(s)", _timed(run_all, args.repeats), args.batch)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
