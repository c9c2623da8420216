"""Image pyramids: level sizes, resizing and the choice of depth."""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

Shape = tuple[int, int]


def common_height(shapes: Sequence[Shape]) -> list[Shape]:
    """Each of `shapes` scaled to the smallest height, its aspect kept (at least 1 px
    wide): how a collage lines up its sources."""
    height = min(shape[0] for shape in shapes)
    return [(height, max(1, round(shape[1] * height / shape[0]))) for shape in shapes]


def level_shape(shape: Shape, ratio: float, level: int) -> Shape:
    """Size of pyramid level `level`: ``ceil(H * r**level) x ceil(W * r**level)``."""
    scale = ratio**level
    # Round first so that float error in r**level never adds a whole pixel.
    return (
        math.ceil(round(shape[0] * scale, 6)),
        math.ceil(round(shape[1] * scale, 6)),
    )


def resize(image: np.ndarray, shape: Shape) -> np.ndarray:
    """Resize to `shape` (H, W): area averaging down (anti-aliased), bicubic up."""
    height, width = shape
    if image.shape[:2] == (height, width):
        return image
    shrinking = height * width < image.shape[0] * image.shape[1]
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC
    resized = cv2.resize(image, (width, height), interpolation=interpolation)
    if resized.ndim == 2 and image.ndim == 3:
        resized = resized[:, :, None]
    return np.clip(resized, 0.0, 1.0)


def build_pyramid(image: np.ndarray, ratio: float, depth: int) -> list[np.ndarray]:
    """Levels 0 (the image) to `depth` (coarsest), each resized from the original."""
    return [resize(image, level_shape(image.shape[:2], ratio, n)) for n in range(depth + 1)]


def depth_for(extent: float, target: float, ratio: float) -> int:
    """Number of downscalings that bring a length `extent` closest to `target`."""
    if extent <= target:
        return 0
    return max(0, round(math.log(target / extent) / math.log(ratio)))


def gradual_shapes(start: Shape, end: Shape, step: float) -> list[Shape]:
    """Sizes from `start` to `end` (inclusive of `end`, not of `start`) in small steps.

    Each step changes each axis by a factor of at most ``1 + step`` (geometric
    interpolation), the gradual resizing of Simakov et al. that GPNN adopts.
    """
    spans = [abs(math.log(e / s)) for s, e in zip(start, end, strict=True)]
    count = max(1, math.ceil(max(spans) / math.log1p(step) - 1e-9))
    shapes = []
    for k in range(1, count + 1):
        t = k / count
        shapes.append(
            tuple(round(s * (e / s) ** t) for s, e in zip(start, end, strict=True))  # type: ignore[misc]
        )
    return shapes
