"""Value patches kept as pixels plus positions."""

import numpy as np

from gpnn.core.patches import ValuePatches, extract_patches


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
    np.testing.assert_allclose(values.fold(np.arange(len(values)), (8, 9), 3), image, atol=1e-6)
    assert len(values) == len(extract_patches(image, 3))
