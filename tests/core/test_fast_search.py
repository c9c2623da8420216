"""Fast mode through the applications: deterministic, and every task still runs."""

from __future__ import annotations

import numpy as np
import pytest

from gpnn.core import fast_search
from gpnn.core.tasks import collage, generate, inpaint, retarget


@pytest.fixture
def image() -> np.ndarray:
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:48, 0:64] / 8.0
    base = 0.5 + 0.25 * np.sin(x)[..., None] * np.cos(y)[..., None] * np.array([1.0, 0.6, 0.3])
    return np.clip(base + 0.05 * rng.standard_normal((48, 64, 3)), 0, 1).astype(np.float32)


@pytest.fixture(autouse=True)
def approximate_everywhere(monkeypatch):
    monkeypatch.setattr(fast_search, "EXACT_BELOW", 200)
    monkeypatch.setattr(fast_search, "PCA_DIM", 16)


# layout_levels=0: at these depths the layout levels (an exact search) would be most of
# the pyramid, and these tests are about the approximate search.


def test_generate_fast_is_byte_identical(image):
    first = generate(image, mode="fast", samples=2, seed=3, depth=3, layout_levels=0)
    second = generate(image, mode="fast", samples=2, seed=3, depth=3, layout_levels=0)
    for a, b in zip(first, second, strict=True):
        assert a.tobytes() == b.tobytes()
    assert not np.array_equal(first[0], first[1])


def test_fast_output_is_made_of_source_values(image):
    out = generate(image, mode="fast", seed=1, depth=2, iterations=2, layout_levels=0)[0]
    assert out.shape == image.shape
    assert out.min() >= 0.0 and out.max() <= 1.0


@pytest.mark.parametrize("task", ["retarget", "collage"])
def test_normalised_tasks_run_in_fast_mode(image, task):
    if task == "retarget":
        out = retarget(image, mode="fast", height=48, width=80, depth=2, iterations=2)[0]
        assert out.shape == (48, 80, 3)
    else:
        out = collage([image, image[:, ::-1]], mode="fast", depth=2, iterations=2)[0]
        assert out.shape[0] == 48
    assert np.isfinite(out).all()


def test_inpainting_runs_in_fast_mode(image):
    """Levels with patches left out around the hole keep the inverted file's probe."""
    mask = np.zeros(image.shape[:2], dtype=bool)
    mask[16:30, 20:40] = True
    out = inpaint(image, mask, mode="fast", depth=2, iterations=2)[0]
    np.testing.assert_array_equal(out[~mask], image[~mask])
    assert np.isfinite(out).all()
