"""Patch nearest-neighbour search with GPNN's alpha-normalised score (CPU, exact).

For queries Q (n x d) and keys K (m x d) with per-patch MSE
``D_ij = |Q_i - K_j|^2 / d`` the score is ``S_ij = D_ij / (alpha + min_l D_lj)``
and each query takes ``argmin_j S_ij``.

Both halves are exact FAISS searches, which run block by block inside FAISS
(one BLAS sgemm per block), so the n x m matrix is never held:

1. ``min_l |Q_l - K_j|^2`` is the nearest-neighbour search of the keys in a flat
   L2 index of the queries.
2. With ``w_j = 1 / (alpha d + min_l |Q_l - K_j|^2)``,
   ``-w_j |Q_i - K_j|^2 = <[Q_i, |Q_i|^2, 1], [2 w_j K_j, -w_j, -w_j |K_j|^2]>``,
   so the re-scored argmin is an exact maximum-inner-product search over
   vectors augmented by two coordinates (`faiss.IndexFlatIP`).

alpha = inf leaves one flat L2 search, over an index built once per level.

A large search is split by rows over the engine's threads (`gpnn.core.threads`),
each running FAISS on one core (`flat_search`). FAISS's own OpenMP split leaves the
cores waiting on each other between the sgemm of a block and its argmin; on two
cores the split search ran at 0.82-0.88 of the sgemm rate, steadily, where
FAISS's own split varied between 0.55 and 0.80 from run to run.
"""

from __future__ import annotations

import math

import faiss
import numpy as np

from gpnn.core.threads import map_in_threads, row_bands

# Rows of the smallest piece a search is split into (below it, FAISS's own
# threads do the whole search).
ROWS_PER_THREAD = 2048


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
        self.centered = np.ascontiguousarray(keys - self.center)
        self.norms = np.einsum("ij,ij->i", self.centered, self.centered, dtype=np.float64)
        self._l2: faiss.IndexFlatL2 | None = None

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
            _, ids = flat_search(self._flat_l2(), queries)
            return ids[:, 0].astype(np.int64)
        return self._normalized(queries, alpha)

    def _flat_l2(self) -> faiss.IndexFlatL2:
        """The keys' flat L2 index, built on first use and kept for every search."""
        if self._l2 is None:
            self._l2 = faiss.IndexFlatL2(self.dim)
            self._l2.add(self.centered)
        return self._l2

    def key_minima(self, centered_queries: np.ndarray) -> np.ndarray:
        """(m,) float64 ``min_l |Q_l - K_j|^2`` for centred (n, d) queries."""
        by_query = faiss.IndexFlatL2(self.dim)
        by_query.add(np.ascontiguousarray(centered_queries, dtype=np.float32))
        minima, _ = flat_search(by_query, self.centered)
        return np.maximum(minima[:, 0].astype(np.float64), 0.0)

    def weighted_keys(self, key_minima: np.ndarray, alpha: float) -> np.ndarray:
        """(m, d + 2) float32 ``[2 w K, -w, -w |K|^2]`` with ``w = 1 / (alpha d + key_minima)``,
        the key side of the normalised search (see the module notes)."""
        weight = 1.0 / (alpha * self.dim + key_minima)
        keys = np.empty((len(self.centered), self.dim + 2), dtype=np.float32)
        keys[:, : self.dim] = self.centered * (2.0 * weight)[:, None]
        keys[:, self.dim] = -weight
        keys[:, self.dim + 1] = -weight * self.norms
        return keys

    def _normalized(self, queries: np.ndarray, alpha: float) -> np.ndarray:
        inner = faiss.IndexFlatIP(self.dim + 2)
        inner.add(self.weighted_keys(self.key_minima(queries), alpha))
        _, ids = flat_search(inner, augment_queries(queries))
        return ids[:, 0].astype(np.int64)

    def ranked(self, queries: np.ndarray, alpha: float, k: int) -> np.ndarray:
        """(n, k) int64: the `k` best keys of each query, best first, by the same
        score as `nearest` (one FAISS call; meant for the small coarsest level)."""
        queries = np.ascontiguousarray(queries, dtype=np.float32) - self.center
        k = min(k, len(self.centered))
        if math.isinf(alpha):
            _, ids = self._flat_l2().search(queries, k)
        else:
            index = faiss.IndexFlatIP(self.dim + 2)
            index.add(self.weighted_keys(self.key_minima(queries), alpha))
            _, ids = index.search(augment_queries(queries), k)
        return ids.astype(np.int64)

    def displaced(
        self,
        queries: np.ndarray,
        alpha: float,
        query_positions: np.ndarray,
        key_positions: np.ndarray,
        min_shift: int,
    ) -> np.ndarray:
        """`displaced_nn` against these keys (built once, searched many times)."""
        if min_shift <= 0:
            return self.nearest(queries, alpha)
        ranked = self.ranked(queries, alpha, (2 * min_shift - 1) ** 2 + 1)
        offsets = np.abs(key_positions[ranked] - query_positions[:, None, :]).max(axis=2)
        displaced = offsets >= min_shift
        first = np.where(displaced.any(axis=1), displaced.argmax(axis=1), 0)
        return ranked[np.arange(len(ranked)), first]


