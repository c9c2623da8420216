"""Patches of an image as rows of a matrix, and the weighted fold back."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

# Width of the Gaussian fold weights on a [-1, 1] grid (the authors' value).
FOLD_SIGMA = 1.7


def extract_patches(image: np.ndarray, patch_size: int) -> np.ndarray:
    """All overlapping patches, stride 1.

    Parameters
    ----------
    image : (H, W, C) float32
    patch_size : int

    Returns
    -------
    (N, C * p * p) float32, N = (H - p + 1) * (W - p + 1), row-major over positions.
    """
    windows = sliding_window_view(image, (patch_size, patch_size), axis=(0, 1))
    rows = windows.shape[0] * windows.shape[1]
    return np.ascontiguousarray(windows.reshape(rows, -1), dtype=np.float32)


def patch_grid(shape: tuple[int, int], patch_size: int) -> tuple[int, int]:
    """Number of patch positions along each axis of an (H, W) image."""
    rows, cols = shape[0] - patch_size + 1, shape[1] - patch_size + 1
    if rows < 1 or cols < 1:
        raise ValueError(
            f"an image of {shape[0]}x{shape[1]} pixels is smaller than one "
            f"{patch_size}x{patch_size} patch"
        )
    return rows, cols


@lru_cache(maxsize=8)
def fold_weights(patch_size: int) -> np.ndarray:
    """Separable Gaussian weights exp(-0.5 (g / 1.7)^2), g = linspace(-1, 1, p)."""
    g = np.linspace(-1.0, 1.0, patch_size)
    w = np.exp(-0.5 * (g / FOLD_SIGMA) ** 2)
    return np.outer(w, w).astype(np.float32)


def fold(patches: np.ndarray, shape: tuple[int, int], patch_size: int) -> np.ndarray:
    """Fold patches (as laid out by `extract_patches`) into an (H, W, C) image.

    Every pixel is the Gaussian-weighted mean of the patch pixels covering it.
    """
    rows, cols = patch_grid(shape, patch_size)
    p = patch_size
    grid = patches.reshape(rows, cols, -1, p, p)
    channels = grid.shape[2]
    weights = fold_weights(p)
    total = np.zeros((shape[0], shape[1], channels), dtype=np.float32)
    for dy in range(p):
        for dx in range(p):
            total[dy : dy + rows, dx : dx + cols] += weights[dy, dx] * grid[:, :, :, dy, dx]
    return total / _coverage(shape, p)[:, :, None]


@lru_cache(maxsize=64)
def _coverage(shape: tuple[int, int], patch_size: int) -> np.ndarray:
    rows, cols = patch_grid(shape, patch_size)
    weights = fold_weights(patch_size)
    cover = np.zeros(shape, dtype=np.float32)
    for dy in range(patch_size):
        for dx in range(patch_size):
            cover[dy : dy + rows, dx : dx + cols] += weights[dy, dx]
    return cover


def patches_inside(hole: np.ndarray, patch_size: int) -> np.ndarray:
    """Boolean per patch position: True where the patch touches no True pixel of `hole`."""
    windows = sliding_window_view(hole, (patch_size, patch_size))
    return ~windows.any(axis=(2, 3)).reshape(-1)
