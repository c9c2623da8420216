"""gpnn.core.metrics against brute force and known answers."""

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

from gpnn.core import metrics


def _image(seed: int = 0, shape: tuple[int, int] = (32, 48)) -> np.ndarray:
    """A smooth synthetic image with structure (gradients, a disk, stripes)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float32)
    r = 0.5 + 0.4 * np.sin(xx / 5.0 + seed)
    g = 0.5 + 0.4 * np.cos(yy / 4.0) * np.sin(xx / 9.0)
    b = ((yy - shape[0] / 2) ** 2 + (xx - shape[1] / 3) ** 2 < 60).astype(np.float32)
    image = np.stack([r, g, 0.2 + 0.6 * b], axis=2)
    image += rng.normal(0, 0.02, image.shape).astype(np.float32)
    return np.clip(image, 0, 1).astype(np.float32)


def _brute_patches(image: np.ndarray, p: int) -> np.ndarray:
    w = sliding_window_view(image.astype(np.float64), (p, p), axis=(0, 1))
    return w.reshape(w.shape[0] * w.shape[1], -1)


def _brute_nn(queries: np.ndarray, keys: np.ndarray, p: int) -> np.ndarray:
    q, k = _brute_patches(queries, p), _brute_patches(keys, p)
    d = ((q[:, None, :] - k[None, :, :]) ** 2).mean(axis=2)
    return d.min(axis=1)


@pytest.mark.parametrize("p", [3, 5, 7])
def test_nearest_patch_distances_match_brute_force(p):
    a, b = _image(0, (20, 26)), _image(1, (18, 22))
    got = metrics.nearest_patch_distances(a, b, patch_size=p)
    want = _brute_nn(a, b, p)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-9)


def test_coherence_and_completeness_match_brute_force():
    out, src = _image(2, (20, 24)), _image(3, (22, 20))
    assert metrics.coherence(out, src) == pytest.approx(_brute_nn(out, src, 7).mean(), rel=1e-5)
    assert metrics.completeness(out, src) == pytest.approx(_brute_nn(src, out, 7).mean(), rel=1e-5)


def test_identical_images_score_zero():
    src = _image()
    assert metrics.coherence(src, src) == 0.0
    assert metrics.completeness(src, src) == 0.0
    assert metrics.patch_swd(src, src) == pytest.approx(0.0, abs=1e-12)


def test_shuffled_image_is_coherent_but_not_identical():
    """Blocks of the source swapped around: almost every output patch still
    exists in the source (coherence near 0), but the image has changed."""
    src = _image(4, (32, 48))
    out = np.concatenate([src[:, 24:], src[:, :24]], axis=1)  # swap left and right halves
    out = np.concatenate([out[16:], out[:16]], axis=0)  # and top and bottom
    noise = np.random.default_rng(0).uniform(0, 1, src.shape).astype(np.float32)
    assert not np.array_equal(out, src)
    shuffled = metrics.coherence(out, src)
    assert shuffled < 0.1 * metrics.coherence(noise, src)
    # Only patches straddling the seams are new: at most a third of them.
    distances = metrics.nearest_patch_distances(out, src)
    assert np.mean(distances == 0) > 0.6


def test_noise_image_is_far_from_source():
    src = _image(5)
    noise = np.random.default_rng(1).uniform(0, 1, src.shape).astype(np.float32)
    near = src + np.random.default_rng(2).normal(0, 0.01, src.shape).astype(np.float32)
    assert metrics.coherence(noise, src) > 0.03  # uniform noise vs smooth: ~1/12 - ...
    assert metrics.completeness(noise, src) > 0.03
    assert metrics.coherence(noise, src) > 50 * metrics.coherence(near, src)
    assert metrics.patch_swd(noise, src, levels=2) > 10 * metrics.patch_swd(near, src, levels=2)


def test_diversity_brute_force_and_known_answers():
    src = _image(6)
    rng = np.random.default_rng(3)
    samples = [np.clip(src + rng.normal(0, 0.1, src.shape), 0, 1) for _ in range(4)]
    grey = np.stack([s.mean(axis=2) for s in samples])
    want = grey.std(axis=0).mean() / src.mean(axis=2).std()
    assert metrics.diversity(samples, src) == pytest.approx(want, rel=1e-5)
    assert metrics.diversity([src, src, src], src) == 0.0
    # Two samples differing by +-d in grey everywhere: std = d at every pixel.
    d = 0.05
    lo, hi = np.clip(src, d, 1 - d) - d, np.clip(src, d, 1 - d) + d
    assert metrics.diversity([lo, hi], src) == pytest.approx(d / src.mean(axis=2).std(), rel=1e-4)


def test_diversity_rejects_bad_input():
    src = _image()
    with pytest.raises(ValueError, match="at least two"):
        metrics.diversity([src], src)
    with pytest.raises(ValueError, match="equal sizes"):
        metrics.diversity([src, src[:-1]], src)
    with pytest.raises(ValueError, match="uniform"):
        flat = np.full_like(src, 0.5)
        metrics.diversity([flat, flat], flat)


def _brute_swd(a, b, directions):
    pa = np.sort(_brute_patches(a, 7) @ directions, axis=0)
    pb = np.sort(_brute_patches(b, 7) @ directions, axis=0)
    return np.abs(pa - pb).mean()


def test_patch_swd_matches_brute_force_on_one_level():
    a, b = _image(7), _image(8)
    got = metrics.patch_swd(a, b, levels=1, projections=16, seed=3)
    directions = np.random.default_rng(3).standard_normal((147, 16))
    directions /= np.linalg.norm(directions, axis=0)
    assert got == pytest.approx(_brute_swd(a, b, directions), rel=1e-4)


def test_patch_swd_is_reproducible_and_symmetric():
    a, b = _image(9), _image(10)
    first = metrics.patch_swd(a, b)
    assert metrics.patch_swd(a, b) == first
    assert metrics.patch_swd(b, a) == pytest.approx(first, rel=1e-9)
    assert metrics.patch_swd(a, b, seed=1) != first


def test_patch_swd_of_a_rearrangement_is_small():
    """Swapping the halves keeps most patches: SWD well under that of noise, and
    under that of a uniform +0.05 brightness shift (which changes every patch)."""
    src = _image(11)
    rolled = np.concatenate([src[:, 24:], src[:, :24]], axis=1)
    noise = np.random.default_rng(4).uniform(0, 1, src.shape).astype(np.float32)
    brighter = np.clip(src + 0.05, 0, 1)
    swd = metrics.patch_swd(rolled, src, levels=1)
    assert swd < 0.15 * metrics.patch_swd(noise, src, levels=1)
    assert swd < 0.5 * metrics.patch_swd(brighter, src, levels=1)


def test_patch_swd_different_sizes_uses_quantiles():
    src = _image(12, (32, 48))
    tiled = np.concatenate([src, src], axis=1)  # same distribution, twice as many patches
    assert metrics.patch_swd(tiled, src, levels=1) < 0.05 * metrics.patch_swd(
        np.full_like(src, 0.5), src, levels=1
    )


def test_patch_swd_levels():
    src = _image(13, (32, 48))
    with pytest.raises(ValueError, match="`levels`"):
        metrics.patch_swd(src, src, levels=4)
    assert metrics.patch_swd(src, src, levels=2) == 0.0


def test_nn_histogram():
    distances = np.array([0.0, 0.0, 0.001, 0.5])
    counts, edges = metrics.nn_histogram(distances, edges=np.linspace(0, 0.01, 11))
    assert counts.sum() == pytest.approx(1.0)
    assert counts[0] == 0.5  # the two zeros
    assert counts[1] == 0.25  # 0.001 on the edge of bin 1
    assert counts[-1] == 0.25  # overflow counted in the last bin
    assert edges[0] == 0 and edges[-1] == 0.01 and len(edges) == 11


def test_nn_histogram_default_bins_separate_copies_and_decades():
    distances = np.array([0.0, 5e-8, 2e-6, 2e-3, 0.7])
    counts, edges = metrics.nn_histogram(distances)
    assert len(counts) == metrics.HISTOGRAM_BINS and np.array_equal(edges, metrics.HISTOGRAM_EDGES)
    assert counts[0] == pytest.approx(0.4)  # copies: below 1e-7
    assert edges[1] == pytest.approx(1e-7) and edges[-1] == pytest.approx(0.1)
    assert counts[np.searchsorted(edges, 2e-6, side="right") - 1] == pytest.approx(0.2)
    assert counts[-1] == pytest.approx(0.2)  # 0.7 beyond the last edge
    with pytest.raises(ValueError, match="`edges`"):
        metrics.nn_histogram(distances, edges=np.array([1.0, 2.0]))


def test_sample_metrics_bundles_the_three():
    a, b = _image(14), _image(15)
    m = metrics.sample_metrics(a, b, swd_levels=2)
    assert m.coherence == pytest.approx(metrics.coherence(a, b))
    assert m.completeness == pytest.approx(metrics.completeness(a, b))
    assert m.swd == pytest.approx(metrics.patch_swd(a, b, levels=2))
    assert m.change == pytest.approx(metrics.change(a, b))
    assert m.copied == pytest.approx(metrics.copied_share(a, b))
    assert set(m.as_dict()) == {"coherence", "completeness", "swd", "change", "copied", "copy"}


def test_change_and_copied_share_see_a_copy_that_the_patch_metrics_score_perfect():
    source = _image(16)
    shifted = np.roll(source, 9, axis=1)
    copy = metrics.sample_metrics(source.copy(), source, swd_levels=2)
    assert copy.coherence == 0 and copy.completeness == 0 and copy.swd == 0
    assert copy.change == 0 and copy.copied == 1 and copy.copy
    moved = metrics.sample_metrics(shifted, source, swd_levels=2)
    assert moved.change > metrics.COPY_MAX_CHANGE
    assert moved.copied < 0.05 and not moved.copy


def test_copied_share_with_stride_counts_the_strided_positions():
    source = _image(17)
    half = source.copy()
    half[:, source.shape[1] // 2 :] = np.roll(source, 7, axis=0)[:, source.shape[1] // 2 :]
    full = metrics.copied_share(half, source)
    assert 0.3 < full < 0.7
    assert metrics.copied_share(half, source, stride=3) == pytest.approx(full, abs=0.1)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda s: metrics.coherence(s[:, :, :2], s), "RGB"),
        (lambda s: metrics.coherence(s[:5, :5], s), "smaller than one"),
        (lambda s: metrics.coherence(s, s, patch_size=4), "odd"),
        (lambda s: metrics.patch_swd(s, s, projections=0), "projections"),
        (lambda s: metrics.nn_histogram(np.array([])), "empty"),
    ],
)
def test_bad_arguments_raise_value_error(call, match):
    with pytest.raises(ValueError, match=match):
        call(_image())


@pytest.mark.parametrize("stride", [2, 3])
def test_stride_takes_a_regular_subsample_of_the_queries(stride):
    a, b = _image(16, (21, 25)), _image(17, (20, 22))
    full = metrics.nearest_patch_distances(a, b).reshape(21 - 6, 25 - 6)
    got = metrics.nearest_patch_distances(a, b, stride=stride)
    np.testing.assert_allclose(got, full[::stride, ::stride].reshape(-1), rtol=1e-12)
    assert metrics.coherence(a, b, stride=stride) == pytest.approx(got.mean())
    back = metrics.nearest_patch_distances(b, a).reshape(20 - 6, 22 - 6)[::stride, ::stride]
    assert metrics.completeness(a, b, stride=stride) == pytest.approx(back.mean())
    with pytest.raises(ValueError, match="`stride`"):
        metrics.coherence(a, b, stride=0)


def test_seam_ratio_matches_brute_force_and_sees_a_straight_cut():
    left, right = _image(5, (24, 40)), _image(6, (24, 40))[:, :, ::-1]
    # A little noise, so that the interior's distances are not all 0.
    noise = np.random.default_rng(0).normal(0, 0.01, (24, 80, 3)).astype(np.float32)
    cut = np.concatenate([left, right], axis=1) + noise
    p = 3
    d = np.minimum(_brute_nn(cut, left, p), _brute_nn(cut, right, p)).reshape(24 - p + 1, -1)
    profile, centres = d.mean(axis=0), np.arange(d.shape[1]) + p // 2
    # The worst band within 4 patches of the junction declared at 34: the cut at 40.
    bands = [np.abs(centres - c) <= p for c in range(34 - 4 * p, 34 + 4 * p + 1)]
    seam = max(bands, key=lambda band: profile[band].mean())
    assert {39, 40} <= set(centres[seam])  # the patches that straddle the cut
    want = profile[seam].mean() / profile[~seam].mean()
    got = metrics.seam_ratio(cut, [left, right], [34], patch_size=p)
    assert got == pytest.approx(want, rel=1e-5)
    assert got > 5  # straddling patches exist in neither source
    # Its numerator, searched from the columns near the junction only.
    near = metrics.seam_distance(cut, [left, right], [34], patch_size=p)
    assert near == pytest.approx(profile[seam].mean(), rel=1e-5)
    with pytest.raises(ValueError, match="`junctions`"):
        metrics.seam_distance(cut, [left, right], [81], patch_size=p)
    # The worst band anywhere: here the cut's too.
    anywhere = max(profile[np.abs(centres - c) <= p].mean() for c in centres)
    assert metrics.worst_band_distance(cut, [left, right], patch_size=p) == pytest.approx(
        anywhere, rel=1e-5
    )
    # The same image with no cut in it: the worst band near 20 is like the rest.
    whole = left + noise[:, :40]
    assert metrics.seam_ratio(whole, [left], [20], patch_size=p) < 2


def test_layout_agreement_sees_the_layout_whatever_its_tones():
    rng = np.random.default_rng(0)
    structure = np.full((64, 96, 3), 0.8, np.float32)
    structure[:24] = (0.3, 0.5, 0.9)  # a sky band
    structure[36:52, 20:50] = 0.1  # a dark block on the ground
    recoloured = np.empty_like(structure)  # each region in a tone of its own, textured
    recoloured[:] = (0.9, 0.6, 0.2)
    recoloured[:24] = (0.1, 0.3, 0.1)
    recoloured[36:52, 20:50] = 1.0
    recoloured += 0.03 * rng.standard_normal(structure.shape).astype(np.float32)
    recoloured = np.clip(recoloured, 0, 1)
    assert metrics.layout_agreement(structure, structure) == pytest.approx(1.0)
    # Other tones, even inverted, over the same regions: the same layout.
    assert metrics.layout_agreement(1 - structure, structure) == pytest.approx(1.0)
    assert metrics.layout_agreement(recoloured, structure) > 0.85
    # The block moved (the sky band stays where it was), or no regions at all.
    moved = np.roll(recoloured, 40, axis=1)
    noise = rng.random(structure.shape).astype(np.float32)
    assert metrics.layout_agreement(moved, structure) < 0.8
    assert metrics.layout_agreement(noise, structure) < 0.05
    with pytest.raises(ValueError, match="`layout_agreement` needs equal sizes"):
        metrics.layout_agreement(structure[:30], structure)


def test_structure_overlap_counts_where_the_objects_sit():
    structure = np.full((40, 60, 3), 0.9, np.float32)
    structure[10:20, 10:20] = 0.1  # one dark square of 100 pixels
    same_place = np.full_like(structure, 0.7)
    same_place[10:20, 10:20] = 0.2
    moved = np.full_like(structure, 0.7)
    moved[15:25, 15:25] = 0.2  # overlaps 25 of 175 pixels
    assert metrics.structure_overlap(same_place, structure) == 1.0
    assert metrics.structure_overlap(moved, structure) == pytest.approx(25 / 175)
    # The minority side is the object, dark on light or light on dark alike.
    assert metrics.structure_overlap(1 - same_place, structure) == 1.0
    with pytest.raises(ValueError, match="`structure` is 60x40"):
        metrics.structure_overlap(same_place[:30], structure)
