"""The PNN loop against an independent brute-force NumPy reference, and the
properties every application must have."""

import math

import cv2
import numpy as np
import pytest

from gpnn.core import (
    analogy,
    collage,
    edit,
    generate,
    inpaint,
    retarget,
    tasks,
)
from gpnn.core.imageio import decode_image
from gpnn.core.metrics import (
    layout_agreement,
    seam_distance,
    seam_ratio,
    structure_overlap,
    worst_band_distance,
)
from gpnn.core.params import GenerateParams
from gpnn.core.patches import ValuePatches, extract_patches, patch_grid
from gpnn.core.pnn import SourceLevel, Stage, refine
from gpnn.core.pyramid import build_pyramid, resize


def reference_pnn_step(guess, key_image, value_image, p, alpha, valid=None):
    """One PNN iteration written from the paper, with loops and a full matrix."""
    h, w, _ = guess.shape

    def patches(img):
        hh, ww, _ = img.shape
        return np.array(
            [
                img[i : i + p, j : j + p].astype(np.float64)
                for i in range(hh - p + 1)
                for j in range(ww - p + 1)
            ]
        )

    q = patches(guess)
    k = patches(key_image)
    v = patches(value_image)
    if valid is not None:
        k, v = k[valid], v[valid]
    d = ((q[:, None] - k[None]) ** 2).reshape(len(q), len(k), -1).mean(-1)
    score = d if math.isinf(alpha) else d / (alpha + d.min(axis=0, keepdims=True))
    chosen = score.argmin(axis=1)
    g = np.linspace(-1, 1, p)
    g = np.exp(-0.5 * (g / 1.7) ** 2)
    weight = np.outer(g, g)
    total = np.zeros((h, w, 3))
    norm = np.zeros((h, w, 1))
    n = 0
    for i in range(h - p + 1):
        for j in range(w - p + 1):
            total[i : i + p, j : j + p] += weight[:, :, None] * v[chosen[n]]
            norm[i : i + p, j : j + p] += weight[:, :, None]
            n += 1
    return total / norm


@pytest.mark.parametrize("backend", ["cpu", "torch"])
@pytest.mark.parametrize("alpha", [math.inf, 5e-3])
def test_refine_matches_bruteforce_reference(make_scene, request, alpha, backend):
    """The CPU engine, and the PyTorch engine (the GPU path, run on the CPU)."""
    device = "cpu" if backend == "cpu" else request.getfixturevalue("torch_backend_on_cpu")
    p = 5
    value_image = make_scene(18, 22, seed=1)
    key_image = np.clip(value_image + 0.02, 0, 1).astype(np.float32)  # a "blurry" key image
    guess = make_scene(16, 20, seed=2)
    keys, values = extract_patches(key_image, p), ValuePatches.of_images([value_image], p)
    level = SourceLevel(keys, values, device=device)
    assert level.backend == ("cpu" if backend == "cpu" else "torch-cuda")
    stages = [Stage(level, (16, 20), 2)]

    ours = refine(guess, stages, patch_size=p, alpha=alpha)

    expected = guess
    for _ in range(2):
        expected = reference_pnn_step(expected, key_image, value_image, p, alpha)
    np.testing.assert_allclose(ours, expected, atol=1e-5)


def fast_params(**extra):
    return {"patch_size": 5, "iterations": 2, **extra}


@pytest.mark.parametrize("backend", ["cpu", "torch"])
def test_refine_with_a_guide_matches_bruteforce_reference(make_scene, request, backend):
    """A stage's guide channels are appended to every query patch, and the keys
    carry the source's: the search is over the joined channels, the output made of
    the three-channel values alone."""
    device = "cpu" if backend == "cpu" else request.getfixturevalue("torch_backend_on_cpu")
    p, alpha = 5, 5e-3
    value_image = make_scene(18, 22, seed=1)
    key_image = np.concatenate([value_image, make_scene(18, 22, seed=3)[:, :, :1]], axis=2)
    guess, guide = make_scene(16, 20, seed=2), make_scene(16, 20, seed=4)[:, :, :1]
    level = SourceLevel(
        extract_patches(key_image, p), ValuePatches.of_images([value_image], p), device=device
    )

    ours = refine(guess, [Stage(level, (16, 20), 2, guide=guide)], patch_size=p, alpha=alpha)

    expected = guess
    for _ in range(2):
        joined = np.concatenate([expected, guide], axis=2)
        expected = reference_pnn_step(joined, key_image, value_image, p, alpha)
    np.testing.assert_allclose(ours, expected, atol=1e-5)
    with pytest.raises(ValueError, match="guide must be the stage's size"):
        Stage(level, (16, 20), 1, guide=guide[:10])


