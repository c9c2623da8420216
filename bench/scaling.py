"""Scaling of random generation with image size (issue #6, target 3).

Generates at 128^2, 256^2, 512^2 and 1024^2 pixels from one SIGD16 image
resized (bicubic) to each size, at the paper's settings (depth chosen by the
library), and prints time, peak resident memory above the resting size, and
the exponent of a least-squares fit of log(time) against log(pixels).

    .venv/bin/python bench/scaling.py --mode fast
    .venv/bin/python bench/scaling.py --mode fast --sizes 128,256,512
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np
from engine import DATASET, PeakMemory

from gpnn.core.imageio import read_image
from gpnn.core.pyramid import resize
from gpnn.core.tasks import generate


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", choices=["exact", "fast"], default="fast")
    parser.add_argument("--sizes", default="128,256,512,1024")
    parser.add_argument("--image", type=Path, default=DATASET / "1.jpg")
    args = parser.parse_args(argv)
    source = read_image(args.image)
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"{'size':>10} {'pixels':>9} {'time s':>8} {'peak MB':>8}")
    pixels, seconds = [], []
    for size in sizes:
        image = resize(source, (size, size))
        with PeakMemory() as memory:
            start = time.perf_counter()
            generate(image, mode=args.mode, seed=0)
            elapsed = time.perf_counter() - start
        pixels.append(size * size)
        seconds.append(elapsed)
        peak = (memory.peak - memory.base) / 2**20
        print(f"{size:>4}x{size:<5} {size * size:>9} {elapsed:8.2f} {peak:8.0f}", flush=True)
    if len(sizes) > 1:
        slope = np.polyfit(np.log(pixels), np.log(seconds), 1)[0]
        last = math.log(seconds[-1] / seconds[-2]) / math.log(pixels[-1] / pixels[-2])
        print(f"fitted exponent of time vs pixels: {slope:.2f} (last pair {last:.2f})")


if __name__ == "__main__":
    main()
