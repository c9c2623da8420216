"""Patch nearest-neighbour search with GPNN's alpha-normalised score.

For queries Q (n x d) and keys K (m x d) with per-patch MSE
``D_ij = |Q_i - K_j|^2 / d`` the score is ``S_ij = D_ij / (alpha + min_l D_lj)``
and each query takes ``argmin_j S_ij``.

Both halves are exact searches done as tiled matrix products, so the full
n x m matrix is never held (one tile of `QUERY_TILE` x `KEY_TILE` float32 is):

1. ``min_l D_lj`` is the minimum over the queries of
   ``<[-2 Q_l, |Q_l|^2], [K_j, 1]>``, plus ``|K_j|^2``.
2. With ``w_j = 1 / (alpha d + min_l |Q_l - K_j|^2)``,
   ``w_j |Q_i - K_j|^2 = <[Q_i, |Q_i|^2, 1], [-2 w_j K_j, w_j, w_j |K_j|^2]>``,
   so the re-scored argmin is an argmin of one more tiled product.

alpha = inf leaves ``argmin_j <[Q_i, 1], [-2 K_j, |K_j|^2]>``, the plain
nearest neighbour.

Each tile is one BLAS sgemm followed by a row-wise argmin, which keeps the
search at most of the machine's matrix-product rate (``bench/engine.py``
prints the fraction); `faiss.IndexFlatL2` reaches about a third of it here.
"""

from __future__ import annotations

import math

import numpy as np

# Rows (queries) and columns (keys) of one tile of the score matrix: 64 MiB of
# float32, large enough for BLAS to run near its peak rate on 147-dimensional
# patches, small enough to stay out of the way of the 1.5 GB budget.
QUERY_TILE = 8192
KEY_TILE = 2048


def normalized_nn(queries: np.ndarray, keys: np.ndarray, alpha: float) -> np.ndarray:
    """Index of the best key for every query under the alpha-normalised score.

    Parameters
    ----------
    queries : (n, d) array, converted to float32
    keys : (m, d) array, converted to float32
    alpha : float > 0, or ``math.inf`` for plain nearest neighbours

    Returns
    -------
    (n,) int64 indices into `keys`. Ties go to the lowest index, up to float32
    rounding.
    """
    queries, keys = check_pair(queries, keys)
    check_alpha(alpha)
    return ExactKeys(keys).nearest(queries, alpha)


class ExactKeys:
    """The keys of one pyramid level, ready to be searched many times (CPU, exact).

    Centring on the keys' mean keeps the norms small, which keeps the float32
    expansion ``|q|^2 + |k|^2 - 2 q.k`` accurate.

    Parameters
    ----------
    keys : (m, d) array, converted to float32
    """

    def __init__(self, keys: np.ndarray) -> None:
        keys = np.asarray(keys, dtype=np.float32)
        self.center = keys.mean(axis=0, dtype=np.float64).astype(np.float32)
        # Only the centred copy is kept (one (m, d) float32 array per level).
        self.centered = np.ascontiguousarray(keys - self.center)
        self.norms = np.einsum("ij,ij->i", self.centered, self.centered, dtype=np.float64)
        self._l2_keys: np.ndarray | None = None

    @property
    def dim(self) -> int:
        return self.centered.shape[1]

    def nearest(
        self, queries: np.ndarray, alpha: float, hint: np.ndarray | None = None
    ) -> np.ndarray:
        """(n,) int64 index of the best key of each (n, d) query (see `normalized_nn`).

        `hint` is accepted for the interface of the approximate search and ignored.
        """
        queries = np.ascontiguousarray(queries, dtype=np.float32) - self.center
        if math.isinf(alpha):
            if self._l2_keys is None:
                # [-2 K, |K|^2]: the alpha = inf search is one tiled argmin against [Q, 1].
                self._l2_keys = _augment(-2.0 * self.centered, self.norms)
            _, ids = tiled_argmin(_augment(queries, 1.0), self._l2_keys)
            return ids
        return self._normalized(queries, alpha)

    def key_minima(self, centered_queries: np.ndarray) -> np.ndarray:
        """(m,) float64 ``min_l |Q_l - K_j|^2`` for centred (n, d) queries."""
        q_norms = np.einsum("ij,ij->i", centered_queries, centered_queries, dtype=np.float64)
        values, _ = tiled_argmin(
            _augment(self.centered, 1.0), _augment(-2.0 * centered_queries, q_norms)
        )
        return np.maximum(values.astype(np.float64) + self.norms, 0.0)

    def _normalized(self, queries: np.ndarray, alpha: float) -> np.ndarray:
        weight = 1.0 / (alpha * self.dim + self.key_minima(queries))
        q_norms = np.einsum("ij,ij->i", queries, queries, dtype=np.float64)
        keys = np.empty((len(self.centered), self.dim + 2), dtype=np.float32)
        keys[:, : self.dim] = self.centered * (-2.0 * weight)[:, None]
        keys[:, self.dim] = weight
        keys[:, self.dim + 1] = weight * self.norms
        augmented = np.empty((len(queries), self.dim + 2), dtype=np.float32)
        augmented[:, : self.dim] = queries
        augmented[:, self.dim] = q_norms
        augmented[:, self.dim + 1] = 1.0
        _, ids = tiled_argmin(augmented, keys)
        return ids


