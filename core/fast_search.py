"""Approximate alpha-normalised patch search on CPU (``mode="fast"``).

Candidates come from the caller (the PNN loop passes the previous stage's
matches carried to this level, then each iteration's matches and their
neighbours', PatchMatch-style) or, where it has none, from an inverted-file
index (FAISS ``IndexIVFFlat``) over the keys projected on their leading
principal components. Every candidate is re-scored exactly, in full dimension,
with the alpha-normalised score of `gpnn.core.search`. The index is built once
per pyramid level, on first use, and reused by every iteration and sample.

For finite alpha the per-key minimum ``min_l |Q_l - K_j|^2`` comes from the
same kind of search the other way round (an inverted file over the queries
that shares the keys' projection and coarse quantizer), refined by every
exactly scored query-key candidate pair. A key that found its nearest query
that way is also offered to that query as a candidate, which keeps the
completeness that the normalisation is there for.

Levels with few keys are searched exactly (`EXACT_BELOW` keys): they are cheap
and their matches set the layout of everything finer.

The output depends only on the inputs: PCA is an eigen-decomposition, the
k-means of the quantizer has a fixed seed, and ties go to the lowest index.
"""

from __future__ import annotations

import logging
import math
from functools import cached_property

import faiss
import numpy as np

from gpnn.core.search import ExactKeys

logger = logging.getLogger(__name__)

# Levels with at most this many keys use the exact search.
EXACT_BELOW = 2500
# Dimensions kept by the PCA in front of the inverted file.
PCA_DIM = 24
# Keys (an even subsample) the principal components are computed from.
PCA_SAMPLE = 16384
# Inverted lists per sqrt(number of keys), probes per query and candidates per
# query (all re-scored exactly). Propagation repairs what few probes miss: 3
# probes gave the same SIGD16 metrics as 6, and 1024^2 in 58 s instead of 74 s.
LISTS_PER_SQRT = 2.0
NPROBE = 3
CANDIDATES = 4
# Probes per query when candidates are offered as a hint. The PNN loop offers
# the previous iteration's matches and the neighbours' shifted matches
# (PatchMatch's propagation), which carry what earlier searches found; on SIGD16
# they alone gave lower coherence, completeness and patch SWD than the exact
# search in half the time of one extra probe, so the inverted file is probed
# only on a level's first iteration.
NPROBE_WITH_HINT = 0
# Candidate queries per key when estimating min_l |Q_l - K_j|^2 (finite alpha).
REVERSE_CANDIDATES = 2
# A level's iterations stop once fewer than this fraction of the matches changed
# from one iteration to the next (`gpnn.core.pnn.SourceLevel.converged`).
CONVERGED_FRACTION = 0.002
# k-means of the coarse quantizer: iterations and the fixed seed.
KMEANS_ITERATIONS = 8
# Training points per inverted list (FAISS samples them, with the fixed seed).
KMEANS_POINTS_PER_LIST = 40
KMEANS_SEED = 1234