@pytest.mark.parametrize("layout_levels", [0, 3])
def test_generate_shape_range_determinism_and_diversity(scene, layout_levels):
    options = fast_params(depth=2, layout_levels=layout_levels)
    a = generate(scene, samples=2, seed=3, **options)
    again = generate(scene, samples=1, seed=3, **options)
    other = generate(scene, samples=1, seed=4, **options)
    assert a[0].shape == scene.shape and a[0].dtype == np.float32
    assert a[0].min() >= 0.0 and a[0].max() <= 1.0
    assert a[0].tobytes() == again[0].tobytes()
    assert a[1].tobytes() == other[0].tobytes()  # sample i uses seed + i
    assert np.abs(a[0] - a[1]).mean() > 0.01


def test_generate_output_is_made_of_source_patches(scene):
    out = generate(scene, seed=0, depth=2, **fast_params())[0]
    source_patches = extract_patches(scene, 5)
    out_patches = extract_patches(out, 5)
    # Nearest source patch of each output patch, brute force.
    d = ((out_patches[:, None] - source_patches[None]) ** 2).mean(-1).min(1)
    noise = extract_patches(np.random.default_rng(0).random(scene.shape, np.float32), 5)
    d_noise = ((noise[:200, None] - source_patches[None]) ** 2).mean(-1).min(1)
    assert d.mean() < 0.1 * d_noise.mean()


def test_retarget_with_one_side_keeps_the_other(scene):
    wider = retarget(scene, width=70, depth=1, **fast_params())[0]
    assert wider.shape == (scene.shape[0], 70, 3)
    taller = retarget(scene, height=30, depth=1, **fast_params())[0]
    assert taller.shape == (30, scene.shape[1], 3)


@pytest.mark.parametrize(("height", "width"), [(30, 80), (56, 40), (20, 30)])
def test_retarget_reaches_the_target_size(scene, height, width):
    out = retarget(scene, height=height, width=width, depth=1, **fast_params())[0]
    assert out.shape == (height, width, 3)
    assert out.min() >= 0.0 and out.max() <= 1.0


def test_inpaint_keeps_outside_and_fills_hole_with_source_like_patches(make_scene):
    image = make_scene(48, 60, seed=5)
    hole = np.zeros(image.shape[:2], bool)
    hole[18:30, 22:36] = True
    painted = image.copy()
    painted[hole] = (0.1, 0.8, 0.1)
    out = inpaint(painted, hole, depth=1, **fast_params())[0]
    np.testing.assert_array_equal(out[~hole], painted[~hole])
    # The hole no longer holds the flat painted colour, but texture from the image.
    assert out[hole].std(axis=0).mean() > 0.02
    assert np.abs(out[hole] - painted[hole]).mean() > 0.05


def test_inpaint_finds_the_hole_by_colour(make_scene):
    image = make_scene(48, 60, seed=6)
    painted = image.copy()
    painted[10:20, 10:24] = (1.0, 0.0, 1.0)
    out = inpaint(painted, color=(255, 0, 255), depth=1, **fast_params())[0]
    # The hole is the painted pixels and the few around them that JPEG would blur.
    outside = np.ones(image.shape[:2], bool)
    f = tasks.COLOR_FRINGE
    outside[10 - f : 20 + f, 10 - f : 24 + f] = False
    np.testing.assert_array_equal(out[outside], painted[outside])
    magenta = np.all(np.abs(out[10:20, 10:24] - (1.0, 0.0, 1.0)) < 0.05, axis=2)
    assert magenta.mean() < 0.2


