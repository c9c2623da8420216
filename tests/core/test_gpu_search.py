"""GPU backends; they run only where FAISS or PyTorch sees a GPU."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gpnn.core import device
from gpnn.core.search import normalized_nn

# Run with `pytest -m gpu` on a machine with a GPU; elsewhere they skip with the reason.
NO_FAISS_GPU = "FAISS sees no GPU (CPU-only build installed, or no GPU or driver)"
NO_GPU = "no GPU backend: FAISS sees no GPU and PyTorch sees no CUDA device"
pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(device.faiss_gpus() == 0 and device.torch_gpus() == 0, reason=NO_GPU),
]


@pytest.mark.parametrize("alpha", [math.inf, 5e-3])
@pytest.mark.skipif(device.faiss_gpus() == 0, reason=NO_FAISS_GPU)
def test_faiss_gpu_matches_cpu(alpha):
    from gpnn.core.gpu_search import FaissGpuKeys

    rng = np.random.default_rng(0)
    queries = rng.random((3000, 147), dtype=np.float32)
    keys = rng.random((2000, 147), dtype=np.float32)
    got = FaissGpuKeys(keys).nearest(queries, alpha)
    want = normalized_nn(queries, keys, alpha)
    assert (got == want).mean() > 0.999


@pytest.mark.parametrize("mode", ["exact", "fast"])
def test_generation_on_the_gpu_matches_the_cpu(scene, mode):
    """The whole generation on the GPU (faiss-gpu or PyTorch; the small layout levels
    on the host): the CPU engine's output up to float32 near-ties in exact mode, as
    good in fast mode."""
    from gpnn.core import generate
    from gpnn.core.metrics import sample_metrics

    on_gpu = generate(scene, device="cuda", mode=mode, seed=2, samples=4)
    on_cpu = generate(scene, device="cpu", mode="exact", seed=2, samples=4)
    if mode == "exact":
        assert np.mean(np.abs(on_gpu[0] - on_cpu[0]) < 1e-4) > 0.95
    gpu_coherence = np.mean([sample_metrics(o, scene).coherence for o in on_gpu])
    cpu_coherence = np.mean([sample_metrics(o, scene).coherence for o in on_cpu])
    assert gpu_coherence <= 1.25 * cpu_coherence + 1e-6
