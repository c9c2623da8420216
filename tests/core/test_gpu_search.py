"""GPU backends; they run only where FAISS or PyTorch sees a GPU."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gpnn.core.search import normalized_nn

pytestmark = pytest.mark.gpu  # run with `pytest -m gpu` on a machine with a GPU


@pytest.mark.parametrize("alpha", [math.inf, 5e-3])
def test_faiss_gpu_matches_cpu(alpha):
    from gpnn.core.gpu_search import FaissGpuKeys

    rng = np.random.default_rng(0)
    queries = rng.random((3000, 147), dtype=np.float32)
    keys = rng.random((2000, 147), dtype=np.float32)
    got = FaissGpuKeys(keys).nearest(queries, alpha)
    want = normalized_nn(queries, keys, alpha)
    assert (got == want).mean() > 0.999
