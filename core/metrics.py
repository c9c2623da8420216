"""Quality metrics of generated images that need no pretrained network.

Every function takes images as float arrays (H, W, 3), RGB in [0, 1] (uint8 is
accepted and scaled by 1/255), and returns plain floats or NumPy arrays.

Patch distances are per-patch MSE: the squared L2 distance between two
flattened ``3 * p * p`` patches divided by ``3 * p * p``, so they are in
[0, 1] units (the same units as GPNN's `alpha`). Nearest patches are found by
exact FAISS searches (`faiss.IndexFlatL2`), never with a full distance matrix.

References
----------
.. [1] Shaham, Dekel, Michaeli. "SinGAN: Learning a Generative Model from a
   Single Natural Image", ICCV 2019 (the diversity measure).
.. [2] Simakov, Caspi, Shechtman, Irani. "Summarizing Visual Data Using
   Bidirectional Similarity", CVPR 2008 (coherence and completeness).
.. [3] Granot, Feinstein, Shocher, Bagon, Irani. "Drop the GAN", CVPR 2022
   (Table 1 and Figure 10).
.. [4] Studholme, Hill, Hawkes. "An overlap invariant entropy measure of 3D
   medical image alignment", Pattern Recognition 32, 1999 (mutual information
   as the alignment of images whose tones differ).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import faiss
import numpy as np

from gpnn.core.imageio import as_image, check_same_size, describe_size
from gpnn.core.objects import object_mask
from gpnn.core.patches import extract_patches, patch_grid
from gpnn.core.pyramid import level_shape, resize
from gpnn.core.search import flat_search

logger = logging.getLogger(__name__)

# Patch size of the patch metrics (GPNN's own patch size).
PATCH_SIZE = 7
# Sliced Wasserstein distance: number of random directions, seed, pyramid.
SWD_PROJECTIONS = 128
SWD_SEED = 0
SWD_RATIO = 0.5
SWD_MAX_LEVELS = 4
# Nearest-neighbour histogram of per-patch MSE: a first bin [0, 1e-7) for copies
# (RMSE < 1/3 grey level of 255), then 6 log-spaced bins per decade up to 0.1 (RMSE
# 0.32); larger distances are counted in the last bin. GPNN's outputs are mostly
# copies, so linear bins would show a single spike.
HISTOGRAM_EDGES = np.concatenate([[0.0], np.logspace(-7, -1, 37)])
HISTOGRAM_BINS = len(HISTOGRAM_EDGES) - 1
# Rows of queries per FAISS search call, which bounds FAISS's result buffers.
SEARCH_BLOCK = 65536
# How far, in patches, `seam_ratio` looks for a seam on each side of a junction.
SEAM_REACH = 4
# A sample is a copy of its source when it changed less than this (`change`) ...
COPY_MAX_CHANGE = 0.1
# ... or when at least this share of its patches sit where they are in the source
# (`copied_share`). Both catch what the patch metrics score as perfect.
COPY_MIN_SHARE = 0.5
# Layout agreement: the short side the two images are compared at (their layout,
# not their texture) and the number of equally populated grey levels.
LAYOUT_SIDE = 64
LAYOUT_TONES = 8


def diversity(samples: Sequence[np.ndarray], source: np.ndarray) -> float:
    """Pixel-wise diversity of several samples of one source (SinGAN's measure).

    Parameters
    ----------
    samples : sequence of (H, W, 3) arrays, at least two, all the size of `source`
    source : (H, W, 3) array

    Returns
    -------
    float
        ``mean_xy std_i g_i(x, y) / std_xy g_src(x, y)`` where ``g`` is the grey
        image (the mean of the three channels) and both standard deviations are
        population ones (``ddof = 0``). 0 when all samples are identical.

    Notes
    -----
    SinGAN [1]_ and GPNN [3]_ report this with 50 samples per image; with fewer
    samples the estimate is noisier and slightly lower (the population std
    of few draws underestimates the spread).
    """
    source = as_image(source, "source")
    if len(samples) < 2:
        raise ValueError("`samples` must hold at least two images to measure diversity")
    greys = []
    for i, sample in enumerate(samples):
        image = as_image(sample, f"samples[{i}]")
        check_same_size(image, f"samples[{i}]", source, "diversity needs equal sizes")
        greys.append(image.mean(axis=2, dtype=np.float64))
    spread = np.std(np.stack(greys), axis=0).mean()
    scale = np.std(source.mean(axis=2, dtype=np.float64))
    if scale == 0:
        raise ValueError("`source` is uniform (its grey standard deviation is 0)")
    return float(spread / scale)


def change(output: np.ndarray, source: np.ndarray) -> float:
    """How far a sample moved from its input: ``mean |g_out - g_src| / std(g_src)``.

    `g` is the grey image (mean of the channels). 0 for a copy; a new arrangement
    of a photo moves 0.3-1 (the authors' published SIGD16 samples: 0.32 on average).
    Needs equal sizes. A copy scores perfect coherence, completeness and SWD, so
    every patch metric should be read beside this number.
    """
    source = as_image(source, "source")
    output = as_image(output, "output")
    check_same_size(output, "output", source, "`change` needs equal sizes")
    grey_out = output.mean(axis=2, dtype=np.float64)
    grey_src = source.mean(axis=2, dtype=np.float64)
    scale = np.std(grey_src)
    if scale == 0:
        raise ValueError("`source` is uniform (its grey standard deviation is 0)")
    return float(np.abs(grey_out - grey_src).mean() / scale)


def is_copy(change_value: float, copied: float | None) -> bool:
    """Whether a sample with this `change` and `copied_share` is its input handed back."""
    return change_value < COPY_MAX_CHANGE or (copied is not None and copied >= COPY_MIN_SHARE)


def nearest_patches(
    queries: np.ndarray, keys: np.ndarray, *, patch_size: int = PATCH_SIZE, stride: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """`nearest_patch_distances` and the index of each nearest key patch.

    Returns
    -------
    distances : as `nearest_patch_distances`
    ids : (same length,) int64, row-major position of the nearest patch of `keys`
    """
    if stride < 1:
        raise ValueError("`stride` must be at least 1")
    query_patches = _patches(queries, "queries", patch_size, stride)
    key_patches = _patches(keys, "keys", patch_size)
    return _PatchIndex(key_patches).nearest(query_patches)


def copied_share(
    output: np.ndarray,
    source: np.ndarray,
    *,
    patch_size: int = PATCH_SIZE,
    stride: int = 1,
    ids: np.ndarray | None = None,
) -> float:
    """Share of the output's patches whose nearest source patch is the one at
    their own position: 1 for a copy, near 0 for a new arrangement.

    Needs equal sizes. `ids` may pass the output's precomputed
    `nearest_patches` indices (same `stride`).
    """
    output, source = as_image(output, "output"), as_image(source, "source")
    if output.shape != source.shape:
        raise ValueError("`copied_share` needs an output of the source's size")
    if ids is None:
        _, ids = nearest_patches(output, source, patch_size=patch_size, stride=stride)
    rows, cols = patch_grid(source.shape[:2], patch_size)
    own = (np.arange(rows)[::stride, None] * cols + np.arange(cols)[None, ::stride]).reshape(-1)
    return float(np.mean(ids == own))


def nearest_patch_distances(
    queries: np.ndarray, keys: np.ndarray, *, patch_size: int = PATCH_SIZE, stride: int = 1
) -> np.ndarray:
    """Distance of every patch of `queries` to its nearest patch of `keys`.

    Parameters
    ----------
    queries : (H, W, 3) array, the image whose patches are matched
    keys : (H', W', 3) array, the image searched (any size)
    patch_size : int, odd side of the square patches
    stride : int
        Step between the query patches on both axes: 1 takes every patch;
        s > 1 takes every s-th row and column of patch positions (about
        1/s^2 of them, a regular subsample, each distance still exact). The
        keys are always all the patches of `keys`.

    Returns
    -------
    (ceil((H - p + 1) / s) * ceil((W - p + 1) / s),) float64
        ``min_j |q_i - k_j|^2 / (3 p^2)`` for every (strided) patch ``q_i`` of
        `queries`, row-major, over all patches ``k_j`` of `keys`.

    Notes
    -----
    The nearest key is found by an exact FAISS L2 search on mean-centred
    float32 patches; the distance to it is then recomputed in float64, so
    identical patches give exactly 0.
    """
    return nearest_patches(queries, keys, patch_size=patch_size, stride=stride)[0]


def coherence(
    output: np.ndarray, source: np.ndarray, *, patch_size: int = PATCH_SIZE, stride: int = 1
) -> float:
    """Mean over the output's patches of the MSE to their nearest source patch.

    ``coherence = 1/|Y| sum_{y in Y} min_{x in X} |y - x|^2 / (3 p^2)`` with X the
    source's and Y the output's patches (stride 1). 0 when every output patch
    appears in the source; large when the output holds patches the source
    lacks (artefacts). The first half of the bidirectional similarity [2]_.
    `stride` > 1 averages over a regular subsample of the output's patches
    (see `nearest_patch_distances`).
    """
    distances = nearest_patch_distances(output, source, patch_size=patch_size, stride=stride)
    return float(distances.mean())


def completeness(
    output: np.ndarray, source: np.ndarray, *, patch_size: int = PATCH_SIZE, stride: int = 1
) -> float:
    """Mean over the source's patches of the MSE to their nearest output patch.

    ``completeness = 1/|X| sum_{x in X} min_{y in Y} |x - y|^2 / (3 p^2)``. 0 when
    every source patch appears in the output; large when the output leaves
    parts of the source out. The second half of the bidirectional
    similarity [2]_ (lower is better, like coherence). `stride` > 1 averages
    over a regular subsample of the source's patches.
    """
    distances = nearest_patch_distances(source, output, patch_size=patch_size, stride=stride)
    return float(distances.mean())


def seam_ratio(
    output: np.ndarray,
    sources: Sequence[np.ndarray],
    junctions: Sequence[int],
    *,
    patch_size: int = PATCH_SIZE,
    stride: int = 1,
) -> float:
    """How much less coherent a collage is along its junctions than elsewhere.

    Every output patch gets its `coherence` distance to the nearest patch of any
    source. A band is the patches whose centre column lies within `patch_size` of a
    column; for each junction the worst band within ``4 * patch_size`` of it is taken
    (the refinement may move a seam a little). The ratio is the mean over those
    bands over the mean of the other patches. 1: the seams are as coherent as the
    interior; a straight cut between two different sources scores 5-20 (its
    straddling patches exist in no source).

    Parameters
    ----------
    output : (H, W, 3) image
    sources : the images whose patches the output may use (any sizes)
    junctions : columns of `output` where the sources were joined
    patch_size : int, odd side of the patches
    stride : int, take every s-th row and column of the output's patches (as
        `nearest_patch_distances`)
    """
    profile, centres = _column_profile(output, sources, patch_size, stride)
    seam = np.zeros(len(centres), bool)
    for junction in junctions:
        seam |= _worst_band(profile, centres, junction, patch_size)
    if seam.all() or not seam.any():
        raise ValueError("`junctions` must leave patches both near and away from them")
    return float(profile[seam].mean() / max(profile[~seam].mean(), 1e-12))


def seam_distance(
    output: np.ndarray,
    sources: Sequence[np.ndarray],
    junctions: Sequence[int],
    *,
    patch_size: int = PATCH_SIZE,
    stride: int = 1,
) -> float:
    """The numerator of `seam_ratio`, found from the columns near the junctions only:
    the mean over the junctions of their worst band's patch distance to the sources.

    Cheap enough to compare several collages of the same sources (it searches a few
    patch widths of columns, not the whole output), and a worse interior cannot
    lower it. `stride` as in `seam_ratio`.
    """
    output = as_image(output, "output")
    if not junctions or not all(0 <= j <= output.shape[1] for j in junctions):
        raise ValueError("`junctions` must be one or more columns of `output`")
    reach = (SEAM_REACH + 1) * patch_size + patch_size // 2
    worst = []
    for junction in junctions:
        first = max(0, junction - reach)
        near = output[:, first : junction + reach + 1]
        profile, centres = _column_profile(near, sources, patch_size, stride)
        worst.append(profile[_worst_band(profile, centres + first, junction, patch_size)].mean())
    return float(np.mean(worst))


def worst_band_distance(
    output: np.ndarray,
    sources: Sequence[np.ndarray],
    *,
    patch_size: int = PATCH_SIZE,
    stride: int = 1,
) -> float:
    """The mean patch distance to the sources of the least coherent band of columns
    anywhere in `output` (a band as in `seam_ratio`): the output's worst seam, at a
    junction or not."""
    profile, centres = _column_profile(output, sources, patch_size, stride)
    return max(profile[np.abs(centres - c) <= patch_size].mean() for c in centres)


def _column_profile(
    output: np.ndarray, sources: Sequence[np.ndarray], patch_size: int, stride: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per (strided) patch column of `output`: the mean distance of its patches to
    the nearest patch of any source, and the column of the patches' centres."""
    _check_patch_size(patch_size)
    output = as_image(output, "output")
    if not sources:
        raise ValueError("`sources` must hold at least one image")
    distances = np.min(
        [nearest_patch_distances(output, s, patch_size=patch_size, stride=stride) for s in sources],
        axis=0,
    )
    _, cols = patch_grid(output.shape[:2], patch_size)
    centres = np.arange(cols)[::stride] + patch_size // 2
    return distances.reshape(-1, len(centres)).mean(axis=0), centres


def _worst_band(
    profile: np.ndarray, centres: np.ndarray, junction: int, patch_size: int
) -> np.ndarray:
    """Mask of the columns of the least coherent band within `SEAM_REACH` patches of
    `junction` (all False when no column is that near)."""
    candidates = centres[np.abs(centres - junction) <= SEAM_REACH * patch_size]
    bands = [np.abs(centres - c) <= patch_size for c in candidates]
    return max(bands, key=lambda band: profile[band].mean(), default=np.zeros_like(centres, bool))


def structure_overlap(output: np.ndarray, structure: np.ndarray) -> float:
    """How well an analogy keeps its structure image's objects: the intersection
    over union of the two images' `gpnn.core.objects.object_mask` (the minority side
    of each one's grey Otsu threshold). 1: the output's objects sit exactly where the
    structure's are; 0: nowhere. Needs equal sizes.
    """
    output, structure = _output_and_structure(output, structure, "structure_overlap")
    wanted, found = object_mask(structure), object_mask(output)
    union = (wanted | found).sum()
    return float((wanted & found).sum() / union) if union else 1.0


def layout_agreement(output: np.ndarray, structure: np.ndarray) -> float:
    """How much of a structure image's layout an analogy's output tells, whatever
    the tones of either: the mutual information of the two images' grey levels over
    the structure's own entropy, ``I(X; Y) / H(Y)`` (the uncertainty coefficient;
    mutual information measures the alignment of images whose tones differ [4]_).
    Both are downscaled to a short side of `LAYOUT_SIDE` and cut into
    `LAYOUT_TONES` equally populated grey levels (a colour shared by many pixels,
    as a sketch's, keeps one level).

    1: the structure's tone regions can be read off the output's (a copy, an
    inverted or recoloured copy, or A's texture in B's regions); about 0: the
    output's layout tells nothing of the structure's. Unlike `structure_overlap`
    it needs no dark-on-light objects: sea under sky laid out like sand under rock
    counts. Needs equal sizes.
    """
    output, structure = _output_and_structure(output, structure, "layout_agreement")
    height, width = structure.shape[:2]
    scale = LAYOUT_SIDE / min(height, width)
    shape = (max(1, round(height * scale)), max(1, round(width * scale)))

    def tones(image: np.ndarray) -> np.ndarray:
        # The level of a grey value is its mean rank among all pixels, so that equal
        # values share a level (the flat colours of a sketch, at any share) and
        # distinct values fill the levels equally.
        # (In 8-bit steps: resizing leaves float noise on a flat colour.)
        grey = np.round(resize(image, shape).mean(axis=2).ravel() * 255)
        _, inverse, counts = np.unique(grey, return_inverse=True, return_counts=True)
        mean_rank = np.cumsum(counts) - (counts + 1) / 2
        level = (mean_rank + 0.5) * LAYOUT_TONES / grey.size
        return np.minimum(level.astype(np.int64), LAYOUT_TONES - 1)[inverse]

    joint = np.histogram2d(
        tones(output), tones(structure), bins=LAYOUT_TONES, range=[[0, LAYOUT_TONES]] * 2
    )[0]
    joint /= joint.sum()

    def entropy(p: np.ndarray) -> float:
        p = p[p > 0]
        return float(-(p * np.log(p)).sum())

    h_output, h_structure = entropy(joint.sum(axis=1)), entropy(joint.sum(axis=0))
    if h_structure == 0:
        return 1.0  # a uniform structure has no layout to follow
    return (h_output + h_structure - entropy(joint.ravel())) / h_structure


def _output_and_structure(
    output: Any, structure: Any, measure: str
) -> tuple[np.ndarray, np.ndarray]:
    output, structure = as_image(output, "output"), as_image(structure, "structure")
    if output.shape != structure.shape:
        raise ValueError(
            f"`output` is {describe_size(output.shape)} but `structure` is "
            f"{describe_size(structure.shape)}; `{measure}` needs equal sizes"
        )
    return output, structure


def patch_swd(
    output: np.ndarray,
    source: np.ndarray,
    *,
    patch_size: int = PATCH_SIZE,
    levels: int | None = None,
    ratio: float = SWD_RATIO,
    projections: int = SWD_PROJECTIONS,
    seed: int = SWD_SEED,
) -> float:
    """Sliced Wasserstein distance between the patch sets of two images.

    Parameters
    ----------
    output, source : (H, W, 3) arrays (sizes may differ)
    patch_size : int, odd side of the square patches
    levels : int or None
        Number of pyramid levels compared, the image itself being the first;
        level ``l`` has size ``ceil(H r^l) x ceil(W r^l)`` (area resizing).
        None: up to 4, as many as keep the smaller side of both images at
        ``2 p`` pixels or more.
    ratio : float in (0, 1), the downscale ratio between levels
    projections : int, the number K of random directions
    seed : int, seed of the directions (fixed, so the number is reproducible)

    Returns
    -------
    float
        ``SWD = 1/L sum_l 1/K sum_k 1/n sum_i |a_(i) - b_(i)|``: at every
        level, both patch sets are projected on K unit directions drawn
        uniformly on the sphere of dimension ``3 p^2`` (normalised Gaussians from
        ``np.random.default_rng(seed)``, the same directions at every level), the
        projections are sorted, and the mean absolute difference of the sorted
        values is the 1-Wasserstein distance along that direction. When the
        sets have different sizes both are resampled to ``n = max(|A|, |B|)``
        quantiles at ``(i + 0.5) / n`` by linear interpolation. Units: patch
        values in [0, 1] (not per-pixel MSE). 0 for identical images, and for
        any rearrangement that keeps the multiset of patches.
    """
    output = as_image(output, "output")
    source = as_image(source, "source")
    if projections < 1:
        raise ValueError("`projections` must be at least 1")
    if not 0 < ratio < 1:
        raise ValueError("`ratio` must lie in (0, 1)")
    _check_patch_size(patch_size)
    count = _swd_levels(output.shape[:2], source.shape[:2], patch_size, ratio, levels)
    dim = 3 * patch_size * patch_size
    rng = np.random.default_rng(seed)
    directions = rng.standard_normal((dim, projections))
    directions /= np.linalg.norm(directions, axis=0, keepdims=True)
    directions = directions.astype(np.float32)
    per_level = []
    for level in range(count):
        a = _project(_level(output, ratio, level), patch_size, directions)
        b = _project(_level(source, ratio, level), patch_size, directions)
        if len(a) != len(b):
            n = max(len(a), len(b))
            a, b = _quantiles(a, n), _quantiles(b, n)
        per_level.append(np.abs(a - b).mean())
    return float(np.mean(per_level))


def nn_histogram(
    distances: np.ndarray, *, edges: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Histogram of nearest-patch distances (paper Figure 10).

    Parameters
    ----------
    distances : (n,) array of per-patch MSE, e.g. from `nearest_patch_distances`
    edges : (bins + 1,) increasing array starting at 0, or None for
        `HISTOGRAM_EDGES`: ``[0, 1e-7)`` (copies) then 36 log-spaced bins
        (6 per decade) up to 0.1. Distances beyond the last edge are counted in
        the last bin.

    Returns
    -------
    counts : (bins,) float64, fractions of the patches (they sum to 1)
    edges : (bins + 1,) float64, the bin edges used
    """
    distances = np.asarray(distances, dtype=np.float64).reshape(-1)
    if distances.size == 0:
        raise ValueError("`distances` is empty")
    edges = HISTOGRAM_EDGES if edges is None else np.asarray(edges, dtype=np.float64)
    if edges.ndim != 1 or len(edges) < 2 or edges[0] != 0 or np.any(np.diff(edges) <= 0):
        raise ValueError("`edges` must be an increasing 1-D array starting at 0")
    counts, _ = np.histogram(np.clip(distances, 0.0, edges[-1]), bins=edges)
    return counts / distances.size, edges


@dataclass(frozen=True)
class SampleMetrics:
    """The metrics of one output against its source.

    The patch metrics (coherence, completeness, swd) are lower-is-better and
    perfect for a copy, so they come with the sample's `change` and
    `copied` share (None when the output has another size than the source)
    and the verdict `copy` (`is_copy`).
    """

    coherence: float
    completeness: float
    swd: float
    change: float | None = None
    copied: float | None = None

    @property
    def copy(self) -> bool:
        return self.change is not None and is_copy(self.change, self.copied)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "copy": self.copy}


def sample_metrics(
    output: np.ndarray,
    source: np.ndarray,
    *,
    patch_size: int = PATCH_SIZE,
    swd_levels: int | None = None,
    stride: int = 1,
    nearest: tuple[np.ndarray, np.ndarray] | None = None,
) -> SampleMetrics:
    """Coherence, completeness, patch SWD, change and copied share of one output
    (see each function; the last two only when the output has the source's size).

    `stride` subsamples the query patches of coherence, completeness and the
    copied share (the SWD always uses every patch). `nearest` may pass the
    output's precomputed `nearest_patches` to the source (same `stride`).
    """
    if nearest is None:
        nearest = nearest_patches(output, source, patch_size=patch_size, stride=stride)
    distances, ids = nearest
    same_size = as_image(output, "output").shape == as_image(source, "source").shape
    return SampleMetrics(
        coherence=float(np.mean(distances)),
        completeness=completeness(output, source, patch_size=patch_size, stride=stride),
        swd=patch_swd(output, source, patch_size=patch_size, levels=swd_levels),
        change=change(output, source) if same_size else None,
        copied=(
            copied_share(output, source, patch_size=patch_size, stride=stride, ids=ids)
            if same_size
            else None
        ),
    )


def _swd_levels(
    a: tuple[int, int], b: tuple[int, int], patch_size: int, ratio: float, levels: int | None
) -> int:
    smallest = min(*a, *b)
    if smallest < patch_size:
        raise ValueError(
            f"an image of {smallest} pixels on a side is smaller than one "
            f"{patch_size}x{patch_size} patch"
        )

    def fits(level: int, minimum: int) -> bool:
        return all(min(level_shape(s, ratio, level)) >= minimum for s in (a, b))

    if levels is None:
        count = 1
        while count < SWD_MAX_LEVELS and fits(count, 2 * patch_size):
            count += 1
        return count
    if levels < 1:
        raise ValueError("`levels` must be at least 1")
    if not fits(levels - 1, patch_size):
        raise ValueError(
            f"`levels` = {levels} is too many: level {levels - 1} of a {smallest}-pixel "
            f"side at ratio {ratio} is smaller than one {patch_size}x{patch_size} patch"
        )
    return levels


def _level(image: np.ndarray, ratio: float, level: int) -> np.ndarray:
    return resize(image, level_shape(image.shape[:2], ratio, level))


def _project(image: np.ndarray, patch_size: int, directions: np.ndarray) -> np.ndarray:
    """(n, K) sorted projections of the image's patches (column-wise sort)."""
    projected = extract_patches(image, patch_size) @ directions
    return np.sort(projected.astype(np.float64), axis=0)


def _quantiles(sorted_values: np.ndarray, n: int) -> np.ndarray:
    """Resample sorted columns (m, K) to n quantiles at (i + 0.5) / n."""
    m = len(sorted_values)
    if m == n:
        return sorted_values
    at = (np.arange(n) + 0.5) / n * m - 0.5  # positions in 0..m-1 units
    base = np.arange(m)
    return np.stack(
        [np.interp(at, base, sorted_values[:, k]) for k in range(sorted_values.shape[1])],
        axis=1,
    )


class _PatchIndex:
    """An exact L2 index of one patch set, searched in blocks of queries."""

    def __init__(self, keys: np.ndarray) -> None:
        self.keys = keys
        self.center = keys.mean(axis=0, dtype=np.float64).astype(np.float32)
        self.index = faiss.IndexFlatL2(keys.shape[1])
        self.index.add(keys - self.center)

    def nearest(self, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-patch MSE to the nearest key (recomputed in float64) and its index."""
        out = np.empty(len(queries), dtype=np.float64)
        nearest = np.empty(len(queries), dtype=np.int64)
        for start in range(0, len(queries), SEARCH_BLOCK):
            block = queries[start : start + SEARCH_BLOCK]
            _, ids = flat_search(self.index, block - self.center)
            diff = block.astype(np.float64) - self.keys[ids[:, 0]].astype(np.float64)
            out[start : start + len(block)] = np.einsum("ij,ij->i", diff, diff)
            nearest[start : start + len(block)] = ids[:, 0]
        return out / queries.shape[1], nearest


def _patches(image: Any, name: str, patch_size: int, stride: int = 1) -> np.ndarray:
    _check_patch_size(patch_size)
    image = as_image(image, name)
    if min(image.shape[:2]) < patch_size:
        raise ValueError(
            f"`{name}` of {describe_size(image.shape)} pixels is smaller than one "
            f"{patch_size}x{patch_size} patch"
        )
    patches = extract_patches(image, patch_size)
    if stride == 1:
        return patches
    rows, cols = image.shape[0] - patch_size + 1, image.shape[1] - patch_size + 1
    grid = patches.reshape(rows, cols, -1)[::stride, ::stride]
    return np.ascontiguousarray(grid.reshape(-1, patches.shape[1]))


def _check_patch_size(patch_size: int) -> None:
    if patch_size < 1 or patch_size % 2 == 0:
        raise ValueError("`patch_size` must be a positive odd integer")
