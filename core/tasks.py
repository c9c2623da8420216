"""The six applications of GPNN (paper section 4) as plain functions.

Each one turns its inputs into an initial guess at the coarsest level and a
list of `Stage`s, then hands them to `pnn.refine`. Pyramids and key indices are
built once per call and shared by all samples.
"""

from __future__ import annotations

import itertools
import math
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any, NamedTuple

import cv2
import numpy as np

from gpnn.core.device import Device, select
from gpnn.core.imageio import as_image, check_same_size, describe_size
from gpnn.core.metrics import seam_distance, worst_band_distance
from gpnn.core.objects import object_mask, object_sides
from gpnn.core.params import (
    AnalogyParams,
    CollageParams,
    CommonParams,
    EditParams,
    GenerateParams,
    InpaintParams,
    RetargetParams,
    Task,
    check_samples,
    params_for,
)
from gpnn.core.patches import ValuePatches, extract_patches, patch_grid, patches_inside
from gpnn.core.pnn import (
    Known,
    Progress,
    ProgressCallback,
    SourceLevel,
    Stage,
    refine,
    refine_stages,
)
from gpnn.core.pyramid import (
    Shape,
    build_pyramid,
    common_height,
    depth_for,
    gradual_shapes,
    level_shape,
    resize,
)

# Named inputs of each task; "sources" is a list, the others one image each.
# The mask of inpainting is optional when `color` is given.
TASK_INPUTS: dict[Task, tuple[str, ...]] = {
    Task.generate: ("source",),
    Task.retarget: ("source",),
    Task.analogy: ("source", "structure"),
    Task.inpaint: ("source", "mask"),
    Task.collage: ("sources",),
    Task.edit: ("source", "edited"),
}
OPTIONAL_INPUTS = {(Task.inpaint, "mask")}

# Gradual resizing starts from a coarsest level whose short side is this many
# patches. The paper suggests about 4; with 2.5 objects keep their shape when the
# aspect ratio changes (a 250x188 photo widened 1.6x: round objects stay round
# at 2.5 and come out stretched at 4).
RESIZE_COARSEST_PATCHES = 2.5

# Patch positions of the largest level a generation's layout levels may be: their
# displaced search is exact, on the host, and its cost grows with the square of
# this. At the automatic depth the three coarsest levels hold under 1000 positions
# at any image size; a small user `depth` would otherwise put a large level there.
LAYOUT_MAX_PATCHES = 4096

# Colour distance (in 0..255 units, per channel) under which a pixel belongs to
# the user's uniformly coloured region; room for JPEG ringing.
COLOR_TOLERANCE = 12
# Pixels around that region that belong to the hole too: JPEG blurs a painted edge
# over 2-3 pixels (8x8 blocks, colour at half resolution) into colours between the
# paint and the photo, which no tolerance catches and which would stay as a frame.
COLOR_FRINGE = 3


def generate(
    source: np.ndarray,
    params: GenerateParams | None = None,
    *,
    samples: int = 1,
    progress: ProgressCallback | None = None,
    device: str | Device = "cpu",
    **overrides: Any,
) -> list[np.ndarray]:
    """Random samples with the patch distribution of `source` (paper section 3).

    The coarsest level of the source plus N(0, sigma^2) noise is matched
    `noise_rounds` times, with fresh noise each round and every patch taken at
    least `min_shift` pixels from its own place (`_noisy_rounds`): a random
    walk of the layout away from the source's. The `layout_levels` coarsest
    levels then run with `layout_alpha` and the same displacement (`Layout`), the
    finer ones with `alpha`. One round, `min_shift=0` and `layout_levels=0` is the
    paper's single noisy step (plus one noise-free iteration).
    """
    params = _resolve(Task.generate, params, overrides, samples, device)
    source = as_image(source, "source")
    p = params.patch_size
    depth = _depth(params, depth_for(min(source.shape[:2]), 2 * p, params.ratio))
    pyramid = _pyramid(source, params, depth, "source")
    shapes = [level.shape[:2] for level in pyramid]
    layout = Layout(params.layout_levels, params.layout_alpha, params.min_shift)
    stages = _stages([pyramid], params, device, shapes, layout=layout)
    coarsest = pyramid[-1]
    return _sample_all(params, samples, progress, stages, _noisy_rounds(coarsest, params))


