"""Analogies after sketches: dark ellipses drawn on a flat ground, filled with a photo.

SIGD 4 (geese at sunset) after five ellipses on orange and SIGD 7 (bowls on a lawn)
after three on green, each at the depth chosen from the ellipses' size and at the
authors' fixed depth 5, with the structure steering the start alone
(``structure_weight=0``, the paper's recipe) and every level (the default). Prints
the overlap of the ellipses with the output's objects (`structure_overlap`) and
`layout_agreement`; with ``--out``, writes ``analogy-sketches.png``, one row per
sketch: the sketch, then the four outputs in the table's order.

    .venv/bin/python bench/analogy_sketches.py --out build/applications
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from gpnn.core import analogy, metrics
from gpnn.core.imageio import read_image, write_image

DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"
# (photo, ground colour, ellipse centres (row, column), radii (rows, columns))
SKETCHES = (
    (
        "sigd16/4",
        (0.95, 0.6, 0.25),
        [(40, 50), (60, 150), (100, 90), (120, 200), (50, 220)],
        (6, 12),
    ),
    ("sigd16/7", (0.3, 0.55, 0.2), [(60, 60), (120, 130), (80, 200)], (14, 20)),
)
RUNS = ((0, None), (0, 5), (1, None), (1, 5))  # (structure_weight, depth)


def sketch(shape, ground, centres, radii) -> np.ndarray:
    image = np.empty((*shape, 3), np.float32)
    image[:] = ground
    rows, cols = np.mgrid[0 : shape[0], 0 : shape[1]]
    for y, x in centres:
        image[((rows - y) / radii[0]) ** 2 + ((cols - x) / radii[1]) ** 2 <= 1] = 0.05
    return image


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", type=Path, default=DATASETS)
    parser.add_argument("--out", type=Path, default=None, help="write the strip here")
    args = parser.parse_args(argv)
    print(f"{'photo':<10} {'structure_weight':>16} {'depth':>6} {'IoU':>5} {'layout':>7}")
    strip = []
    for name, ground, centres, radii in SKETCHES:
        photo = read_image(args.datasets / f"{name}.jpg")
        drawn = sketch(photo.shape[:2], ground, centres, radii)
        row = [drawn]
        for weight, depth in RUNS:
            out = analogy(photo, drawn, structure_weight=weight, depth=depth)[0]
            row.append(out)
            print(
                f"{name:<10} {weight:>16} {depth or 'chosen':>6} "
                f"{metrics.structure_overlap(out, drawn):5.2f} "
                f"{metrics.layout_agreement(out, drawn):7.2f}",
                flush=True,
            )
        strip.append(np.concatenate(row, axis=1))
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        width = max(row.shape[1] for row in strip)
        padded = [
            np.pad(r, ((0, 6), (0, width - r.shape[1]), (0, 0)), constant_values=1) for r in strip
        ]
        write_image(args.out / "analogy-sketches.png", np.concatenate(padded))


if __name__ == "__main__":
    main()
