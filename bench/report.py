"""Cost of a batch's evaluation report against the cost of its generations.

Generates `--samples` samples of the first `--images` SIGD16 images (fast mode, the
defaults), then measures them as a batch report does (`gpnn.evaluate.build_entry`)
at each metric stride, and prints seconds and the ratio report / generation. The
service's batch reports use `GPNN_REPORT_METRIC_STRIDE` (8).

    .venv/bin/python bench/report.py --images 4 --samples 4
"""

from __future__ import annotations

import argparse
import time

from engine import DATASET

from gpnn.core.imageio import read_image
from gpnn.core.tasks import generate
from gpnn.evaluate import build_entry


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=4)
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--strides", default="1,2,4")
    args = parser.parse_args(argv)
    runs = []
    generation_s = 0.0
    for n in range(1, args.images + 1):
        source = read_image(DATASET / f"{n}.jpg")
        start = time.perf_counter()
        samples = generate(source, samples=args.samples, seed=0)
        generation_s += time.perf_counter() - start
        runs.append((f"{n}.jpg", source, samples))
    print(f"generation: {args.images} images x {args.samples} samples in {generation_s:.1f} s")
    print(f"{'stride':>6} {'report s':>9} {'report / generation':>20}")
    for stride in (int(s) for s in args.strides.split(",")):
        start = time.perf_counter()
        for name, source, samples in runs:
            build_entry(name, source, samples, stride=stride)
        seconds = time.perf_counter() - start
        print(f"{stride:>6} {seconds:>9.1f} {seconds / generation_s:>20.2f}")


if __name__ == "__main__":
    main()
