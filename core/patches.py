"""Patches of an image as rows of a matrix, and the weighted fold back.

Both are memory-bound copies and gathers; on large images they run in bands of
rows on the engine's threads (`gpnn.core.threads`), each output pixel written by
one band in the same order as one thread would, so the result is the same.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property, lru_cache

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from gpnn.core.imageio import describe_size
from gpnn.core.threads import map_in_threads, row_bands

# Width of the Gaussian fold weights on a [-1, 1] grid (the authors' value).
FOLD_SIGMA = 1.7
# Rows of patch positions (or output pixels) of the smallest band given to a thread.
ROWS_PER_BAND = 64


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
    patches = np.empty(windows.shape, dtype=np.float32)

    def copy(band: tuple[int, int]) -> None:
        np.copyto(patches[band[0] : band[1]], windows[band[0] : band[1]])

    map_in_threads(copy, row_bands(len(windows), ROWS_PER_BAND))
    return patches.reshape(windows.shape[0] * windows.shape[1], -1)


def patch_grid(shape: tuple[int, int], patch_size: int) -> tuple[int, int]:
    """Number of patch positions along each axis of an (H, W) image."""
    rows, cols = shape[0] - patch_size + 1, shape[1] - patch_size + 1
    if rows < 1 or cols < 1:
        raise ValueError(
            f"an image of {describe_size(shape)} pixels is smaller than one "
            f"{patch_size}x{patch_size} patch"
        )
    return rows, cols


@lru_cache(maxsize=8)
def fold_weights(patch_size: int) -> np.ndarray:
    """Separable Gaussian weights exp(-0.5 (g / 1.7)^2), g = linspace(-1, 1, p)."""
    g = np.linspace(-1.0, 1.0, patch_size)
    w = np.exp(-0.5 * (g / FOLD_SIGMA) ** 2)
    return np.outer(w, w).astype(np.float32)


@dataclass(frozen=True)
class ValuePatches:
    """The value patches of a source level as pixels plus positions.

    Patch `j` is the p x p window whose top-left pixel is ``pixels[starts[j]]``,
    its rows ``strides[j]`` pixels apart. Holding the source pixels once
    instead of an (m, 3 p^2) matrix takes p^2 (49) times less memory, and
    `fold` reads the chosen patches straight from the pixels.

    Attributes
    ----------
    pixels : (P, C) float32, the pixels of every source image, row-major, concatenated
    starts : (m,) int64, flat index of each patch's top-left pixel
    strides : (m,) int64, the row length (image width) of each patch's image
    images : (k, 3) int64, per source image: flat index of its first pixel, height, width
    patch_size : p
    """

    pixels: np.ndarray
    starts: np.ndarray
    strides: np.ndarray
    images: np.ndarray
    patch_size: int

    @classmethod
    def of_images(
        cls,
        images: Sequence[np.ndarray],
        patch_size: int,
        valid: Sequence[np.ndarray] | None = None,
    ) -> ValuePatches:
        """Every patch of each (H, W, C) image, in `extract_patches` order, keeping
        only those where the matching (N,) boolean of `valid` is True."""
        starts, strides, offset, layout = [], [], 0, []
        for i, image in enumerate(images):
            height, width = image.shape[:2]
            layout.append((offset, height, width))
            rows, cols = patch_grid((height, width), patch_size)
            grid = (np.arange(rows)[:, None] * width + np.arange(cols)[None, :]).reshape(-1)
            if valid is not None:
                grid = grid[valid[i]]
            starts.append(grid + offset)
            strides.append(np.full(len(grid), width, dtype=np.int64))
            offset += height * width
        pixels = np.concatenate([image.reshape(-1, image.shape[2]) for image in images])
        return cls(
            np.ascontiguousarray(pixels, dtype=np.float32),
            np.concatenate(starts).astype(np.int64),
            np.concatenate(strides),
            np.array(layout, dtype=np.int64),
            patch_size,
        )

    def __len__(self) -> int:
        return len(self.starts)

    @cached_property
    def _index_by_start(self) -> np.ndarray:
        index = np.full(len(self.pixels), -1, dtype=np.int64)
        index[self.starts] = np.arange(len(self.starts))
        return index

    def shifted(self, ids: np.ndarray, dy: int, dx: int) -> np.ndarray:
        """The patches `dy` rows and `dx` columns away from patches `ids` in their
        source image; `ids` itself where no patch starts there."""
        target = self.starts[ids] + dy * self.strides[ids] + dx
        found = self._index_by_start[np.clip(target, 0, len(self.pixels) - 1)]
        return np.where(found >= 0, found, ids)

    def neighbour_candidates(self, chosen: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
        """(N, 5) candidate patches per output position, PatchMatch's propagation:
        the position's own match and each 4-neighbour's match shifted back by the
        offset between the two positions (coherent patches continue each other)."""
        matches = chosen.reshape(grid)
        from_left = matches.copy()
        from_left[:, 1:] = self.shifted(matches[:, :-1], 0, 1)
        from_right = matches.copy()
        from_right[:, :-1] = self.shifted(matches[:, 1:], 0, -1)
        from_above = matches.copy()
        from_above[1:] = self.shifted(matches[:-1], 1, 0)
        from_below = matches.copy()
        from_below[:-1] = self.shifted(matches[1:], -1, 0)
        columns = [matches, from_left, from_right, from_above, from_below]
        return np.stack([c.reshape(-1) for c in columns], axis=1)

    def upscaled_candidates(
        self,
        coarser: ValuePatches,
        chosen: np.ndarray,
        coarse_shape: tuple[int, int],
        shape: tuple[int, int],
    ) -> np.ndarray:
        """(N, 5) candidates among these patches for each patch position of an
        (H, W) output, from the `chosen` matches among the `coarser` level's
        patches of the output at `coarse_shape`: coarse-to-fine PatchMatch.
        Both levels must be `complete`.

        A position takes the match of the coarse position under its centre, and
        those of the four coarse neighbours shifted back by their offset, each
        carried to this level (patch centres scaled by the ratio of the two
        levels' sizes, per source image) and clipped to a patch position.
        """
        p, half = self.patch_size, (self.patch_size - 1) / 2
        rows, cols = patch_grid(shape, p)
        coarse_rows, coarse_cols = patch_grid(coarse_shape, p)
        image_of, row_of, column_of = (
            part.reshape(coarse_rows, coarse_cols) for part in coarser.positions(chosen)
        )
        # Where each position's centre falls among the coarse patch positions.
        along_y = (np.arange(rows) + half) * coarse_shape[0] / shape[0] - half
        along_x = (np.arange(cols) + half) * coarse_shape[1] / shape[1] - half
        near_y = np.clip(np.rint(along_y), 0, coarse_rows - 1).astype(np.int64)
        near_x = np.clip(np.rint(along_x), 0, coarse_cols - 1).astype(np.int64)
        columns = []
        for dy, dx in ((0, 0), (0, -1), (0, 1), (-1, 0), (1, 0)):
            from_y = np.clip(near_y + dy, 0, coarse_rows - 1)
            from_x = np.clip(near_x + dx, 0, coarse_cols - 1)
            at = (from_y[:, None], from_x[None, :])
            image, source_y, source_x = image_of[at], row_of[at], column_of[at]
            # The coarse source position under this output position's centre ...
            at_y = source_y + (along_y - from_y)[:, None]
            at_x = source_x + (along_x - from_x)[None, :]
            # ... and the same place in this level's image.
            at_y = (at_y + half) * self.images[image, 1] / coarser.images[image, 1] - half
            at_x = (at_x + half) * self.images[image, 2] / coarser.images[image, 2] - half
            columns.append(self.at(image, at_y, at_x).reshape(-1))
        return np.stack(columns, axis=1)

    def image_shape(self, image: int) -> tuple[int, int]:
        """(H, W) of source image number `image`."""
        return int(self.images[image, 1]), int(self.images[image, 2])

    def positions(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Source image, row and column of the top-left pixel of patches `ids`."""
        starts = self.starts[ids]
        image = np.searchsorted(self.images[:, 0], starts, side="right") - 1
        y, x = np.divmod(starts - self.images[image, 0], self.images[image, 2])
        return image, y, x

    @property
    def complete(self) -> bool:
        """Whether every patch position of the source images is a patch (none
        was left out around an inpainting hole)."""
        rows = self.images[:, 1] - self.patch_size + 1
        cols = self.images[:, 2] - self.patch_size + 1
        return len(self) == int((rows * cols).sum())

    def at(self, image: np.ndarray, y: np.ndarray, x: np.ndarray) -> np.ndarray:
        """The patch at the (rounded, clipped) position (y, x) of source `image`
        (-1 where no patch starts there, which only an incomplete level has)."""
        height, width = self.images[image, 1], self.images[image, 2]
        y = np.clip(np.rint(y), 0, height - self.patch_size).astype(np.int64)
        x = np.clip(np.rint(x), 0, width - self.patch_size).astype(np.int64)
        return self._index_by_start[self.images[image, 0] + y * width + x]

    def fold(self, chosen: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
        """Fold the patches `chosen` (one per patch position of an (H, W) output)
        into an image: each pixel is the Gaussian-weighted mean of the chosen
        patch pixels covering it."""
        patch_size = self.patch_size
        rows, cols = patch_grid(shape, patch_size)
        starts = self.starts[chosen].reshape(rows, cols)
        strides = self.strides[chosen].reshape(rows, cols)
        weights = fold_weights(patch_size)
        total = np.zeros((shape[0], shape[1], self.pixels.shape[1]), dtype=np.float32)

        def fold_band(band: tuple[int, int]) -> None:
            # Output rows [top, bottom) get row dy of the patches at rows y - dy.
            top, bottom = band
            for dy in range(patch_size):
                first, last = max(top - dy, 0), min(bottom - dy, rows)
                if first >= last:
                    continue
                row_start = starts[first:last] + dy * strides[first:last]
                for dx in range(patch_size):
                    total[first + dy : last + dy, dx : dx + cols] += (
                        weights[dy, dx] * self.pixels[row_start + dx]
                    )

        map_in_threads(fold_band, row_bands(shape[0], ROWS_PER_BAND))
        return total / _coverage(shape, patch_size)[:, :, None]


class HostArrays:
    """A PNN stage's image, patches and fold as NumPy arrays on the host (the
    CPU and faiss-gpu backends; `gpnn.core.torch_backend.TorchArrays` is the
    device counterpart)."""

    def __init__(self, values: ValuePatches) -> None:
        self.values = values

    def upload(self, image: np.ndarray) -> np.ndarray:
        return image

    def download(self, image: np.ndarray) -> np.ndarray:
        return image

    def extract(self, image: np.ndarray, guide: np.ndarray | None = None) -> np.ndarray:
        if guide is not None:
            image = np.concatenate((image, guide), axis=2)
        return extract_patches(image, self.values.patch_size)

    def fold(self, chosen: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
        return self.values.fold(chosen, shape)

    def neighbour_candidates(self, chosen: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
        return self.values.neighbour_candidates(chosen, grid)

    def keep(self, image: np.ndarray, free: np.ndarray, known: np.ndarray) -> np.ndarray:
        return np.where(free, image, known)


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
