"""The PyTorch backend (run on the CPU here) against the FAISS-free exact search."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from gpnn.core import torch_search  # noqa: E402
from gpnn.core.search import normalized_nn  # noqa: E402
from gpnn.core.torch_search import TorchKeys  # noqa: E402

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def brute_force(queries, keys, alpha):
    d = ((queries[:, None, :].astype(np.float64) - keys[None]) ** 2).mean(axis=2)
    return d if math.isinf(alpha) else d / (alpha + d.min(axis=0))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("alpha", [math.inf, 5e-3, 1.0])
@pytest.mark.parametrize("tile", [None, (13, 7)])
def test_torch_matches_exact(monkeypatch, device, alpha, tile):
    if tile is not None:
        monkeypatch.setattr(torch_search, "CPU_TILE", tile)
        monkeypatch.setattr(torch_search, "GPU_TILE", tile)
    rng = np.random.default_rng(0)
    queries = np.clip(rng.random((250, 1)) + 0.1 * rng.standard_normal((250, 27)), 0, 1)
    keys = np.clip(rng.random((180, 1)) + 0.1 * rng.standard_normal((180, 27)), 0, 1)
    queries, keys = queries.astype(np.float32), keys.astype(np.float32)
    got = TorchKeys(keys, device=device).nearest(queries, alpha)
    want = normalized_nn(queries, keys, alpha)
    assert got.dtype == np.int64 and got.shape == (250,)
    # Same indices up to float32 near-ties: where they differ, the scores agree.
    scores = brute_force(queries, keys, alpha)
    rows = np.arange(len(queries))
    np.testing.assert_allclose(scores[rows, got], scores[rows, want], rtol=1e-4, atol=1e-7)
    assert (got == want).mean() > 0.99