def tiled_argmin(rows: np.ndarray, columns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each row vector, the column vector of least inner product.

    Parameters
    ----------
    rows : (n, e) float32, C-contiguous
    columns : (m, e) float32, C-contiguous

    Returns
    -------
    values : (n,) float32, ``min_j <rows_i, columns_j>``
    ids : (n,) int64, the first ``j`` reaching it (lowest index on ties)

    Notes
    -----
    Computed tile by tile (`QUERY_TILE` x `KEY_TILE`): one sgemm and one
    row-wise argmin per tile; the n x m matrix is never held.
    """
    n, m = len(rows), len(columns)
    values = np.empty(n, dtype=np.float32)
    ids = np.empty(n, dtype=np.int64)
    buffer = np.empty((min(n, QUERY_TILE), min(m, KEY_TILE)), dtype=np.float32)
    for start in range(0, n, QUERY_TILE):
        stop = min(n, start + QUERY_TILE)
        block = rows[start:stop]
        best = np.full(stop - start, np.inf, dtype=np.float32)
        best_id = np.zeros(stop - start, dtype=np.int64)
        lines = np.arange(stop - start)
        for key_start in range(0, m, KEY_TILE):
            key_stop = min(m, key_start + KEY_TILE)
            tile = buffer[: stop - start, : key_stop - key_start]
            np.matmul(block, columns[key_start:key_stop].T, out=tile)
            local = tile.argmin(axis=1)
            local_value = tile[lines, local]
            better = local_value < best
            best[better] = local_value[better]
            best_id[better] = local[better] + key_start
        values[start:stop] = best
        ids[start:stop] = best_id
    return values, ids


def _augment(vectors: np.ndarray, last: np.ndarray | float) -> np.ndarray:
    """(n, d + 1) float32 ``[vectors, last]``."""
    out = np.empty((vectors.shape[0], vectors.shape[1] + 1), dtype=np.float32)
    out[:, :-1] = vectors
    out[:, -1] = last
    return out


def check_alpha(alpha: float) -> None:
    if not alpha > 0:
        raise ValueError("`alpha` must be positive (or inf)")


def check_pair(queries: np.ndarray, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both as C-contiguous float32 (n, d) and (m, d); ValueError if they do not fit."""
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    keys = np.ascontiguousarray(keys, dtype=np.float32)
    if queries.ndim != 2 or keys.ndim != 2:
        raise ValueError("`queries` and `keys` must be 2-D arrays (n, d) and (m, d)")
    if queries.shape[1] != keys.shape[1]:
        raise ValueError(f"`queries` have dimension {queries.shape[1]} but `keys` {keys.shape[1]}")
    if len(queries) == 0 or len(keys) == 0:
        raise ValueError("`queries` and `keys` must not be empty")
    return queries, keys
