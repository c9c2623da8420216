"""Exact alpha-normalised patch search with PyTorch (for CUDA machines without faiss-gpu).

The same arithmetic as `gpnn.core.search.ExactKeys` (see its module notes):
tiled matrix products on augmented vectors and a row-wise minimum per tile, so
the full query x key matrix is never held. The keys of a level, their norms
and the augmented keys are moved to the device once, when the level is built;
each call moves its queries there and only the (n,) indices back.

PyTorch is imported by this module; `gpnn.core.device` imports the module only
when this backend is chosen. ``device="cpu"`` works too (tests use it).
"""

from __future__ import annotations

import math

import numpy as np
import torch

# Tile of the score matrix, in rows (queries) x columns (keys): 256 MiB of
# float32 on a GPU, 64 MiB on the CPU.
GPU_TILE = (16384, 4096)
CPU_TILE = (8192, 2048)


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
        keys64 = np.asarray(keys, dtype=np.float32)
        center = keys64.mean(axis=0, dtype=np.float64).astype(np.float32)
        self.center = torch.from_numpy(center).to(self.device)
        self.centered = torch.from_numpy(np.ascontiguousarray(keys64 - center)).to(self.device)
        self.norms = (self.centered.double() ** 2).sum(dim=1)
        self._l2_keys = _augment(-2.0 * self.centered, self.norms.float())

    @property
    def dim(self) -> int:
        return int(self.centered.shape[1])

    @torch.no_grad()
    def nearest(
        self, queries: np.ndarray, alpha: float, hint: np.ndarray | None = None
    ) -> np.ndarray:
        """(n,) int64 index of the best key of each (n, d) query; `hint` is ignored."""
        q = torch.from_numpy(np.ascontiguousarray(queries, dtype=np.float32)).to(self.device)
        q = q - self.center
        if math.isinf(alpha):
            ones = torch.ones(len(q), device=self.device)
            _, ids = tiled_argmin(_augment(q, ones), self._l2_keys, self.tile)
            return ids.cpu().numpy().astype(np.int64)
        q_norms = (q.double() ** 2).sum(dim=1)
        # min over the queries of |Q_l - K_j|^2, as rows = keys, columns = queries.
        ones = torch.ones(len(self.centered), device=self.device)
        values, _ = tiled_argmin(
            _augment(self.centered, ones), _augment(-2.0 * q, q_norms.float()), self.tile
        )
        key_min = torch.clamp(values.double() + self.norms, min=0.0)
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
        return ids.cpu().numpy().astype(np.int64)


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


def _augment(vectors: torch.Tensor, last: torch.Tensor) -> torch.Tensor:
    return torch.cat([vectors, last[:, None].to(vectors.dtype)], dim=1).contiguous()
