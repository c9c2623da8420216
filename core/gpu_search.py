"""Exact alpha-normalised patch search with FAISS's GPU build.

Only `gpnn.core.device` imports this module, and only after
``faiss.get_num_gpus() > 0``: calling a GPU function of FAISS on a machine
without a GPU aborts the process.

The keys of a level live in a `GpuIndexFlatL2` built once per level; FAISS
tiles the products on the device (never the full matrix). For finite alpha the
per-key minimum over the queries and the re-scored maximum-inner-product
search are two more brute-force GPU searches (`faiss.knn_gpu`), as in
`gpnn.core.search`.
"""

from __future__ import annotations

import math

import faiss
import numpy as np

from gpnn.core.search import ExactKeys, augment_queries

_RESOURCES: dict[int, faiss.StandardGpuResources] = {}


def gpu_resources(gpu: int = 0) -> faiss.StandardGpuResources:
    """One `StandardGpuResources` per GPU for the process (its memory pool is reused)."""
    if gpu not in _RESOURCES:
        _RESOURCES[gpu] = faiss.StandardGpuResources()
    return _RESOURCES[gpu]


class FaissGpuKeys(ExactKeys):
    """The keys of one pyramid level on a GPU, searched exactly.

    Parameters
    ----------
    keys : (m, d) array, converted to float32
    gpu : device number
    resources : FAISS GPU resources; None uses `gpu_resources(gpu)`
    """

    def __init__(
        self,
        keys: np.ndarray,
        *,
        gpu: int = 0,
        resources: faiss.StandardGpuResources | None = None,
    ) -> None:
        super().__init__(keys)  # the centred keys and their norms, as on the CPU
        self.gpu = gpu
        self.resources = resources if resources is not None else gpu_resources(gpu)
        config = faiss.GpuIndexFlatConfig()
        config.device = gpu
        self._l2 = faiss.GpuIndexFlatL2(self.resources, self.dim, config)
        self._l2.add(self.centered)

    def nearest(
        self, queries: np.ndarray, alpha: float, hint: np.ndarray | None = None
    ) -> np.ndarray:
        """(n,) int64 index of the best key of each (n, d) query; `hint` is ignored."""
        queries = np.ascontiguousarray(queries, dtype=np.float32) - self.center
        if math.isinf(alpha):
            _, ids = self._l2.search(queries, 1)
            return ids[:, 0].astype(np.int64)
        key_min, _ = faiss.knn_gpu(self.resources, self.centered, queries, 1, device=self.gpu)
        key_min = np.maximum(key_min[:, 0].astype(np.float64), 0.0)
        augmented_keys = self.weighted_keys(key_min, alpha)
        augmented = augment_queries(queries)
        _, ids = faiss.knn_gpu(
            self.resources,
            augmented,
            augmented_keys,
            1,
            metric=faiss.METRIC_INNER_PRODUCT,
            device=self.gpu,
        )
        return ids[:, 0].astype(np.int64)