def retarget(
    source: np.ndarray,
    params: RetargetParams | None = None,
    *,
    samples: int = 1,
    progress: ProgressCallback | None = None,
    device: str | Device = "cpu",
    **overrides: Any,
) -> list[np.ndarray]:
    """Resize `source` to (height, width) keeping its patch distribution; an
    unset side keeps the source's.

    The resizing is gradual: at the coarsest level the guess grows or shrinks in
    steps of at most `step` per axis, each followed by PNN iterations with the
    completeness-favouring alpha; finer levels then add the detail.
    """
    params = _resolve(Task.retarget, params, overrides, samples, device)
    source = as_image(source, "source")
    target = (params.height or source.shape[0], params.width or source.shape[1])
    extent = min(*source.shape[:2], *target)
    depth = _depth(
        params, depth_for(extent, RESIZE_COARSEST_PATCHES * params.patch_size, params.ratio)
    )
    pyramid = _pyramid(source, params, depth, "source")
    output_shapes = _output_shapes(target, params, depth, "target size")
    stages = _stages([pyramid], params, device, output_shapes, start=pyramid[-1].shape[:2])
    return _sample_all(params, samples, progress, stages, lambda rng: pyramid[-1])


def analogy(
    source: np.ndarray,
    structure: np.ndarray,
    params: AnalogyParams | None = None,
    *,
    samples: int = 1,
    progress: ProgressCallback | None = None,
    device: str | Device = "cpu",
    **overrides: Any,
) -> list[np.ndarray]:
    """The patches of `source` (A) arranged like `structure` (B): structural
    analogy, or sketch-to-image when B is a sketch. The output has B's size."""
    params = _resolve(Task.analogy, params, overrides, samples, device)
    source = as_image(source, "source")
    structure = as_image(structure, "structure")
    depth = _depth(params, _object_depth(structure, params))
    pyramid = _pyramid(source, params, depth, "source")
    output_shapes = _output_shapes(structure.shape[:2], params, depth, "structure")
    guide = (
        StructureGuide.of(pyramid, structure, params.structure_weight)
        if params.structure_weight > 0
        else None
    )
    stages = _stages([pyramid], params, device, output_shapes, guide=guide)
    passes = stages + stages if params.refine else stages
    return _sample_all(params, samples, progress, passes, lambda rng: structure)


def inpaint(
    source: np.ndarray,
    mask: np.ndarray | None = None,
    params: InpaintParams | None = None,
    *,
    samples: int = 1,
    progress: ProgressCallback | None = None,
    device: str | Device = "cpu",
    **overrides: Any,
) -> list[np.ndarray]:
    """Fill the hole of `source`, steered by the colour painted into it.

    `mask` is a boolean (H, W) array, True in the hole; without it the hole is
    the region of `color`. Patches that touch the hole are never keys or values.
    Pixels outside the hole keep the input's values exactly.
    """
    params = _resolve(Task.inpaint, params, overrides, samples, device)
    source = as_image(source, "source")
    hole = find_hole(source, mask, params.color)
    rows, cols = np.nonzero(hole)
    extent = max(rows.max() - rows.min() + 1, cols.max() - cols.min() + 1)
    p = params.patch_size
    default = min(
        depth_for(extent, p, params.ratio),
        depth_for(min(source.shape[:2]), 2 * p, params.ratio),
    )
    depth = _depth(params, _deepest_with_keys(hole, params, default))
    pyramid = _pyramid(source, params, depth, "source")
    holes = [resize(hole.astype(np.float32), level.shape[:2]) > 0 for level in pyramid]
    stages = _stages(
        [pyramid], params, device, [level.shape[:2] for level in pyramid], holes=[holes]
    )
    stages = [
        Stage(stage.source, stage.shape, stage.iterations, Known(h[:, :, None], level))
        for stage, h, level in zip(stages, holes[::-1], pyramid[::-1], strict=True)
    ]
    return _sample_all(params, samples, progress, stages, lambda rng: pyramid[-1])