class FastKeys:
    """The keys of one pyramid level behind an approximate index (CPU).

    Parameters
    ----------
    keys : (m, d) array, converted to float32
    """

    def __init__(self, keys: np.ndarray) -> None:
        self.exact = ExactKeys(keys)
        m, d = self.exact.centered.shape
        self.approximate = m > EXACT_BELOW and d > PCA_DIM

    @cached_property
    def projection(self) -> np.ndarray:
        """(d, PCA_DIM) leading principal components of the keys, from an
        eigen-decomposition of their covariance (deterministic)."""
        centered = self.exact.centered
        sample = centered[:: max(1, len(centered) // PCA_SAMPLE)]
        covariance = (sample.T @ sample).astype(np.float64) / len(sample)
        _, vectors = np.linalg.eigh(covariance)
        return np.ascontiguousarray(vectors[:, ::-1][:, :PCA_DIM], dtype=np.float32)

    @cached_property
    def index(self) -> faiss.IndexIVFFlat:
        """The inverted file over the projected keys, built on first use: a
        generation whose candidates all come from the coarser level's matches
        never needs it."""
        m = len(self.exact.centered)
        reduced = self._reduce(self.exact.centered)
        nlist = max(8, round(LISTS_PER_SQRT * math.sqrt(m)))
        # The index keeps a reference to its quantizer (FAISS's Python layer).
        index = faiss.IndexIVFFlat(faiss.IndexFlatL2(PCA_DIM), PCA_DIM, nlist)
        index.cp.seed = KMEANS_SEED
        index.cp.niter = KMEANS_ITERATIONS
        index.cp.max_points_per_centroid = KMEANS_POINTS_PER_LIST
        index.cp.min_points_per_centroid = 8
        index.train(reduced)
        index.add(reduced)
        logger.debug("fast search: %d keys, PCA -> %d, %d lists", m, PCA_DIM, nlist)
        return index

    @property
    def dim(self) -> int:
        return self.exact.dim

    def nearest(
        self, queries: np.ndarray, alpha: float, hint: np.ndarray | None = None
    ) -> np.ndarray:
        """(n,) int64 index of the best key found for each (n, d) query.

        `hint`, optional (n,) or (n, k) int64, holds more candidates per query
        (the previous iteration's match and its neighbours', for instance); they
        are re-scored like the rest. With a hint the inverted file is probed
        `NPROBE_WITH_HINT` times (0: not at all, the hint's candidates only).
        """
        if not self.approximate:
            return self.exact.nearest(queries, alpha)
        queries = np.ascontiguousarray(queries, dtype=np.float32) - self.exact.center
        if hint is not None:
            hint = np.asarray(hint, np.int64).reshape(len(queries), -1)
        if hint is None or NPROBE_WITH_HINT > 0:
            probes = faiss.SearchParametersIVF(nprobe=NPROBE if hint is None else NPROBE_WITH_HINT)
            _, candidates = self.index.search(self._reduce(queries), CANDIDATES, params=probes)
            if hint is not None:
                candidates = np.concatenate([candidates, hint], axis=1)
        else:
            candidates = hint
        candidates = _fill_missing(candidates)
        distances = _distances_by_id(queries, self.exact.centered, candidates)
        if math.isinf(alpha):
            return _first_best(candidates, distances)
        return self._normalized(queries, alpha, candidates, distances, hint)

    def _normalized(
        self,
        queries: np.ndarray,
        alpha: float,
        candidates: np.ndarray,
        distances: np.ndarray,
        hint: np.ndarray | None,
    ) -> np.ndarray:
        keys = self.exact.centered
        # min_l |Q_l - K_j|^2 from an inverted file over the queries ...
        by_query = faiss.IndexIVFFlat(self.index.quantizer, PCA_DIM, self.index.nlist)
        by_query.add(self._reduce(queries))
        by_query.nprobe = NPROBE if hint is None else max(1, NPROBE_WITH_HINT)
        _, near_queries = by_query.search(self._reduce(keys), REVERSE_CANDIDATES)
        near_queries = _fill_missing(near_queries)
        reverse = _distances_by_id(keys, queries, near_queries)
        column = np.argmin(reverse, axis=1)
        rows = np.arange(len(keys))
        key_min = reverse[rows, column].astype(np.float64)
        nearest_query = near_queries[rows, column]
        # ... improved by every exactly scored forward pair.
        forward_min = np.full(len(keys), np.inf)
        np.minimum.at(forward_min, candidates.ravel(), distances.ravel())
        key_min = np.minimum(key_min, forward_min)
        weight = 1.0 / (alpha * self.dim + key_min)
        scores = distances * weight[candidates]
        # Each key is also a candidate of the query it is nearest to.
        all_queries = np.concatenate(
            [np.repeat(np.arange(len(queries)), candidates.shape[1]), nearest_query]
        )
        all_keys = np.concatenate([candidates.ravel(), rows])
        all_scores = np.concatenate([scores.ravel(), reverse[rows, column] * weight])
        order = np.lexsort((all_keys, all_scores, all_queries))
        first = np.ones(len(order), dtype=bool)
        first[1:] = all_queries[order][1:] != all_queries[order][:-1]
        chosen = np.empty(len(queries), dtype=np.int64)
        chosen[all_queries[order][first]] = all_keys[order][first]
        return chosen

    def _reduce(self, centered: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(centered @ self.projection)


def _fill_missing(candidates: np.ndarray) -> np.ndarray:
    """Replace the -1 of short result lists by the row's first candidate (or key 0)."""
    if (candidates >= 0).all():
        return np.ascontiguousarray(candidates)
    first = np.where(candidates[:, :1] >= 0, candidates[:, :1], 0)
    return np.ascontiguousarray(np.where(candidates >= 0, candidates, first))


def _distances_by_id(x: np.ndarray, y: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """(n, k) float32 ``|x_i - y_{ids[i, c]}|^2``, exact, without gathering rows of y."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    ids = np.ascontiguousarray(ids, dtype=np.int64)
    out = np.empty(ids.shape, dtype=np.float32)
    faiss.fvec_L2sqr_by_idx(
        faiss.swig_ptr(out),
        faiss.swig_ptr(x),
        faiss.swig_ptr(y),
        faiss.swig_ptr(ids),
        x.shape[1],
        ids.shape[0],
        ids.shape[1],
    )
    return out


def _first_best(candidates: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Per row, the candidate of least score; ties to the lowest key index."""
    best = scores.min(axis=1, keepdims=True)
    tied = np.where(scores == best, candidates, np.iinfo(np.int64).max)
    return tied.min(axis=1)
