"""The objects of an image, as an analogy's structure sees them.

A structure image (a sketch, a photo of tracks) steers an analogy through its
objects: the connected regions of the minority side of its grey Otsu threshold
(dark blobs on a light ground, or light ones on a dark ground). The analogy
chooses its depth from their size (`gpnn.core.tasks`), and
`gpnn.core.metrics.structure_overlap` measures how well an output keeps them.
"""

from __future__ import annotations

import cv2
import numpy as np

from gpnn.core.imageio import as_image


def object_mask(image: np.ndarray) -> np.ndarray:
    """(H, W) bool mask of the minority side of `image`'s grey Otsu threshold.

    `image` is (H, W, 3) float in [0, 1] (or uint8). The grey image is the mean of
    the channels; a uniform image has no objects (an all-False mask).
    """
    image = as_image(image, "image")
    grey = np.round(image.mean(axis=2) * 255).astype(np.uint8)
    if grey.min() == grey.max():
        return np.zeros(grey.shape, bool)
    _, marked = cv2.threshold(grey, 0, 1, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    marked = marked.astype(bool)
    return marked if marked.mean() <= 0.5 else ~marked


def object_sides(mask: np.ndarray, min_side: int = 1) -> np.ndarray:
    """Longer side, in pixels, of each connected (8-neighbour) region of `mask`,
    regions whose longer side is under `min_side` left out."""
    _, _, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    sides = stats[1:, [cv2.CC_STAT_WIDTH, cv2.CC_STAT_HEIGHT]].max(axis=1)
    return sides[sides >= min_side]