def collage(
    sources: Sequence[np.ndarray],
    params: CollageParams | None = None,
    *,
    samples: int = 1,
    progress: ProgressCallback | None = None,
    device: str | Device = "cpu",
    **overrides: Any,
) -> list[np.ndarray]:
    """Merge `sources` into one coherent image holding patches of all of them.

    The sources are scaled to a common height and concatenated left to right.
    At the coarsest level that concatenation goes through `noise_rounds` noisy PNN
    steps with displaced patches (as a generation's start, with less noise), so
    patches cross the junctions and the sources merge instead of meeting at a
    straight seam (the plain concatenation is a fixed point of PNN: every patch
    is its own best match). Keys and values come from every source, alpha is
    small (completeness) and a different output size is reached gradually. Where
    the sources still meet badly depends on the noise, so each sample is the best
    of `candidates` runs: the one whose worst band of patches near a junction, plus
    its worst band anywhere, is nearest to the sources
    (`gpnn.core.metrics.seam_distance`, `worst_band_distance`).
    """
    params = _resolve(Task.collage, params, overrides, samples, device)
    if len(sources) < 2:
        raise ValueError("`sources` must hold at least two images (a collage merges them)")
    images = [as_image(s, f"sources[{i}]") for i, s in enumerate(sources)]
    shapes = common_height([image.shape[:2] for image in images])
    images = [resize(image, shape) for image, shape in zip(images, shapes, strict=True)]
    height = shapes[0][0]
    joined = np.concatenate(images, axis=1)
    target = (params.height or joined.shape[0], params.width or joined.shape[1])
    extent = min(height, *target)
    depth = _depth(
        params, depth_for(extent, RESIZE_COARSEST_PATCHES * params.patch_size, params.ratio)
    )
    pyramids = [_pyramid(image, params, depth, f"sources[{i}]") for i, image in enumerate(images)]
    output_shapes = _output_shapes(target, params, depth, "collage size")
    start = level_shape(joined.shape[:2], params.ratio, depth)
    stages = _stages(pyramids, params, device, output_shapes, start=start)
    edges = np.cumsum([image.shape[1] for image in images])[:-1] / joined.shape[1]
    junctions = [round(x * start[1]) for x in edges]
    guess = _noisy_rounds(resize(joined, start), params, _apart_from(junctions, start, params))

    def seam(output: np.ndarray) -> float:
        # The junction's worst band, plus the worst anywhere: a run that meets better
        # at the junction but has a worse flaw elsewhere is not the better collage.
        # Scored at a level part way, against the sources at its height.
        level = output.shape[0]
        scaled = [resize(i, (level, max(1, round(i.shape[1] * level / height)))) for i in images]
        at = [round(x * output.shape[1]) for x in edges]
        options = {"patch_size": params.patch_size, "stride": 2}
        return seam_distance(output, scaled, at, **options) + worst_band_distance(
            output, scaled, **options
        )

    return _sample_all(params, samples, progress, stages, guess, params.runs_per_sample, seam)


def _apart_from(junctions: Sequence[int], shape: tuple[int, int], params: Any) -> np.ndarray:
    """Per patch position of an image of `shape`: False where the patch straddles one of
    the `junction` columns, or touches the column the downscaling blended across it."""
    p = params.patch_size
    rows, cols = patch_grid(shape, p)
    left = np.arange(cols)
    valid = np.ones(cols, bool)
    for junction in junctions:
        valid &= (left + p <= junction - 1) | (left >= junction + 1)
    return np.tile(valid, rows)


def edit(
    source: np.ndarray,
    edited: np.ndarray,
    params: EditParams | None = None,
    *,
    samples: int = 1,
    progress: ProgressCallback | None = None,
    device: str | Device = "cpu",
    **overrides: Any,
) -> list[np.ndarray]:
    """Make a naive edit of `source` (`edited`, same size) coherent; optional
    noise (`sigma`) gives several solutions."""
    params = _resolve(Task.edit, params, overrides, samples, device)
    source = as_image(source, "source")
    edited = as_image(edited, "edited")
    check_same_size(edited, "edited", source)
    default = depth_for(min(source.shape[:2]), 4 * params.patch_size, params.ratio)
    depth = _depth(params, default)
    pyramid = _pyramid(source, params, depth, "source")
    stages = _stages([pyramid], params, device, [level.shape[:2] for level in pyramid])
    coarse_edit = resize(edited, pyramid[-1].shape[:2])
    return _sample_all(
        params,
        samples,
        progress,
        stages,
        lambda rng: coarse_edit + _noise(rng, params.sigma, coarse_edit.shape),
    )


