"""One table from several `gpnn eval-dataset` reports of the same settings.

A long dataset run may be split over processes or sessions (`--limit`, or folders
holding part of the images); this reads each report's ``metrics.json`` and prints
the per-report and combined averages (means over images, as the report's own
average row; samples and copies summed), so the split changes no number.

Example
-------
    .venv/bin/python bench/merge_reports.py build/eval-places50-50 build/eval-places50-50-b
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

MEANS = ("diversity", "coherence", "completeness", "swd", "change", "copied")
SUMS = ("samples", "copies")


def combined(images: list[dict]) -> dict:
    row = {key: statistics.mean(image[key] for image in images) for key in MEANS}
    row.update({key: sum(image[key] for image in images) for key in SUMS})
    row["images"] = len(images)
    row["seconds_per_sample"] = sum(i["runtime_s"] for i in images) / row["samples"]
    return row


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("reports", nargs="+", type=Path, help="report folders (metrics.json)")
    args = parser.parse_args(argv)
    print(
        "| report | images | samples | diversity | coherence | completeness | patch SWD "
        "| change | copied | copies | s / sample |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    every: dict[str, dict] = {}
    for folder in args.reports:
        report = json.loads((folder / "metrics.json").read_text())
        images = report["images"]
        every.update({image["name"]: image for image in images})
        print_row(f"{folder.name} ({images[0]['name']}-{images[-1]['name']})", combined(images))
    print_row("**all**", combined(list(every.values())))


def print_row(name: str, row: dict) -> None:
    print(
        f"| {name} | {row['images']} | {row['samples']} | {row['diversity']:.3f} | "
        f"{row['coherence']:.2e} | {row['completeness']:.2e} | {row['swd']:.4f} | "
        f"{row['change']:.3f} | {row['copied']:.3f} | {row['copies']} | "
        f"{row['seconds_per_sample']:.2f} |"
    )


if __name__ == "__main__":
    main()
