"""Collages and analogies on photo pairs (issue 16): the measures, and strips to look at.

Collage: each pair is merged twice, with the paper's plain concatenation as the
guess (``noise_rounds=0``) and with the defaults; the table gives the seam ratio
(`gpnn.core.metrics.seam_ratio`: coherence within a patch of the junction over
the interior's; 1 = no seam) and each source's completeness in the output.
Analogy: the texture of A laid out like B; the table gives the overlap of B's
objects with the output's (`gpnn.core.metrics.structure_overlap`), against the
overlap of B with A itself (what a copy of A would score) and with the authors'
fixed depth 5. Everything else is at its default (fast mode), seed 0.

Examples
--------
    .venv/bin/python bench/applications.py --out build/applications
    .venv/bin/python bench/applications.py --collages places50/14+places50/9 --analogies ""

A pair is ``DATASET/NAME+DATASET/NAME`` under ``--datasets``; for analogies the
first is the texture A, the second the structure B. Writes
``collage-<a>+<b>.png`` (plain | default) and ``analogy-<a>+<b>.png``
(A | B | output | depth 5) under ``--out``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np

from gpnn.core import metrics
from gpnn.core.imageio import read_image, write_image
from gpnn.core.pyramid import resize
from gpnn.core.tasks import ANALOGY_DEPTH, analogy, collage

DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"
# Pairs with something in common (a sky, a field, water), as the paper's collages;
# 21+22, 3+7 and 12+30 are the pairs the collage start was first measured on.
COLLAGES = (
    "places50/21+places50/22,places50/3+places50/7,places50/12+places50/30,"
    "places50/14+places50/9,places50/18+places50/48,places50/26+places50/11,"
    "places50/41+places50/50,places50/32+places50/46,places50/44+places50/45,"
    "sigd16/2+sigd16/4,sigd16/9+sigd16/11,sigd16/13+sigd16/15"
)
ANALOGIES = (
    "sigd16/9+sigd16/7,sigd16/7+sigd16/9,sigd16/5+sigd16/4,sigd16/6+sigd16/11,"
    "sigd16/13+sigd16/2,places50/41+places50/15,places50/50+places50/41,"
    "places50/24+places50/16"
)
METRIC_STRIDE = 2


def parse_pairs(text: str, root: Path) -> list[tuple[Path, Path]]:
    pairs = []
    for item in filter(None, text.split(",")):
        first, second = item.split("+")
        pairs.append((root / f"{first}.jpg", root / f"{second}.jpg"))
    return pairs


def label(path: Path) -> str:
    return f"{path.parent.name}-{path.stem}"


def junction(sources: list[np.ndarray]) -> int:
    """Column where the second source starts in a collage at its natural size."""
    height = min(s.shape[0] for s in sources)
    return round(sources[0].shape[1] * height / sources[0].shape[0])


def side_by_side(images: list[np.ndarray], gap: int = 6) -> np.ndarray:
    height = max(i.shape[0] for i in images)
    scaled = [resize(i, (height, round(i.shape[1] * height / i.shape[0]))) for i in images]
    spacer = np.ones((height, gap, 3), np.float32)
    parts = [part for image in scaled for part in (image, spacer)][:-1]
    return np.concatenate(parts, axis=1)


def run_collages(
    pairs: list[tuple[Path, Path]], out: Path | None, options: dict[str, float]
) -> list[dict]:
    print(
        f"{'collage':<28} {'seam plain':>10} {'seam now':>9} "
        f"{'compl A plain/now':>19} {'compl B plain/now':>19} {'s':>5}"
    )
    rows = []
    for first, second in pairs:
        sources = [read_image(first), read_image(second)]
        at = junction(sources)
        plain = collage(sources, noise_rounds=0)[0]
        start = time.perf_counter()
        merged = collage(sources, **options)[0]
        seconds = time.perf_counter() - start
        row = {"pair": f"{label(first)}+{label(second)}", "seconds": seconds}
        for name, image in (("plain", plain), ("now", merged)):
            row[f"seam_{name}"] = metrics.seam_ratio(image, sources, [at], stride=METRIC_STRIDE)
            row[f"completeness_{name}"] = [
                metrics.completeness(image, s, stride=METRIC_STRIDE) for s in sources
            ]
        rows.append(row)
        print(
            f"{row['pair']:<28} {row['seam_plain']:10.2f} {row['seam_now']:9.2f} "
            f"{row['completeness_plain'][0]:9.1e}/{row['completeness_now'][0]:<9.1e} "
            f"{row['completeness_plain'][1]:9.1e}/{row['completeness_now'][1]:<9.1e} "
            f"{seconds:5.1f}",
            flush=True,
        )
        if out:
            write_image(out / f"collage-{row['pair']}.png", side_by_side([plain, merged]))
    if rows:
        print(
            f"{'median':<28} {statistics.median(r['seam_plain'] for r in rows):10.2f} "
            f"{statistics.median(r['seam_now'] for r in rows):9.2f}"
        )
    return rows


def run_analogies(pairs: list[tuple[Path, Path]], out: Path | None) -> list[dict]:
    fixed_depth = f"IoU N={ANALOGY_DEPTH}"
    print(f"\n{'analogy (A + B)':<28} {'IoU A':>6} {'IoU now':>8} {fixed_depth:>8} {'s':>5}")
    rows = []
    for texture_path, structure_path in pairs:
        texture, structure = read_image(texture_path), read_image(structure_path)
        start = time.perf_counter()
        made = analogy(texture, structure)[0]
        seconds = time.perf_counter() - start
        fixed = analogy(texture, structure, depth=ANALOGY_DEPTH)[0]
        as_is = resize(texture, structure.shape[:2])
        row = {
            "pair": f"{label(texture_path)}+{label(structure_path)}",
            "iou_texture": metrics.structure_overlap(as_is, structure),
            "iou_now": metrics.structure_overlap(made, structure),
            "iou_fixed": metrics.structure_overlap(fixed, structure),
            "seconds": seconds,
        }
        rows.append(row)
        print(
            f"{row['pair']:<28} {row['iou_texture']:6.2f} {row['iou_now']:8.2f} "
            f"{row['iou_fixed']:8.2f} {seconds:5.1f}",
            flush=True,
        )
        if out:
            strip = side_by_side([texture, structure, made, fixed])
            write_image(out / f"analogy-{row['pair']}.png", strip)
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", type=Path, default=DATASETS)
    parser.add_argument("--collages", default=COLLAGES, help="pairs A+B, comma-separated")
    parser.add_argument("--analogies", default=ANALOGIES, help="pairs A+B (texture + structure)")
    parser.add_argument(
        "--collage-option",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a collage parameter other than its default, e.g. sigma=0.5 (repeatable)",
    )
    parser.add_argument("--out", type=Path, default=None, help="write the strips here")
    args = parser.parse_args(argv)
    options = {k: float(v) for k, v in (o.split("=") for o in args.collage_option)}
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
    run_collages(parse_pairs(args.collages, args.datasets), args.out, options)
    run_analogies(parse_pairs(args.analogies, args.datasets), args.out)


if __name__ == "__main__":
    main()
