"""Patch nearest-neighbour search with GPNN's alpha-normalised score.

For queries Q (n x d) and keys K (m x d) with per-patch MSE
``D_ij = |Q_i - K_j|^2 / d`` the score is ``S_ij = D_ij / (alpha + min_l D_lj)``
and each query takes ``argmin_j S_ij``.

Both halves are exact FAISS searches, so the full n x m matrix is never held:

1. ``min_l D_lj`` is a nearest-neighbour search of the keys in an index of the
   queries.
2. With ``w_j = 1 / (alpha d + min_l |Q_l - K_j|^2)``,
   ``-w_j |Q_i - K_j|^2 = <[Q_i, |Q_i|^2, 1], [2 w_j K_j, -w_j, -w_j |K_j|^2]>``,
   so the re-scored argmin is an exact maximum-inner-product search over
   augmented vectors.

alpha = inf leaves a plain L2 search.
"""

from __future__ import annotations

import math

import faiss
import numpy as np


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
    queries, keys = _check_pair(queries, keys)
    if not alpha > 0:
        raise ValueError("`alpha` must be positive (or inf)")
    return ExactKeys(keys).nearest(queries, alpha)


class ExactKeys:
    """The keys of one pyramid level, ready to be searched many times.

    Centring on the keys' mean keeps the norms small, which keeps the float32
    expansion ``|q|^2 + |k|^2 - 2 q.k`` accurate.
    """

    def __init__(self, keys: np.ndarray) -> None:
        self.keys = np.ascontiguousarray(keys, dtype=np.float32)
        self.center = self.keys.mean(axis=0, dtype=np.float64).astype(np.float32)
        self.centered = self.keys - self.center
        self._l2 = faiss.IndexFlatL2(self.dim)
        self._l2.add(self.centered)

    @property
    def dim(self) -> int:
        return self.keys.shape[1]

    def nearest(self, queries: np.ndarray, alpha: float) -> np.ndarray:
        queries = np.ascontiguousarray(queries, dtype=np.float32) - self.center
        if math.isinf(alpha):
            _, ids = self._l2.search(queries, 1)
            return ids[:, 0].astype(np.int64)
        return _normalized_search(queries, self.centered, alpha)


def _normalized_search(queries: np.ndarray, keys: np.ndarray, alpha: float) -> np.ndarray:
    dim = keys.shape[1]
    by_query = faiss.IndexFlatL2(dim)
    by_query.add(queries)
    key_min, _ = by_query.search(keys, 1)
    weight = 1.0 / (alpha * dim + np.maximum(key_min[:, 0].astype(np.float64), 0.0))

    key_norm = np.einsum("ij,ij->i", keys, keys, dtype=np.float64)
    augmented_keys = np.empty((keys.shape[0], dim + 2), dtype=np.float32)
    augmented_keys[:, :dim] = keys * (2.0 * weight)[:, None]
    augmented_keys[:, dim] = -weight
    augmented_keys[:, dim + 1] = -weight * key_norm

    augmented_queries = np.empty((queries.shape[0], dim + 2), dtype=np.float32)
    augmented_queries[:, :dim] = queries
    augmented_queries[:, dim] = np.einsum("ij,ij->i", queries, queries, dtype=np.float64)
    augmented_queries[:, dim + 1] = 1.0

    inner = faiss.IndexFlatIP(dim + 2)
    inner.add(augmented_keys)
    _, ids = inner.search(augmented_queries, 1)
    return ids[:, 0].astype(np.int64)


def _check_pair(queries: np.ndarray, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    keys = np.ascontiguousarray(keys, dtype=np.float32)
    if queries.ndim != 2 or keys.ndim != 2:
        raise ValueError("`queries` and `keys` must be 2-D arrays (n, d) and (m, d)")
    if queries.shape[1] != keys.shape[1]:
        raise ValueError(f"`queries` have dimension {queries.shape[1]} but `keys` {keys.shape[1]}")
    if len(queries) == 0 or len(keys) == 0:
        raise ValueError("`queries` and `keys` must not be empty")
    return queries, keys