def test_inpaint_chooses_a_depth_that_leaves_patches_to_copy(make_scene):
    """A hole of 40 of the 94 rows: at the depth that shrinks it to one patch, every
    patch of the coarsest level touched it and there was nothing to copy from."""
    image = make_scene(94, 125, seed=3)
    hole = np.zeros(image.shape[:2], bool)
    hole[25:65, 30:95] = True
    out = inpaint(image, hole, mode="fast")[0]
    np.testing.assert_array_equal(out[~hole], image[~hole])
    assert np.abs(out[hole] - image[hole]).mean() > 0.01  # filled, not left as it was


def _magenta_pixels(image: np.ndarray) -> int:
    return int(
        ((image[..., 0] - image[..., 1] > 0.35) & (image[..., 2] - image[..., 1] > 0.35)).sum()
    )


def test_inpaint_by_colour_also_fills_the_edge_jpeg_blurred(make_scene):
    image = make_scene(48, 60, seed=6)
    painted = image.copy()
    painted[14:30, 16:40] = (1.0, 0.0, 1.0)
    pixels = np.round(painted[..., ::-1] * 255).astype(np.uint8)
    _, data = cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, 90])
    jpeg = decode_image(data.tobytes())
    out = inpaint(jpeg, color=(255, 0, 255), depth=1, **fast_params())[0]
    # No trace of the paint is left, not even the blurred frame around the square.
    assert _magenta_pixels(jpeg) > 300
    assert _magenta_pixels(out) <= _magenta_pixels(image) + 2


def test_a_colour_found_all_over_the_image_is_a_clear_error(make_scene):
    image = make_scene(48, 60, seed=6)
    image[::6, ::6] = (1 / 255, 2 / 255, 3 / 255)
    with pytest.raises(ValueError, match="patch lies wholly outside the hole"):
        inpaint(image, color=(1, 2, 3), **fast_params())


def test_collage_holds_patches_of_every_source(make_scene):
    red = make_scene(30, 32, seed=7) * np.array([1.0, 0.3, 0.3], np.float32)
    blue = make_scene(30, 36, seed=8) * np.array([0.3, 0.3, 1.0], np.float32)
    out = collage([red, blue], depth=1, **fast_params())[0]
    assert out.shape == (30, 68, 3)
    out_patches = extract_patches(out, 5)
    for source in (red, blue):
        source_patches = extract_patches(source, 5)
        # Completeness: each source's patches are found in the output.
        d = ((source_patches[:, None] - out_patches[None]) ** 2).mean(-1).min(1)
        assert d.mean() < 0.01


def test_analogy_follows_the_structure_layout(make_scene):
    source = make_scene(40, 40, seed=9)
    structure = np.zeros((36, 44, 3), np.float32)
    structure[:, 22:] = 1.0  # dark left half, bright right half
    out = analogy(source, structure, depth=1, **fast_params())[0]
    assert out.shape == structure.shape
    grey = out.mean(axis=2)
    assert grey[:, 28:].mean() > grey[:, :16].mean() + 0.2


def test_edit_keeps_the_edited_layout(make_scene):
    source = make_scene(40, 52, seed=10)
    edited = source.copy()
    edited[:, :26], edited[:, 26:] = source[:, 26:], source[:, :26]  # swap the halves
    out = edit(source, edited, depth=1, **fast_params())[0]
    assert np.abs(out - edited).mean() < np.abs(out - source).mean()


def test_a_collage_merges_its_sources_instead_of_a_straight_seam(make_scene):
    left = make_scene(36, 40, seed=3) * np.array([1.0, 0.5, 0.2], np.float32)
    right = make_scene(36, 40, seed=4) * np.array([0.2, 0.5, 1.0], np.float32)
    seams = {}
    for rounds in (0, 2):
        outs = collage([left, right], noise_rounds=rounds, samples=2 if rounds else 1, depth=2)
        seams[rounds] = np.mean([seam_ratio(o, [left, right], [40], patch_size=5) for o in outs])
    # The plain concatenation comes back unchanged: a seam of patches found in no source.
    assert seams[0] > 1.5 * seams[2], seams
    assert not np.array_equal(*outs)  # with noise, each seed merges differently


