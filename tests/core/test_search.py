"""Nearest-patch search backends against brute force."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gpnn.core import fast_search, search, threads
from gpnn.core.fast_search import FastKeys
from gpnn.core.patches import ValuePatches
from gpnn.core.pnn import SourceLevel
from gpnn.core.search import ExactKeys, normalized_nn

# The value side of a level of 400 patches (the search tests never fold).
VALUES_400 = ValuePatches.of_images([np.zeros((24, 26, 3), np.float32)], 5)
ALPHAS = [math.inf, 1e-3, 5e-3, 1.0]


def brute_force(queries: np.ndarray, keys: np.ndarray, alpha: float) -> np.ndarray:
    """(n, m) float64 alpha-normalised scores."""
    d = ((queries[:, None, :].astype(np.float64) - keys[None]) ** 2).mean(axis=2)
    if math.isinf(alpha):
        return d
    return d / (alpha + d.min(axis=0))


def patch_like(rng: np.random.Generator, n: int, d: int = 27) -> np.ndarray:
    """Smooth, correlated vectors in [0, 1] (like image patches), float32."""
    base = rng.random((n, 1), dtype=np.float32)
    return np.clip(base + 0.1 * rng.standard_normal((n, d), dtype=np.float32), 0, 1)


def assert_same_up_to_ties(queries, keys, alpha, got, rtol=1e-4):
    scores = brute_force(queries, keys, alpha)
    rows = np.arange(len(queries))
    best = scores.min(axis=1)
    np.testing.assert_allclose(scores[rows, got], best, rtol=rtol, atol=1e-7)
    assert (got == scores.argmin(axis=1)).mean() > 0.99


@pytest.mark.parametrize("alpha", ALPHAS)
@pytest.mark.parametrize(("n", "m", "d"), [(300, 220, 27), (1000, 1500, 147), (40, 3000, 12)])
def test_exact_matches_brute_force(alpha, n, m, d):
    """Indices equal the float64 brute force's, except at float32 near-ties: the
    chosen key's float64 score is within a relative 1e-4 of the best one."""
    rng = np.random.default_rng(1)
    queries, keys = patch_like(rng, n, d), patch_like(rng, m, d)
    got = normalized_nn(queries, keys, alpha)
    assert got.dtype == np.int64 and got.shape == (n,)
    assert_same_up_to_ties(queries, keys, alpha, got)


@pytest.mark.parametrize("alpha", ALPHAS)
def test_exact_split_over_threads_matches_brute_force(monkeypatch, alpha):
    """A search split by rows over threads (both of its halves) gives the brute
    force's indices, like one FAISS call."""
    monkeypatch.setattr(search, "ROWS_PER_THREAD", 100)
    monkeypatch.setattr(threads, "thread_count", lambda: 3)
    calls = []
    original = threads._pool
    monkeypatch.setattr(threads, "_pool", lambda count: calls.append(count) or original(count))
    rng = np.random.default_rng(5)
    queries, keys = patch_like(rng, 1200), patch_like(rng, 400)
    got = normalized_nn(queries, keys, alpha)
    assert calls and set(calls) == {3}
    assert_same_up_to_ties(queries, keys, alpha, got)


def test_exact_key_minima():
    rng = np.random.default_rng(2)
    queries, keys = patch_like(rng, 100), patch_like(rng, 70)
    index = ExactKeys(keys)
    got = index.key_minima(queries - index.center)
    want = ((queries[:, None, :].astype(np.float64) - keys[None]) ** 2).sum(axis=2).min(axis=0)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_ties_go_to_lowest_index():
    keys = np.repeat(np.eye(3, dtype=np.float32), 2, axis=0)  # each key twice
    queries = np.eye(3, dtype=np.float32)
    assert normalized_nn(queries, keys, math.inf).tolist() == [0, 2, 4]


@pytest.mark.parametrize(
    ("queries", "keys", "alpha", "message"),
    [
        (np.zeros((2, 3)), np.zeros((2, 4)), 1.0, "dimension"),
        (np.zeros(3), np.zeros((2, 3)), 1.0, "2-D"),
        (np.zeros((0, 3)), np.zeros((2, 3)), 1.0, "empty"),
        (np.zeros((2, 3)), np.zeros((2, 3)), 0.0, "alpha"),
    ],
)
def test_validation(queries, keys, alpha, message):
    with pytest.raises(ValueError, match=message):
        normalized_nn(queries, keys, alpha)


@pytest.fixture
def small_fast(monkeypatch):
    """Make the approximate path engage on test-sized levels."""
    monkeypatch.setattr(fast_search, "EXACT_BELOW", 100)
    monkeypatch.setattr(fast_search, "PCA_DIM", 8)


@pytest.mark.parametrize("alpha", ALPHAS)
def test_fast_is_close_to_exact(small_fast, alpha):
    rng = np.random.default_rng(3)
    keys = patch_like(rng, 2000)
    queries = np.clip(
        keys[rng.permutation(2000)[:800]] + 0.01 * rng.standard_normal((800, 27)), 0, 1
    )
    queries = queries.astype(np.float32)
    fast = FastKeys(keys)
    assert fast.approximate
    got = fast.nearest(queries, alpha)
    scores = brute_force(queries, keys, alpha)
    rows = np.arange(len(queries))
    # Most matches are the exact ones; the others are close in score.
    assert (got == scores.argmin(axis=1)).mean() > 0.8
    assert scores[rows, got].mean() < 1.1 * scores.min(axis=1).mean()


