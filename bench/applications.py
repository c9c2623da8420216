"""Collages and analogies on photo pairs (issue 16): the measures, and strips to look at.

Collage: each pair is merged twice, with the paper's plain concatenation as the
guess (``noise_rounds=0``) and with the defaults; the table gives the seam ratio
(`gpnn.core.metrics.seam_ratio`: coherence within a patch of the junction over
the interior's; 1 = no seam), the same statistic at columns away from the junction
(the highest of four, at the thirds of each source: what the collage scores where it
has no junction, since the worst band near any column of a PNN output is above 1) and
each source's completeness in the output.
Analogy: the texture of A laid out like B, twice: with B steering only the start
(``structure_weight=0``, the paper's recipe) and with the defaults (B's grey a
channel of every query). The table gives how well each output is laid out like B
(`gpnn.core.metrics.layout_agreement`, and the overlap of B's objects with the
output's, `structure_overlap`), against A itself resized to B (what ignoring B
would score), and each output's coherence with A (its patches' distance to A's).
Everything else is at its default (fast mode), seed 0.

Examples
--------
    .venv/bin/python bench/applications.py --out build/applications
    .venv/bin/python bench/applications.py --collages places50/14+places50/9 --analogies ""
    .venv/bin/python bench/applications.py --collages "" --analogy-option structure_weight=0.5

A pair is ``DATASET/NAME+DATASET/NAME`` under ``--datasets``; for analogies the
first is the texture A, the second the structure B. Writes
``collage-<a>+<b>.png`` (plain | default) and ``analogy-<a>+<b>.png``
(A | B | start only | default) under ``--out``.
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
from gpnn.core.tasks import analogy, collage

DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"
# Pairs with something in common (a sky, a field, water), as the paper's collages;
# 21+22, 3+7 and 12+30 are the pairs the collage start was first measured on.
COLLAGES = (
    "places50/21+places50/22,places50/3+places50/7,places50/12+places50/30,"
    "places50/14+places50/9,places50/18+places50/48,places50/26+places50/11,"
    "places50/41+places50/50,places50/32+places50/46,places50/44+places50/45,"
    "sigd16/2+sigd16/4,sigd16/9+sigd16/11,sigd16/13+sigd16/15"
)
# The first eight chosen by hand (objects of like scale, or not); the other ten drawn
# at random from both datasets (numpy default_rng(2026)), tuned on by nobody.
ANALOGIES = (
    "sigd16/9+sigd16/7,sigd16/7+sigd16/9,sigd16/5+sigd16/4,sigd16/6+sigd16/11,"
    "sigd16/13+sigd16/2,places50/41+places50/15,places50/50+places50/41,"
    "places50/24+places50/16,"
    "places50/3+places50/26,places50/30+places50/44,places50/33+sigd16/8,"
    "places50/4+sigd16/7,places50/47+places50/33,places50/8+places50/39,"
    "places50/9+places50/26,sigd16/12+places50/40,sigd16/12+places50/41,"
    "sigd16/6+places50/9"
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


def inside_columns(sources: list[np.ndarray], at: int) -> list[int]:
    """Columns at the thirds of each of the two sources in their collage, away from `at`."""
    height = min(s.shape[0] for s in sources)
    width = at + round(sources[1].shape[1] * height / sources[1].shape[0])
    return [at // 3, 2 * at // 3, at + (width - at) // 3, at + 2 * (width - at) // 3]


def run_collages(
    pairs: list[tuple[Path, Path]], out: Path | None, options: dict[str, float]
) -> list[dict]:
    print(
        f"{'collage':<28} {'seam plain':>10} {'seam now':>9} {'inside':>7} "
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
        row["seam_inside"] = max(
            metrics.seam_ratio(merged, sources, [column], stride=METRIC_STRIDE)
            for column in inside_columns(sources, at)
        )
        rows.append(row)
        print(
            f"{row['pair']:<28} {row['seam_plain']:10.2f} {row['seam_now']:9.2f} "
            f"{row['seam_inside']:7.2f} "
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
            f"{statistics.median(r['seam_now'] for r in rows):9.2f} "
            f"{statistics.median(r['seam_inside'] for r in rows):7.2f}"
        )
    return rows


def run_analogies(
    pairs: list[tuple[Path, Path]], out: Path | None, options: dict[str, float]
) -> list[dict]:
    print(
        f"\n{'analogy (A + B)':<28} {'layout A/start/now':>20} {'IoU A/start/now':>17} "
        f"{'coherence start/now':>20} {'s':>5}"
    )
    rows = []
    for texture_path, structure_path in pairs:
        texture, structure = read_image(texture_path), read_image(structure_path)
        start_only = analogy(texture, structure, structure_weight=0)[0]
        began = time.perf_counter()
        made = analogy(texture, structure, **options)[0]
        seconds = time.perf_counter() - began
        outputs = {
            "texture": resize(texture, structure.shape[:2]),
            "start": start_only,
            "now": made,
        }
        row = {"pair": f"{label(texture_path)}+{label(structure_path)}", "seconds": seconds}
        for name, image in outputs.items():
            row[f"layout_{name}"] = metrics.layout_agreement(image, structure)
            row[f"iou_{name}"] = metrics.structure_overlap(image, structure)
        for name in ("start", "now"):
            row[f"coherence_{name}"] = metrics.coherence(
                outputs[name], texture, stride=METRIC_STRIDE
            )
        rows.append(row)
        print(
            f"{row['pair']:<28} {row['layout_texture']:6.2f} {row['layout_start']:6.2f} "
            f"{row['layout_now']:6.2f} {row['iou_texture']:5.2f} {row['iou_start']:5.2f} "
            f"{row['iou_now']:5.2f} {row['coherence_start']:10.2e} {row['coherence_now']:9.2e} "
            f"{seconds:5.1f}",
            flush=True,
        )
        if out:
            strip = side_by_side([texture, structure, start_only, made])
            write_image(out / f"analogy-{row['pair']}.png", strip)
    if rows:
        medians = {key: statistics.median(r[key] for r in rows) for key in rows[0] if key != "pair"}
        print(
            f"{'median':<28} {medians['layout_texture']:6.2f} {medians['layout_start']:6.2f} "
            f"{medians['layout_now']:6.2f} {medians['iou_texture']:5.2f} "
            f"{medians['iou_start']:5.2f} {medians['iou_now']:5.2f} "
            f"{medians['coherence_start']:10.2e} {medians['coherence_now']:9.2e}"
        )
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
    parser.add_argument(
        "--analogy-option",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an analogy parameter other than its default, e.g. structure_weight=0.5",
    )
    parser.add_argument("--out", type=Path, default=None, help="write the strips here")
    args = parser.parse_args(argv)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
    run_collages(parse_pairs(args.collages, args.datasets), args.out, options(args.collage_option))
    run_analogies(
        parse_pairs(args.analogies, args.datasets), args.out, options(args.analogy_option)
    )


def options(pairs: list[str]) -> dict[str, float]:
    return {name: float(value) for name, value in (pair.split("=") for pair in pairs)}


if __name__ == "__main__":
    main()
