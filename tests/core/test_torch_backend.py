"""The PyTorch backend (run on the CPU here) against the FAISS exact search and
NumPy's patches and fold."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from gpnn.core import generate, inpaint, torch_backend  # noqa: E402
from gpnn.core.metrics import sample_metrics  # noqa: E402
from gpnn.core.patches import ValuePatches, extract_patches  # noqa: E402
from gpnn.core.search import normalized_nn  # noqa: E402
from gpnn.core.torch_backend import TorchArrays, TorchKeys  # noqa: E402

# "cuda" runs with `pytest -m gpu` where PyTorch sees a GPU, and skips, saying so, elsewhere.
DEVICES = [
    "cpu",
    pytest.param(
        "cuda",
        marks=[
            pytest.mark.gpu,
            pytest.mark.skipif(not torch.cuda.is_available(), reason="PyTorch sees no CUDA device"),
        ],
    ),
]


def brute_force(queries, keys, alpha):
    d = ((queries[:, None, :].astype(np.float64) - keys[None]) ** 2).mean(axis=2)
    return d if math.isinf(alpha) else d / (alpha + d.min(axis=0))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("alpha", [math.inf, 5e-3, 1.0])
@pytest.mark.parametrize("tile", [None, (13, 7)])
def test_torch_matches_exact(monkeypatch, device, alpha, tile):
    if tile is not None:
        monkeypatch.setattr(torch_backend, "CPU_TILE", tile)
        monkeypatch.setattr(torch_backend, "GPU_TILE", tile)
    rng = np.random.default_rng(0)
    queries = np.clip(rng.random((250, 1)) + 0.1 * rng.standard_normal((250, 27)), 0, 1)
    keys = np.clip(rng.random((180, 1)) + 0.1 * rng.standard_normal((180, 27)), 0, 1)
    queries, keys = queries.astype(np.float32), keys.astype(np.float32)
    result = TorchKeys(keys, device=device).nearest(torch.from_numpy(queries), alpha)
    assert result.dtype == torch.int64 and result.device.type == device
    got = result.cpu().numpy()
    want = normalized_nn(queries, keys, alpha)
    assert got.shape == (250,)
    # Same indices up to float32 near-ties: where they differ, the scores agree.
    scores = brute_force(queries, keys, alpha)
    rows = np.arange(len(queries))
    np.testing.assert_allclose(scores[rows, got], scores[rows, want], rtol=1e-4, atol=1e-7)
    assert (got == want).mean() > 0.99


@pytest.mark.parametrize("device", DEVICES)
def test_torch_patches_and_fold_match_numpy(device):
    """Two source images, some patches left out (as around an inpainting hole)."""
    rng = np.random.default_rng(1)
    p = 5
    sources = [rng.random((14, 17, 3), dtype=np.float32), rng.random((12, 12, 3), np.float32)]
    valid = [rng.random(10 * 13) > 0.3, rng.random(8 * 8) > 0.3]
    values = ValuePatches.of_images(sources, p, valid)
    arrays = TorchArrays(values, device=device)
    image = rng.random((15, 19, 3), dtype=np.float32)

    working = arrays.upload(image)
    assert working.device.type == device
    np.testing.assert_array_equal(arrays.extract(working).cpu().numpy(), extract_patches(image, p))

    chosen = rng.integers(0, len(values), size=11 * 15)
    folded = arrays.fold(torch.from_numpy(chosen).to(device), (15, 19))
    assert folded.device.type == device
    want = values.fold(chosen, (15, 19))
    np.testing.assert_allclose(arrays.download(folded), want, rtol=1e-5, atol=1e-6)


def test_generation_on_the_torch_backend_matches_the_cpu(scene, torch_backend_on_cpu):
    """The whole generation, every stage on the torch device (no layout levels, which
    run on the host): the same image as the CPU engine up to float32 near-ties, and
    made of the source's patches."""
    options = {"patch_size": 5, "iterations": 3, "seed": 4, "mode": "exact", "layout_levels": 0}
    on_torch = generate(scene, device=torch_backend_on_cpu, **options)[0]
    on_cpu = generate(scene, device="cpu", **options)[0]
    assert on_torch.shape == on_cpu.shape and on_torch.dtype == np.float32
    assert np.mean(np.abs(on_torch - on_cpu) < 1e-4) > 0.95
    assert sample_metrics(on_torch, scene, patch_size=5).coherence < 1e-3


def test_inpainting_on_the_torch_backend_keeps_the_known_pixels(scene, torch_backend_on_cpu):
    mask = np.zeros(scene.shape[:2], dtype=bool)
    mask[12:24, 20:34] = True
    options = {"patch_size": 5, "iterations": 3, "mode": "exact"}
    out = inpaint(scene, mask, device=torch_backend_on_cpu, **options)[0]
    np.testing.assert_array_equal(out[~mask], scene[~mask])
    on_cpu = inpaint(scene, mask, device="cpu", **options)[0]
    assert np.mean(np.abs(out - on_cpu) < 1e-4) > 0.95


@pytest.mark.parametrize("alpha", [math.inf, 5e-3])
def test_torch_candidates_match_brute_force(alpha):
    """With a hint, the best of each query's candidates; for finite alpha each key
    is also a candidate of its nearest query (as in the CPU fast search)."""
    rng = np.random.default_rng(2)
    queries = rng.random((120, 12), dtype=np.float32)
    keys = rng.random((90, 12), dtype=np.float32)
    candidates = rng.integers(0, 90, size=(120, 5))
    got = TorchKeys(keys, device="cpu").nearest(
        torch.from_numpy(queries), alpha, torch.from_numpy(candidates)
    )
    scores = brute_force(queries, keys, alpha)
    allowed = np.zeros_like(scores, dtype=bool)
    allowed[np.arange(120)[:, None], candidates] = True
    if not math.isinf(alpha):
        nearest_query = brute_force(queries, keys, math.inf).argmin(axis=0)
        allowed[nearest_query, np.arange(90)] = True
    want = np.where(allowed, scores, np.inf).argmin(axis=1)
    rows = np.arange(120)
    np.testing.assert_allclose(scores[rows, got.numpy()], scores[rows, want], rtol=1e-5)
    assert allowed[rows, got.numpy()].all()


def test_fast_generation_on_the_torch_backend(scene, torch_backend_on_cpu):
    """Fast mode with PyTorch (the layout levels on the host, the finer ones on the
    torch device): seeded, made of the source's patches, and on average over 4
    samples as coherent and complete as the exact search."""
    options = {"patch_size": 5, "seed": 3, "samples": 4, "device": torch_backend_on_cpu}
    fast = generate(scene, mode="fast", **options)
    again = generate(scene, mode="fast", **options)
    exact = generate(scene, mode="exact", **options)
    np.testing.assert_array_equal(fast[0], again[0])

    def mean_metrics(outputs):
        measured = [sample_metrics(o, scene, patch_size=5) for o in outputs]
        return np.mean([[m.coherence, m.completeness] for m in measured], axis=0)

    assert (mean_metrics(fast) <= 1.25 * mean_metrics(exact)).all()