def test_a_collage_compares_its_candidates_part_way_and_finishes_the_best_alone(make_scene):
    """Where the sources meet badly depends on the seed; each sample is started as
    `candidates` runs (sample i from seeds seed + i * candidates onwards), they are
    compared before the finest levels (least worst band at the junction plus anywhere,
    against the sources at that level's height) and only the kept one goes on."""
    left = make_scene(36, 40, seed=3) * np.array([1.0, 0.5, 0.2], np.float32)
    right = make_scene(36, 40, seed=4) * np.array([0.2, 0.5, 1.0], np.float32)
    options = {"depth": 3, "seed": 5}
    events = []
    kept = collage([left, right], candidates=3, samples=2, progress=events.append, **options)
    compared_at, levels = events[0].compared_at, events[0].levels
    assert compared_at < levels - 1

    def run_alone(seed):
        """One run of `seed`, with its images at the compared level and at the end."""
        shown = []
        [output] = collage(
            [left, right], candidates=1, progress=shown.append, **{**options, "seed": seed}
        )
        [part] = [e.image for e in shown if e.level == compared_at and e.image is not None]
        return part, output

    def score(part):
        scaled = [resize(s, (part.shape[0], round(40 * part.shape[0] / 36))) for s in (left, right)]
        at = [scaled[0].shape[1]]
        return seam_distance(part, scaled, at, stride=2) + worst_band_distance(
            part, scaled, stride=2
        )

    runs = [run_alone(5 + s) for s in range(6)]
    scores = [score(part) for part, _ in runs]
    for sample in range(2):
        mine = scores[3 * sample : 3 * sample + 3]
        assert len(set(mine)) == 3, scores
        np.testing.assert_array_equal(kept[sample], runs[3 * sample + int(np.argmin(mine))][1])
    assert np.argmin(scores[:3]) != 0 or np.argmin(scores[3:]) != 0, scores  # not the first
    for sample in range(2):
        mine = [e for e in events if e.sample == sample]
        shared = {e.candidate for e in mine if e.level <= compared_at}
        alone = {e.candidate for e in mine if e.level > compared_at}
        assert shared == {0, 1, 2} and len(alone) == 1
        # Only the kept run reports images: the levels after the comparison.
        shown = [e for e in mine if e.image is not None]
        assert [e.level for e in shown] == list(range(compared_at + 1, levels))
        np.testing.assert_array_equal(shown[-1].image, kept[sample])