def run_task(
    params: CommonParams,
    inputs: Mapping[str, Any],
    *,
    samples: int = 1,
    progress: ProgressCallback | None = None,
    device: str | Device = "cpu",
) -> list[np.ndarray]:
    """Run the application named by `params.task` on named `inputs`.

    `inputs` holds the names of `TASK_INPUTS[task]`: images as (H, W, 3)
    arrays, `sources` as a list of them, `mask` as a boolean (H, W) array.
    `device` is "cpu", "cuda", "cuda:N" or "auto" (a GPU when one is usable).
    """
    task = Task(params.task)  # type: ignore[attr-defined]
    for name in TASK_INPUTS[task]:
        if name not in inputs and (task, name) not in OPTIONAL_INPUTS:
            raise ValueError(f"task `{task}` needs the input `{name}`")
    unknown = set(inputs) - set(TASK_INPUTS[task])
    if unknown:
        raise ValueError(f"task `{task}` takes no input `{sorted(unknown)[0]}`")
    run = {
        Task.generate: generate,
        Task.retarget: retarget,
        Task.analogy: analogy,
        Task.inpaint: inpaint,
        Task.collage: collage,
        Task.edit: edit,
    }[task]
    return run(**inputs, params=params, samples=samples, progress=progress, device=device)


def _resolve(
    task: Task,
    params: CommonParams | None,
    overrides: Mapping[str, Any],
    samples: int,
    device: str | Device,
) -> Any:
    """The task's parameters, checked with the number of samples and the device
    (`gpnn.core.device.select`: a backend here runs the mode on it) before any work."""
    if params is None:
        params = params_for(task, **overrides)
    elif overrides:
        params = params_for(task, **{**params.model_dump(exclude={"task"}), **overrides})
    elif params.task != task:  # type: ignore[attr-defined]
        raise ValueError(f"parameters for `{params.task}` given to `{task}`")  # type: ignore[attr-defined]
    check_samples(params, samples)
    select(device, params.mode)
    return params


def _deepest_with_keys(hole: np.ndarray, params: CommonParams, depth: int) -> int:
    """The deepest pyramid, at most `depth`, whose every level keeps a patch wholly
    outside the hole there and the coarser hole upscaled (a key to copy from, as
    `_source_levels` takes them): a hole of half the image's height shrunk to one
    patch would leave none."""
    for deepest in range(depth, 0, -1):
        shapes = [level_shape(hole.shape[:2], params.ratio, n) for n in range(deepest + 1)]
        holes = [resize(hole.astype(np.float32), shape) > 0 for shape in shapes]
        if all(patches_inside(h, params.patch_size).any() for h in _key_holes(holes)):
            return deepest
    return 0