def test_fast_with_exact_hint_is_exact(small_fast):
    rng = np.random.default_rng(4)
    keys, queries = patch_like(rng, 1500), patch_like(rng, 600)
    exact = ExactKeys(keys).nearest(queries, math.inf)
    got = FastKeys(keys).nearest(queries, math.inf, hint=exact)
    assert_same_up_to_ties(queries, keys, math.inf, got)


@pytest.mark.parametrize("alpha", ALPHAS)
def test_fast_is_deterministic(small_fast, alpha):
    rng = np.random.default_rng(5)
    keys, queries = patch_like(rng, 1500), patch_like(rng, 600)
    first = FastKeys(keys).nearest(queries, alpha)
    second = FastKeys(keys).nearest(queries, alpha)
    np.testing.assert_array_equal(first, second)


def test_fast_small_levels_are_exact():
    rng = np.random.default_rng(6)
    keys, queries = patch_like(rng, 300), patch_like(rng, 200)
    fast = FastKeys(keys)
    assert not fast.approximate
    np.testing.assert_array_equal(fast.nearest(queries, 5e-3), normalized_nn(queries, keys, 5e-3))


@pytest.mark.parametrize("mode", ["exact", "fast"])
def test_source_level_modes(small_fast, mode):
    rng = np.random.default_rng(7)
    keys = patch_like(rng, 400)
    level = SourceLevel(keys, VALUES_400, mode=mode)
    got = level.nearest(keys, math.inf)
    np.testing.assert_array_equal(got, np.arange(400))


def test_source_level_rejects_unknown_mode():
    with pytest.raises(ValueError, match="`mode`"):
        SourceLevel(np.zeros((400, 3)), VALUES_400, mode="fastest")


@pytest.mark.parametrize("alpha", ALPHAS)
@pytest.mark.parametrize("min_shift", [1, 2, 3])
def test_displaced_nn_is_the_best_key_far_enough_from_the_query(alpha, min_shift):
    rng = np.random.default_rng(min_shift)
    rows, cols, d = 9, 11, 12
    keys = rng.random((rows * cols, d), dtype=np.float32)
    queries = keys + rng.normal(0, 0.3, keys.shape).astype(np.float32)
    positions = np.stack(np.divmod(np.arange(rows * cols), cols), axis=1)
    chosen = search.displaced_nn(queries, keys, alpha, positions, positions, min_shift)
    scores = brute_force(queries, keys, alpha)
    offsets = np.abs(positions[:, None, :] - positions[None, :, :]).max(axis=2)
    scores[offsets < min_shift] = np.inf
    best = scores.min(axis=1)
    picked = scores[np.arange(len(queries)), chosen]
    assert np.all(np.isfinite(picked)), "a key closer than min_shift was taken"
    np.testing.assert_allclose(picked, best, rtol=1e-4)


def test_displaced_nn_with_no_shift_is_the_plain_search():
    rng = np.random.default_rng(5)
    keys = rng.random((60, 8), dtype=np.float32)
    queries = rng.random((60, 8), dtype=np.float32)
    positions = np.stack(np.divmod(np.arange(60), 10), axis=1)
    np.testing.assert_array_equal(
        search.displaced_nn(queries, keys, math.inf, positions, positions, 0),
        normalized_nn(queries, keys, math.inf),
    )


@pytest.mark.parametrize("alpha", [math.inf, 1e-3])
@pytest.mark.parametrize("device", ["cpu", "auto"])
def test_a_displaced_level_keeps_each_match_from_its_own_place(alpha, device):
    """A generation's layout level (`min_shift`), asked for the fast search: keys
    other than its values, some positions left out, and still the exact best key at
    least 2 pixels from each query's place (brute force over the kept keys)."""
    rng = np.random.default_rng(7)
    image = rng.random((14, 16, 3), dtype=np.float32)
    rows, cols = 14 - 4, 16 - 4
    positions = np.stack(np.divmod(np.arange(rows * cols), cols), axis=1)
    kept = rng.random(rows * cols) > 0.2
    keys = patch_like(rng, rows * cols, 75)[kept]
    values = ValuePatches.of_images([image], 5, [kept])
    level = SourceLevel(keys, values, mode="fast", device=device, min_shift=2)
    queries = keys[rng.integers(0, len(keys), rows * cols)] + rng.normal(
        0, 0.05, (rows * cols, 75)
    ).astype(np.float32)
    chosen = level.nearest(queries, alpha)
    scores = brute_force(queries, keys, alpha)
    offsets = np.abs(positions[:, None, :] - positions[kept][None, :, :]).max(axis=2)
    scores[offsets < 2] = np.inf
    picked = scores[np.arange(len(queries)), chosen]
    assert np.all(np.isfinite(picked)), "a key closer than 2 pixels was taken"
    np.testing.assert_allclose(picked, scores.min(axis=1), rtol=1e-4)
    with pytest.raises(ValueError, match="patch positions"):
        level.nearest(queries[:-1], alpha)


def test_a_displaced_level_has_one_source_image():
    two = ValuePatches.of_images([np.zeros((9, 9, 3), np.float32)] * 2, 5)
    with pytest.raises(ValueError, match="one source image"):
        SourceLevel(np.zeros((50, 75), np.float32), two, min_shift=2)