def _blobs(shape, background, blobs, rng=None):
    image = np.empty((*shape, 3), np.float32)
    image[:] = background
    if rng is not None:
        image += 0.04 * rng.standard_normal(image.shape).astype(np.float32)
    for cy, cx, ry, rx in blobs:
        yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
        image[((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1] = 0.05
    return np.clip(image, 0, 1)


def test_an_analogy_of_small_objects_puts_an_object_on_each(make_scene):
    """Small objects vanish below a patch at the authors' fixed depth 5 and come back as
    smears; the depth from the objects' size keeps each one (paper section 4). Without
    the structure guide, which steers every level and keeps them at any depth."""
    rng = np.random.default_rng(0)
    places = [(int(y), int(x), 3, 5) for y, x in rng.uniform((10, 12), (118, 148), (10, 2))]
    source = _blobs((128, 160), (0.95, 0.6, 0.2), places, rng)
    targets = [(25, 30, 3, 5), (40, 120, 3, 5), (90, 50, 3, 5), (100, 130, 3, 5)]
    structure = _blobs((128, 160), (0.95, 0.6, 0.2), targets)

    def overlap(depth):
        out = analogy(source, structure, depth=depth, patch_size=5, structure_weight=0)[0]
        return structure_overlap(out, structure)

    chosen, fixed = overlap(None), overlap(5)
    assert chosen > 0.5 and chosen > fixed + 0.1, (chosen, fixed)


def test_an_analogy_follows_a_structure_drawn_in_other_tones():
    """Light shapes on dark blue laid out in the patches of dark things on orange:
    through the start alone (the paper's recipe, `structure_weight` 0) the orange
    source shows nothing of the layout; with the structure's grey steering every
    level the output's tone regions follow it."""
    rng = np.random.default_rng(0)
    places = [(int(y), int(x), 4, 6) for y, x in rng.uniform((10, 12), (86, 108), (8, 2))]
    source = _blobs((96, 120), (0.95, 0.6, 0.2), places, rng)
    structure = np.empty((96, 120, 3), np.float32)
    structure[:] = (0.1, 0.15, 0.4)
    yy, xx = np.mgrid[0:96, 0:120]
    for cy, cx in rng.uniform((15, 15), (80, 105), (4, 2)):
        structure[((yy - cy) / 10) ** 2 + ((xx - cx) / 14) ** 2 <= 1] = (0.7, 0.8, 1.0)

    def agreement(weight):
        out = analogy(source, structure, structure_weight=weight, patch_size=5)[0]
        return layout_agreement(out, structure)

    plain, guided = agreement(0), agreement(1)
    assert plain < 0.15 and guided > plain + 0.25, (plain, guided)


def _displaced_step(source, noisy, valid=None):
    """One PNN step of `noisy` against `source`'s patches (where `valid`), each match
    at least 2 pixels from its own place: a generation's noisy round."""
    keys = extract_patches(source, 5)
    values = ValuePatches.of_images([source], 5, None if valid is None else [valid])
    level = SourceLevel(keys if valid is None else keys[valid], values, min_shift=2)
    return refine(noisy, [Stage(level, source.shape[:2], 1)], patch_size=5, alpha=math.inf)


def test_a_displaced_step_takes_no_key_left_out(make_scene):
    """A collage's start leaves out the patches that straddle a junction: they exist in
    no source, and as keys they kept the seam in place."""
    source = make_scene(30, 40, seed=11)
    source[:, 18:22] = (1.0, 0.0, 0.0)  # a red band standing for the junction
    rows, cols = 30 - 4, 40 - 4
    left = np.arange(cols)
    away = np.tile((left + 5 <= 18) | (left >= 22), rows)
    noisy = source + np.random.default_rng(0).normal(0, 0.3, source.shape).astype(np.float32)
    out = _displaced_step(source, noisy, away)
    red = (out[..., 0] > 0.9) & (out[..., 1] < 0.1) & (out[..., 2] < 0.1)
    assert not red.any()
    # Without the mask the band is a key like any other, and comes back.
    everything = _displaced_step(source, noisy)
    assert ((everything[..., 0] > 0.9) & (everything[..., 1] < 0.1)).any()


def test_the_layout_levels_are_the_small_coarsest_ones(scene, monkeypatch):
    """A generation's layout levels: the coarsest `levels`, displaced and at the layout
    alpha, but never a level above the patch budget (its search is exact)."""
    params = GenerateParams(patch_size=5)
    pyramid = build_pyramid(scene, params.ratio, 3)
    shapes = [level.shape[:2] for level in pyramid]
    layout = tasks.Layout(levels=2, alpha=1e-3, min_shift=2)

    def plan():
        stages = tasks._stages([pyramid], params, "cpu", shapes, layout=layout)
        return [(stage.source.min_shift, stage.alpha) for stage in stages]

    assert plan() == [(2, 1e-3), (2, 1e-3), (0, None), (0, None)]
    rows, cols = patch_grid(shapes[-2], 5)
    monkeypatch.setattr(tasks, "LAYOUT_MAX_PATCHES", rows * cols - 1)
    assert plan() == [(2, 1e-3), (0, None), (0, None), (0, None)]
    with pytest.raises(ValueError, match="the size of their source levels"):
        tasks._stages([pyramid], params, "cpu", shapes, start=shapes[-1], layout=layout)


def test_a_displaced_level_runs_only_at_its_own_size(scene):
    values = ValuePatches.of_images([scene], 5)
    level = SourceLevel(extract_patches(scene, 5), values, min_shift=2)
    with pytest.raises(ValueError, match="size of its source image"):
        Stage(level, (scene.shape[1], scene.shape[0]), 1)
    with pytest.raises(ValueError, match="min_shift"):
        SourceLevel(extract_patches(scene, 5), values, min_shift=-1)