def _key_holes(holes: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Per level (finest first), where no key patch may reach: the level's hole and the
    coarser level's upscaled, since a key is the coarser level's pixels."""
    coarser = [resize(c.astype(np.float32), h.shape) > 0 for h, c in itertools.pairwise(holes)]
    return [h | c for h, c in zip(holes, coarser, strict=False)] + [holes[-1]]


def find_hole(source: np.ndarray, mask: Any, color: tuple[int, int, int] | None) -> np.ndarray:
    """The hole an inpainting fills, True inside: `mask` (> 0.5), or the pixels of
    `color` and their JPEG-blurred edge; ValueError when it is empty, everything, or
    given both ways."""
    if mask is not None and color is not None:
        raise ValueError("give the hole as a `mask` or a `color`, not both")
    if mask is not None:
        hole = np.asarray(mask)
        if hole.ndim == 3:
            hole = hole.mean(axis=2)
        check_same_size(hole, "mask", source)
        hole = hole > 0.5 if hole.dtype != bool else hole
    elif color is not None:
        distance = np.abs(source * 255.0 - np.asarray(color, dtype=np.float32)).max(axis=2)
        hole = _grow(distance <= COLOR_TOLERANCE, COLOR_FRINGE)
    else:
        raise ValueError("inpainting needs a `mask` or the `color` of the region to fill")
    if not hole.any():
        raise ValueError("the hole is empty: the `mask` (or `color`) marks no pixel")
    if hole.all():
        raise ValueError("the hole covers the whole image: nothing is left to copy from")
    return hole


def _grow(mask: np.ndarray, pixels: int) -> np.ndarray:
    """`mask` with every pixel within `pixels` of it (a disc) added."""
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * pixels + 1, 2 * pixels + 1))
    return cv2.dilate(mask.astype(np.uint8), disc).astype(bool)


# The authors' analogy depth; an analogy goes shallower only for small objects.
ANALOGY_DEPTH = 5


def _object_depth(structure: np.ndarray, params: CommonParams) -> int:
    """The analogy's depth from the size of the structure's objects (paper section 4:
    "N may change between pairs of images according to the change in object sizes").

    The objects are the connected regions of the minority class of the structure's
    Otsu threshold, specks smaller than a patch left out; the depth is the largest that
    keeps their median longer side at least one patch at the coarsest level, at most
    `ANALOGY_DEPTH`. Deeper, a small object shrinks below a patch, cannot steer the
    coarsest layout and comes back as a smear or not at all.
    """
    sides = object_sides(object_mask(structure), min_side=params.patch_size)
    if len(sides) == 0:
        return ANALOGY_DEPTH
    keeps_a_patch = math.floor(
        math.log(params.patch_size / float(np.median(sides))) / math.log(params.ratio)
    )
    return max(0, min(ANALOGY_DEPTH, keeps_a_patch))


def _depth(params: CommonParams, default: int) -> int:
    return default if params.depth is None else params.depth


def _pyramid(image: np.ndarray, params: CommonParams, depth: int, name: str) -> list[np.ndarray]:
    _check_coarsest(image.shape[:2], params, depth, name)
    return build_pyramid(image, params.ratio, depth)


def _output_shapes(shape: Shape, params: CommonParams, depth: int, name: str) -> list[Shape]:
    _check_coarsest(shape, params, depth, name)
    return [level_shape(shape, params.ratio, n) for n in range(depth + 1)]


def _check_coarsest(shape: Shape, params: CommonParams, depth: int, name: str) -> None:
    coarsest = level_shape(shape, params.ratio, depth)
    if min(coarsest) < params.patch_size:
        raise ValueError(
            f"`{name}` of {describe_size(shape)} pixels is too small for depth {depth} at "
            f"ratio {params.ratio}: its coarsest level ({describe_size(coarsest)}) is "
            f"smaller than one {params.patch_size}x{params.patch_size} patch"
        )


class Layout(NamedTuple):
    """A generation's layout levels: its `levels` coarsest levels, where the layout is
    decided, run with `alpha` and every match `min_shift` pixels from its own place
    (see docs/engine.md, "Why samples lost their small objects"). Only levels of at
    most `LAYOUT_MAX_PATCHES` patch positions count."""

    levels: int
    alpha: float
    min_shift: int

    def of(self, shapes: Sequence[Shape], patch_size: int) -> list[bool]:
        """Per level of these (H, W) `shapes` (finest first), whether it is a layout level."""
        coarsest = len(shapes) - 1
        return [
            coarsest - n < self.levels
            and math.prod(patch_grid(shape, patch_size)) <= LAYOUT_MAX_PATCHES
            for n, shape in enumerate(shapes)
        ]


NO_LAYOUT = Layout(0, math.inf, 0)


class StructureGuide(NamedTuple):
    """An analogy's structure at every level, not only in its start (docs/engine.md).

    The structure's grey image, its mean and spread matched to the source's (so
    that a structure in other tones still steers, as the luminance remapping of
    Hertzmann et al.'s Image Analogies), is one more channel of every query patch;
    the source's own grey is the matching channel of every key. Both are scaled by
    the weight: 0 leaves the structure to the start alone (the paper's recipe).
    """

    source: list[np.ndarray]  # (h, w, 1) weighted grey of each source level, finest first
    structure: np.ndarray  # (H, W, 1) the structure's remapped grey, unweighted
    weight: float

    @classmethod
    def of(cls, pyramid: list[np.ndarray], structure: np.ndarray, weight: float) -> StructureGuide:
        greys = [level.mean(axis=2, keepdims=True) for level in pyramid]
        grey = structure.mean(axis=2, keepdims=True)
        spread = grey.std()
        scale = greys[0].std() / spread if spread > 0 else 0.0
        remapped = np.clip((grey - grey.mean()) * scale + greys[0].mean(), 0.0, 1.0)
        return cls([weight * g for g in greys], remapped.astype(np.float32), weight)

    def at(self, shape: Shape) -> np.ndarray:
        """The weighted query channel at an output stage of `shape`."""
        return self.weight * resize(self.structure, shape)


def _source_levels(
    pyramids: Sequence[list[np.ndarray]],
    params: CommonParams,
    device: str | Device,
    holes: Sequence[list[np.ndarray]] | None,
    min_shifts: Sequence[int],
    key_guides: Sequence[list[np.ndarray]] | None = None,
) -> list[SourceLevel]:
    """Keys and values of each level (finest first), pooled over all sources.

    Values are the patches of a source level; keys the patches of the coarser
    level upscaled to this size (the coarsest level is its own key), with the
    channels of `key_guides[s][n]` appended where given. Level `n` keeps every
    match `min_shifts[n]` away from its own place.
    """
    depth = len(pyramids[0]) - 1
    patch_size = params.patch_size
    key_holes = None if holes is None else [_key_holes(h) for h in holes]
    levels = []
    for n in range(depth + 1):
        images = [pyramid[n] for pyramid in pyramids]
        keys, valid = [], []
        for s, image in enumerate(images):
            shape = image.shape[:2]
            key_image = image if n == depth else resize(pyramids[s][n + 1], shape)
            if key_guides is not None:
                key_image = np.concatenate((key_image, key_guides[s][n]), axis=2)
            key = extract_patches(key_image, patch_size)
            if holes is not None:
                valid.append(patches_inside(key_holes[s][n], patch_size))
                key = key[valid[-1]]
            keys.append(key)
        if holes is not None and not any(len(key) for key in keys):
            size, patch = describe_size(images[0].shape), f"{patch_size}x{patch_size}"
            raise ValueError(
                f"at the {size} pyramid level no {patch} patch lies wholly outside the "
                "hole, so there is nothing to copy from: the hole (the mask, or every "
                "pixel of the `color`, wherever it is) covers too much of the image; "
                "paint a smaller region, in a colour found nowhere else, or give a "
                "smaller `depth`"
            )
        values = ValuePatches.of_images(images, patch_size, valid if holes is not None else None)
        levels.append(
            SourceLevel(
                np.concatenate(keys),
                values,
                mode=params.mode,
                device=device,
                min_shift=min_shifts[n],
            )
        )
    return levels


def _stages(
    pyramids: Sequence[list[np.ndarray]],
    params: CommonParams,
    device: str | Device,
    output_shapes: Sequence[Shape],
    *,
    start: Shape | None = None,
    holes: Sequence[list[np.ndarray]] | None = None,
    layout: Layout = NO_LAYOUT,
    guide: StructureGuide | None = None,
) -> list[Stage]:
    """Coarsest stage(s) first, then one stage per finer level.

    With `start`, the coarsest level is reached gradually from that size. The
    `layout` levels (a generation's: each stage the size of its level) run with
    `layout.alpha` and displaced matches. A `guide` is appended to every query
    and, from the (one) source's side, to every key.
    """
    if start is not None and layout.levels:
        raise ValueError("layout levels need stages the size of their source levels")
    in_layout = layout.of(output_shapes, params.patch_size)
    min_shifts = [layout.min_shift if is_layout else 0 for is_layout in in_layout]
    key_guides = None if guide is None else [guide.source]
    levels = _source_levels(pyramids, params, device, holes, min_shifts, key_guides)
    alphas = [layout.alpha if is_layout else None for is_layout in in_layout]
    depth = len(levels) - 1
    coarsest = output_shapes[depth]
    coarse_shapes = [coarsest] if start is None else gradual_shapes(start, coarsest, params.step)  # type: ignore[attr-defined]

    def stage(n: int, shape: Shape, iterations: int) -> Stage:
        query_guide = None if guide is None else guide.at(shape)
        return Stage(levels[n], shape, iterations, alpha=alphas[n], guide=query_guide)

    stages = [stage(depth, shape, params.coarsest_iterations) for shape in coarse_shapes]
    stages += [stage(n, output_shapes[n], params.iterations) for n in range(depth - 1, -1, -1)]
    return stages


def _noisy_rounds(
    start: np.ndarray, params: Any, valid: np.ndarray | None = None
) -> Callable[[np.random.Generator], np.ndarray]:
    """The initial guess of a sample: `params.noise_rounds` PNN steps on `start`
    (keys = values = its patches where `valid`), each after fresh N(0, sigma^2)
    noise, with every patch displaced by at least `min_shift`.

    The noise alone leaves many coarsest patches matched to themselves or a pixel
    away, and PNN's finer levels then lock onto the source's own layout (see
    docs/engine.md, "Why samples came out as copies"); after a displaced step every
    patch of the guess comes from elsewhere, so every sample is a new arrangement.
    A collage's `valid` leaves out the patches that straddle a junction of its
    sources, which exist in no source. Built once per call, on the host: the
    coarsest level is a few hundred patches.
    """
    p, shape = params.patch_size, start.shape[:2]
    keys = extract_patches(start, p)
    if valid is not None:
        keys = keys[valid]
    values = ValuePatches.of_images([start], p, None if valid is None else [valid])
    step = Stage(SourceLevel(keys, values, min_shift=params.min_shift), shape, 1)

    def initial_guess(rng: np.random.Generator) -> np.ndarray:
        guess = start
        for _ in range(params.noise_rounds):
            noisy = guess + _noise(rng, params.sigma, start.shape)
            guess = refine(noisy, [step], patch_size=p, alpha=params.alpha)
        return guess

    return initial_guess


def _noise(rng: np.random.Generator, sigma: float, shape: tuple[int, ...]) -> np.ndarray:
    return (sigma * rng.standard_normal(shape)).astype(np.float32)


def _sample_all(
    params, samples, progress, stages, initial_guess, candidates=1, seam=None
) -> list[np.ndarray]:
    """Run every sample from its own seed. With `candidates` > 1 each sample is started
    that many times, sample i from seeds ``seed + i * candidates`` onwards; the runs go
    as far as `params.levels_run_alone` levels before the finest, the one of least
    `seam` there goes on alone, and only it reports images."""
    levels = len(stages)
    compared_at = levels - 1 - min(params.levels_run_alone, levels - 1)
    level_work = tuple(stage.shape[0] * stage.shape[1] * stage.iterations for stage in stages)
    outputs = []
    for sample in range(samples):
        runs = []
        for candidate in range(candidates):
            rng = np.random.default_rng(params.seed + sample * candidates + candidate)
            event = partial(
                Progress,
                sample,
                samples,
                candidate=candidate,
                candidates=candidates,
                compared_at=compared_at,
                level_work=level_work,
            )

            def report(level, levels, iteration, iterations, image, event=event):
                if progress is not None:
                    kept = candidates == 1 or level > compared_at
                    progress(event(level, levels, iteration, iterations, image if kept else None))

            run = refine_stages(
                initial_guess(rng),
                stages,
                patch_size=params.patch_size,
                alpha=params.alpha,
                report=report,
            )
            image = next(itertools.islice(run, compared_at, None))
            runs.append((seam(image) if candidates > 1 else 0.0, candidate, image, run))
        *_, image, run = min(runs, key=lambda r: r[:2])
        rest = deque(run, maxlen=1)  # the kept run goes on alone
        image = rest[0] if rest else image
        if candidates > 1 and compared_at == levels - 1 and progress is not None:
            # Compared after the finest level: the kept sample has not been shown yet.
            iterations = stages[-1].iterations
            kept_event = Progress(
                sample,
                samples,
                levels - 1,
                levels,
                iterations - 1,
                iterations,
                image,
                candidate=candidates - 1,
                candidates=candidates,
                compared_at=compared_at,
                level_work=level_work,
            )
            progress(kept_event)
        outputs.append(image)
    return outputs
