"""The PyTorch backend: a level's whole PNN iteration on one device (for CUDA
machines without a faiss-gpu build).

- `TorchKeys`: the exact alpha-normalised search, with the arithmetic of
  `gpnn.core.search.ExactKeys` (see its module notes): tiled matrix products on
  augmented vectors and a row-wise minimum per tile, so the full query x key
  matrix is never held.
- `TorchArrays`: patch extraction (``unfold``), the Gaussian-weighted fold
  (``fold``) of the value patches, read from the level's pixels, and the fast
  mode's propagation candidates.

``mode="fast"`` on this backend: a level's first iteration searches every key
(exact, cheap on a GPU); later iterations score only each query's propagation
candidates (its previous match and its neighbours', shifted), exactly, as the
CPU fast mode does after its first iteration, and a level stops once its
matches settle. That is one full search per level instead of one per
iteration.

A level's keys, value pixels and fold weights go to the device once, when the
level is built; during a stage the running image, its patches and the matches
stay there, and the image comes back to the host once per stage (the pyramid's
resizing between stages runs on the host, with OpenCV, like on the CPU).

Precision: float32 throughout. PyTorch's default keeps TF32 off for float32
matrix products (``torch.backends.cuda.matmul.allow_tf32``), so the GPU
computes what the CPU does, up to summation order.

PyTorch is imported by this module; `gpnn.core.device` imports it only when
this backend is chosen. ``device="cpu"`` works too (the tests use it).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

from gpnn.core.patches import ValuePatches, fold_weights, patch_grid
from gpnn.core.pyramid import Shape

# Tile of the score matrix, in rows (queries) x columns (keys): 256 MiB of
# float32 on a GPU, 64 MiB on the CPU.
GPU_TILE = (16384, 4096)
CPU_TILE = (8192, 2048)
# Query-candidate pairs whose differences are held at once when scoring
# candidates (2^20 pairs of 147 float32: 600 MiB).
CANDIDATE_ROWS = 2**20


class TorchKeys:
    """The keys of one pyramid level on a PyTorch device, searched exactly.

    Parameters
    ----------
    keys : (m, d) array, converted to float32
    device : a torch device ("cuda", "cuda:1", "cpu")
    """

    def __init__(self, keys: np.ndarray, *, device: str = "cuda") -> None:
        self.device = torch.device(device)
        self.tile = CPU_TILE if self.device.type == "cpu" else GPU_TILE
        keys32 = np.asarray(keys, dtype=np.float32)
        center = keys32.mean(axis=0, dtype=np.float64).astype(np.float32)
        self.center = torch.from_numpy(center).to(self.device)
        self.centered = torch.from_numpy(np.ascontiguousarray(keys32 - center)).to(self.device)
        self.norms = (self.centered.double() ** 2).sum(dim=1)
        self._l2_keys = _augment(-2.0 * self.centered, self.norms.float())

    @property
    def dim(self) -> int:
        return int(self.centered.shape[1])

    @torch.no_grad()
    def nearest(
        self, queries: torch.Tensor, alpha: float, hint: torch.Tensor | None = None
    ) -> torch.Tensor:
        """(n,) int64 index of the best key of each (n, d) float32 query, on the
        keys' device.

        Without `hint`, every key is scored (exact). With `hint`, (n, k) int64
        candidate keys per query (the fast mode's propagation), only those are
        scored, exactly; for finite alpha the per-key minimum over the queries
        is still exact, and each key is also a candidate of its nearest query.
        """
        q = queries.to(self.device, torch.float32) - self.center
        if hint is not None:
            return self._nearest_among(q, alpha, hint.reshape(len(q), -1))
        if math.isinf(alpha):
            ones = torch.ones(len(q), device=self.device)
            _, ids = tiled_argmin(_augment(q, ones), self._l2_keys, self.tile)
            return ids
        q_norms = (q.double() ** 2).sum(dim=1)
        key_min, _ = self._key_minima(q, q_norms)
        weight = 1.0 / (alpha * self.dim + key_min)
        keys = torch.cat(
            [
                self.centered * (-2.0 * weight).float()[:, None],
                weight.float()[:, None],
                (weight * self.norms).float()[:, None],
            ],
            dim=1,
        )
        augmented = torch.cat(
            [q, q_norms.float()[:, None], torch.ones(len(q), 1, device=self.device)], dim=1
        )
        _, ids = tiled_argmin(augmented, keys, self.tile)
        return ids

    def _key_minima(
        self, q: torch.Tensor, q_norms: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(m,) float64 min over the centred queries of |Q_l - K_j|^2, and the
        (m,) index l of that query (rows = keys, columns = queries)."""
        ones = torch.ones(len(self.centered), device=self.device)
        values, nearest_query = tiled_argmin(
            _augment(self.centered, ones), _augment(-2.0 * q, q_norms.float()), self.tile
        )
        return torch.clamp(values.double() + self.norms, min=0.0), nearest_query

    def _nearest_among(
        self, q: torch.Tensor, alpha: float, candidates: torch.Tensor
    ) -> torch.Tensor:
        """The best of `candidates` (n, k) for each centred query; ties to the lowest key."""
        distances = torch.empty(candidates.shape, dtype=torch.float32, device=self.device)
        rows = max(1, CANDIDATE_ROWS // candidates.shape[1])
        for start in range(0, len(q), rows):
            block = candidates[start : start + rows]
            difference = q[start : start + rows, None, :] - self.centered[block]
            distances[start : start + rows] = (difference * difference).sum(dim=2)
        if math.isinf(alpha):
            return _lowest_best(candidates, distances)
        key_min, nearest_query = self._key_minima(q, (q.double() ** 2).sum(dim=1))
        weight = (1.0 / (alpha * self.dim + key_min)).float()
        scores = distances * weight[candidates]
        # Each key is also a candidate of the query it is nearest to.
        keys = torch.arange(len(key_min), device=self.device)
        reverse = key_min.float() * weight
        best = torch.minimum(
            scores.min(dim=1).values,
            torch.full_like(scores[:, 0], math.inf).scatter_reduce(
                0, nearest_query, reverse, "amin"
            ),
        )
        none = torch.iinfo(torch.int64).max
        forward = torch.where(scores == best[:, None], candidates, none).min(dim=1).values
        backward = torch.full_like(forward, none).scatter_reduce(
            0, nearest_query, torch.where(reverse == best[nearest_query], keys, none), "amin"
        )
        return torch.minimum(forward, backward)


class TorchArrays:
    """Images, patches and the fold of one level's value patches on a PyTorch device.

    The counterpart of NumPy's `gpnn.core.patches.extract_patches` and
    `ValuePatches.fold`, with the same patch layout (channel, row, column).

    Parameters
    ----------
    values : the level's value patches (pixels plus positions)
    device : a torch device
    """

    def __init__(self, values: ValuePatches, *, device: str = "cuda") -> None:
        self.device = torch.device(device)
        self.patch_size = patch_size = values.patch_size
        self.pixels = torch.from_numpy(values.pixels).to(self.device)
        self.starts = torch.from_numpy(values.starts).to(self.device)
        self.strides = torch.from_numpy(values.strides).to(self.device)
        index_by_start = torch.full((len(values.pixels),), -1, dtype=torch.int64)
        index_by_start[torch.from_numpy(values.starts)] = torch.arange(len(values))
        self._index_by_start = index_by_start.to(self.device)
        steps = torch.arange(patch_size, device=self.device)
        self._rows, self._columns = steps[None, :, None], steps[None, None, :]
        weights = torch.from_numpy(fold_weights(patch_size)).to(self.device)
        self.weights = weights.reshape(1, patch_size * patch_size, 1)

    def upload(self, image: np.ndarray) -> torch.Tensor:
        """An (H, W, C) image (or mask) on the device."""
        return torch.from_numpy(np.ascontiguousarray(image)).to(self.device)

    def download(self, image: torch.Tensor) -> np.ndarray:
        return image.cpu().numpy()

    def extract(self, image: torch.Tensor, guide: torch.Tensor | None = None) -> torch.Tensor:
        """(N, C p^2) patches of an (H, W, C) image, in `extract_patches`' order; a
        `guide`'s channels are appended to the image's."""
        if guide is not None:
            image = torch.cat((image, guide), dim=2)
        columns = F.unfold(image.permute(2, 0, 1)[None], self.patch_size)
        return columns[0].T.contiguous()

    @torch.no_grad()
    def fold(self, chosen: torch.Tensor, shape: Shape) -> torch.Tensor:
        """(H, W, C) image: each pixel the Gaussian-weighted mean of the chosen
        value patches covering it (one patch per position of the output)."""
        p = self.patch_size
        patch_grid(shape, p)  # validates the shape
        starts, strides = self.starts[chosen], self.strides[chosen]
        index = starts[:, None, None] + self._rows * strides[:, None, None] + self._columns
        patches = self.pixels[index]  # (N, p, p, C)
        channels = patches.shape[-1]
        columns = patches.reshape(len(chosen), p * p, channels).permute(2, 1, 0)
        columns = (columns * self.weights).reshape(1, channels * p * p, len(chosen))
        total = F.fold(columns, shape, p)[0]
        return (total / _coverage(shape, p, str(self.device))).permute(1, 2, 0).contiguous()

    def neighbour_candidates(self, chosen: torch.Tensor, grid: Shape) -> torch.Tensor:
        """(N, 5) propagation candidates per output position, as
        `ValuePatches.neighbour_candidates` computes them on the host."""
        matches = chosen.reshape(grid)
        from_left, from_right = matches.clone(), matches.clone()
        from_above, from_below = matches.clone(), matches.clone()
        from_left[:, 1:] = self._shifted(matches[:, :-1], 0, 1)
        from_right[:, :-1] = self._shifted(matches[:, 1:], 0, -1)
        from_above[1:] = self._shifted(matches[:-1], 1, 0)
        from_below[:-1] = self._shifted(matches[1:], -1, 0)
        columns = [matches, from_left, from_right, from_above, from_below]
        return torch.stack([c.reshape(-1) for c in columns], dim=1)

    def _shifted(self, ids: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
        target = self.starts[ids] + dy * self.strides[ids] + dx
        found = self._index_by_start[target.clamp(0, len(self.pixels) - 1)]
        return torch.where(found >= 0, found, ids)

    def keep(self, image: torch.Tensor, free: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
        """`image` where `free` (H, W, 1) is True, else the `known` (H, W, C) pixels."""
        return torch.where(free, image, known)


@lru_cache(maxsize=64)
def _coverage(shape: Shape, patch_size: int, device: str) -> torch.Tensor:
    """(1, H, W) sum of the fold weights over the patches covering each pixel."""
    rows, cols = patch_grid(shape, patch_size)
    weights = torch.from_numpy(fold_weights(patch_size)).to(device).reshape(1, -1, 1)
    return F.fold(weights.expand(1, -1, rows * cols), shape, patch_size)[0]


def tiled_argmin(
    rows: torch.Tensor, columns: torch.Tensor, tile: tuple[int, int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row, the least inner product with a column and its first index.

    rows (n, e) and columns (m, e) float32 on one device; returns (n,) float32
    values and (n,) int64 indices, on that device.
    """
    n, m = rows.shape[0], columns.shape[0]
    values = torch.empty(n, dtype=torch.float32, device=rows.device)
    ids = torch.empty(n, dtype=torch.int64, device=rows.device)
    for start in range(0, n, tile[0]):
        block = rows[start : start + tile[0]]
        best = torch.full((len(block),), math.inf, device=rows.device)
        best_id = torch.zeros(len(block), dtype=torch.int64, device=rows.device)
        for key_start in range(0, m, tile[1]):
            scores = block @ columns[key_start : key_start + tile[1]].T
            local, local_id = scores.min(dim=1)
            better = local < best
            best = torch.where(better, local, best)
            best_id = torch.where(better, local_id + key_start, best_id)
        values[start : start + len(block)] = best
        ids[start : start + len(block)] = best_id
    return values, ids


def _lowest_best(candidates: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
    """Per row, the candidate of least score; ties to the lowest key index."""
    best = scores.min(dim=1, keepdim=True).values
    none = torch.iinfo(torch.int64).max
    return torch.where(scores == best, candidates, none).min(dim=1).values


def _augment(vectors: torch.Tensor, last: torch.Tensor) -> torch.Tensor:
    return torch.cat([vectors, last[:, None].to(vectors.dtype)], dim=1).contiguous()
