"""Run random generation over a folder of images and evaluate every result.

The generation itself is a `Generator`: a callable that returns the samples of
one source and the seconds they took. `local_generator` runs the engine in
this process; `gpnn.evaluate.remote` sends the work to the batch service.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gpnn.core import GenerateParams, Progress, generate, read_image
from gpnn.evaluate.report import THUMBNAILS, ReportEntry, build_entry

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"})


@dataclass(frozen=True)
class Source:
    """One image of a dataset."""

    name: str
    path: Path


# (source image, its file, parameters, number of samples) -> (samples, seconds)
Generator = Callable[[np.ndarray, Path, GenerateParams, int], tuple[list[np.ndarray], float]]
ProgressCallback = Callable[[Progress], None]


def find_images(directory: str | Path, *, limit: int | None = None) -> list[Source]:
    """The image files of `directory` (not recursive), in natural order (2 before 10).

    Raises `ValueError` when `directory` is not a folder or holds no image.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise ValueError(f"`{directory}` is not a folder")
    files = [p for p in directory.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    if not files:
        kinds = ", ".join(sorted(IMAGE_SUFFIXES))
        raise ValueError(f"`{directory}` holds no image file ({kinds})")
    files.sort(key=_natural_key)
    if limit is not None:
        if limit < 1:
            raise ValueError("`limit` must be at least 1")
        files = files[:limit]
    return [Source(path.stem, path) for path in files]


def local_generator(progress: ProgressCallback | None = None, *, device: str = "cpu") -> Generator:
    """Generate in this process with `gpnn.core.generate` on `device`, timing the call."""

    def run(
        source: np.ndarray, path: Path, params: GenerateParams, samples: int
    ) -> tuple[list[np.ndarray], float]:
        start = time.perf_counter()
        outputs = generate(source, params, samples=samples, progress=progress, device=device)
        return outputs, time.perf_counter() - start

    return run


def run_dataset(
    sources: list[Source],
    params: GenerateParams,
    *,
    samples: int,
    generator: Generator | None = None,
    thumbnails: int = THUMBNAILS,
    stride: int = 1,
) -> Iterator[ReportEntry]:
    """Generate `samples` images of every source and evaluate them, one at a time.

    Yields a `ReportEntry` per source as soon as it is done (the samples beyond
    the first `thumbnails` are dropped after evaluation, so memory stays flat
    over a long dataset). Sample i of every source uses seed ``params.seed + i``.
    `stride` subsamples the patches of the nearest-patch metrics (see
    `gpnn.evaluate.evaluate_image`).
    """
    if samples < 1:
        raise ValueError("`samples` must be at least 1")
    generator = generator or local_generator()
    for source in sources:
        image = read_image(source.path)
        outputs, seconds = generator(image, source.path, params, samples)
        logger.info("%s: %d samples in %.1f s", source.name, len(outputs), seconds)
        yield build_entry(
            source.name, image, outputs, runtime_s=seconds, thumbnails=thumbnails, stride=stride
        )


def write_files(files: dict[str, bytes], directory: str | Path) -> list[Path]:
    """Write `write_report`'s files under `directory` (created); returns the paths."""
    directory = Path(directory)
    written = []
    for name, content in files.items():
        target = directory / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
        written.append(target)
    return written


def _natural_key(path: Path) -> list[object]:
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", path.name)]