class DisplacedKeys:
    """Exact keys searched by `displaced_nn`, for queries that tile an output the
    size of the keys' image: no query takes a key closer than `min_shift` pixels to
    its own place.

    Parameters
    ----------
    keys : (m, d) array
    key_positions : (m, 2) int, (row, column) of each key's patch in its image
    grid : (rows, columns) of patch positions of that image, which the queries tile
    min_shift : int >= 0
    """

    def __init__(
        self, keys: np.ndarray, key_positions: np.ndarray, grid: tuple[int, int], min_shift: int
    ) -> None:
        self.exact, self.key_positions, self.min_shift = ExactKeys(keys), key_positions, min_shift
        rows, cols = grid
        self.query_positions = np.stack(np.divmod(np.arange(rows * cols), cols), axis=1)

    def nearest(
        self, queries: np.ndarray, alpha: float, hint: np.ndarray | None = None
    ) -> np.ndarray:
        """(n,) int64 best displaced key of each query; `hint` is ignored."""
        if len(queries) != len(self.query_positions):
            raise ValueError(
                f"a displaced search needs queries over its source's {len(self.query_positions)} "
                f"patch positions, got {len(queries)}"
            )
        return self.exact.displaced(
            queries, alpha, self.query_positions, self.key_positions, self.min_shift
        )


def displaced_nn(
    queries: np.ndarray,
    keys: np.ndarray,
    alpha: float,
    query_positions: np.ndarray,
    key_positions: np.ndarray,
    min_shift: int,
) -> np.ndarray:
    """Index of the best key of each query among the keys at least `min_shift`
    pixels away from the query's own position (Chebyshev distance: a key counts
    as displaced when ``max(|dy|, |dx|) >= min_shift``).

    Parameters
    ----------
    queries, keys : (n, d) and (m, d) arrays
    alpha : the score's alpha (see `normalized_nn`)
    query_positions, key_positions : (n, 2) and (m, 2) int, (row, column) of each patch
    min_shift : int >= 0; 0 is `normalized_nn`

    Returns
    -------
    (n,) int64. At most ``(2 min_shift - 1)^2`` keys lie closer than `min_shift`
    to a query, so the best displaced key is among that many plus one best
    keys: the answer is exact. A query with no displaced key at all (an image
    barely larger than a patch) takes its best key.
    """
    queries, keys = check_pair(queries, keys)
    check_alpha(alpha)
    return ExactKeys(keys).displaced(queries, alpha, query_positions, key_positions, min_shift)


def flat_search(index: faiss.Index, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``index.search(rows, 1)``, split by rows over the engine's threads.

    Each thread runs FAISS single-threaded on its band (see the module notes);
    the result is the same as one call's.
    """
    bands = row_bands(len(rows), ROWS_PER_THREAD)
    results = map_in_threads(lambda band: index.search(rows[band[0] : band[1]], 1), bands)
    return (
        np.concatenate([distances for distances, _ in results]),
        np.concatenate([ids for _, ids in results]),
    )


def augment_queries(queries: np.ndarray) -> np.ndarray:
    """(n, d + 2) float32 ``[Q, |Q|^2, 1]``, the query side of the normalised search."""
    dim = queries.shape[1]
    augmented = np.empty((len(queries), dim + 2), dtype=np.float32)
    augmented[:, :dim] = queries
    augmented[:, dim] = np.einsum("ij,ij->i", queries, queries, dtype=np.float64)
    augmented[:, dim + 1] = 1.0
    return augmented


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
