"""Value patches kept as pixels plus positions."""

import numpy as np

from gpnn.core import patches, threads
from gpnn.core.patches import ValuePatches, extract_patches, fold_weights


def test_shifted_moves_within_the_source_image():
    image = np.random.default_rng(0).random((6, 7, 3), dtype=np.float32)
    values = ValuePatches.of_images([image, image], 3)  # two sources, 4 x 5 patches each
    rows, cols = 4, 5
    second = rows * cols  # index of the first patch of the second source
    assert values.shifted(np.array([0]), 0, 1).tolist() == [1]
    assert values.shifted(np.array([0]), 1, 0).tolist() == [cols]
    assert values.shifted(np.array([second + 6]), -1, -1).tolist() == [second]
    # No patch starts two rows below the last row: the patch stays itself.
    assert values.shifted(np.array([rows * cols - 1]), 2, 0).tolist() == [rows * cols - 1]


def test_neighbour_candidates_continue_a_coherent_copy():
    image = np.random.default_rng(1).random((9, 10, 3), dtype=np.float32)
    values = ValuePatches.of_images([image], 3)
    grid = (7, 8)
    identity = np.arange(56)
    candidates = values.neighbour_candidates(identity, grid)
    assert candidates.shape == (56, 5)
    # An output that copies the source whole: every neighbour proposes the same patch.
    assert (candidates == identity[:, None]).all()
    # A position whose own match is wrong gets the right one from its neighbours.
    broken = identity.copy()
    broken[20] = 0
    assert 20 in values.neighbour_candidates(broken, grid)[20]


def test_fold_of_all_patches_gives_back_the_image():
    image = np.random.default_rng(2).random((8, 9, 3), dtype=np.float32)
    values = ValuePatches.of_images([image], 3)
    np.testing.assert_allclose(values.fold(np.arange(len(values)), (8, 9)), image, atol=1e-6)
    assert len(values) == len(extract_patches(image, 3))


def brute_force_fold(patches: np.ndarray, shape, p: int) -> np.ndarray:
    """Gaussian-weighted mean of (n, p, p, 3) patches over an (H, W) image, pixel by pixel."""
    weights = fold_weights(p)
    rows, cols = shape[0] - p + 1, shape[1] - p + 1
    total = np.zeros((*shape, 3))
    cover = np.zeros(shape)
    for i, patch in enumerate(patches):
        y, x = divmod(i, cols)
        total[y : y + p, x : x + p] += weights[:, :, None] * patch
        cover[y : y + p, x : x + p] += weights
    assert i == rows * cols - 1
    return total / cover[:, :, None]


def test_extract_and_fold_in_bands_match_brute_force(monkeypatch):
    """Split over three threads in bands of two rows, extraction and fold give
    the pixel-by-pixel results (the bands meet inside patches)."""
    monkeypatch.setattr(threads, "thread_count", lambda: 3)
    monkeypatch.setattr(patches, "ROWS_PER_BAND", 2)
    rng = np.random.default_rng(3)
    image = rng.random((11, 10, 3), dtype=np.float32)
    p = 3
    got = extract_patches(image, p)
    windows = [image[y : y + p, x : x + p] for y in range(9) for x in range(8)]
    np.testing.assert_array_equal(got, np.stack([w.transpose(2, 0, 1).ravel() for w in windows]))

    source = rng.random((7, 6, 3), dtype=np.float32)
    values = ValuePatches.of_images([source], p)
    chosen = rng.integers(0, len(values), size=9 * 8)
    source_patches = [source[y : y + p, x : x + p] for y in range(5) for x in range(4)]
    want = brute_force_fold(np.stack(source_patches)[chosen], (11, 10), p)
    np.testing.assert_allclose(values.fold(chosen, (11, 10)), want, rtol=1e-5)


def test_upscaled_candidates_carry_a_copy_to_the_finer_level():
    """An output copying the coarse source whole proposes, at the finer level, the
    patch under each position (within a pixel), in the right source image."""
    rng = np.random.default_rng(4)
    p = 3
    fine = [rng.random((20, 24, 3), dtype=np.float32), rng.random((16, 16, 3), np.float32)]
    coarse = [image[::2, ::2] for image in fine]  # sizes 10x12 and 8x8
    fine_values = ValuePatches.of_images(fine, p)
    coarse_values = ValuePatches.of_images(coarse, p)
    second = 8 * 10  # first patch of the second coarse image
    # The output is the second image: its coarse matches copy it position by position.
    identity = second + np.arange(6 * 6)
    got = fine_values.upscaled_candidates(coarse_values, identity, (8, 8), (16, 16))
    assert got.shape == (14 * 14, 5)
    image, y, x = fine_values.positions(got[:, 0])
    assert (image == 1).all()
    want_y, want_x = np.divmod(np.arange(14 * 14), 14)
    assert np.abs(y - want_y).max() <= 1 and np.abs(x - want_x).max() <= 1
    # Each neighbour's match, shifted back, proposes the same place.
    for column in range(1, 5):
        _, ny, nx = fine_values.positions(got[:, column])
        inside = (want_y >= 2) & (want_y < 12) & (want_x >= 2) & (want_x < 12)
        assert np.abs(ny - y)[inside].max() <= 1 and np.abs(nx - x)[inside].max() <= 1
