"""The coarse-to-fine PNN loop shared by every application.

An application describes its work as a list of `Stage`s, coarsest first: the
source patches to draw from (keys and values), the size of the output at that
stage and how many PNN iterations to run. The loop upscales the running guess
into each stage, then repeatedly replaces every query patch by the value patch
of its best key and folds the patches back.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from gpnn.core.device import Device, build_arrays, build_index, search_mode, select
from gpnn.core.fast_search import CONVERGED_FRACTION
from gpnn.core.patches import ValuePatches, patch_grid
from gpnn.core.pyramid import Shape, resize
from gpnn.core.search import DisplacedKeys


@dataclass(frozen=True)
class Progress:
    """Where a run stands; passed to the `progress` callback after each iteration.

    A callback that raises stops the run and the exception propagates (this is
    how a worker cancels a running job).
    """

    sample: int
    samples: int
    level: int
    levels: int
    iteration: int
    iterations: int
    # The level's finished image on its last event (a preview of the sample forming;
    # on the finest level, the finished sample), else None. A sample made as several
    # candidates (a collage) reports its images once one is kept.
    image: np.ndarray | None = None
    candidate: int = 0
    candidates: int = 1
    # The level after which a sample's candidates were compared; the kept one runs the
    # finer levels alone. None: one run through every level.
    compared_at: int | None = None
    # The work of each level (stage): its output's pixels times its iterations. A
    # gradual resizing's many small coarse stages are little of a run. None: alike.
    level_work: tuple[int, ...] | None = None

    @property
    def _last_shared_level(self) -> int:
        """The finest level every candidate of the sample runs."""
        return self.levels - 1 if self.compared_at is None else self.compared_at

    def sample_share(self) -> float:
        """The share of its sample's work done after this event, level i weighing its
        `level_work` in each run that goes through it: every candidate runs the levels
        up to `compared_at`, the kept one the rest."""
        weights = self.level_work or (1,) * self.levels
        shared = self._last_shared_level
        per_candidate = sum(weights[: shared + 1])
        total = self.candidates * per_candidate + sum(weights[shared + 1 :])
        done = sum(weights[: self.level]) + weights[self.level] * (
            (self.iteration + 1) / self.iterations
        )
        earlier = self.candidate if self.level <= shared else self.candidates - 1
        return (earlier * per_candidate + done) / total

    @property
    def sample_finished(self) -> bool:
        """Whether this event ends its sample (the finest level's last iteration of
        the last run through it)."""
        shared = self._last_shared_level
        return (
            self.level + 1 == self.levels
            and self.iteration + 1 == self.iterations
            and (self.level > shared or self.candidate + 1 == self.candidates)
        )


ProgressCallback = Callable[[Progress], None]


class SourceLevel:
    """The key and value patches of one pyramid level, searched many times.

    Built once per level and shared by every iteration and every sample. Its
    `arrays` hold the working image of a stage where the search runs: NumPy
    arrays on the host for the CPU and faiss-gpu backends, tensors on the GPU
    for the PyTorch backend (`gpnn.core.torch_backend`), so that a stage's
    iterations never leave the device.

    Parameters
    ----------
    keys : (m, d) array, the patches searched
    values : the patches copied into the output, one per key
    mode : "exact" or "fast" (`gpnn.core.params.SearchMode`); what "fast" does
        is the backend's (`gpnn.core.device.BACKENDS`, its `fast`)
    device : "cpu", "cuda", "cuda:N" or "auto", or a `gpnn.core.device.Device`;
        `gpnn.core.device.select` picks the backend, and raises `ValueError`
        for a combination no backend supports before anything is built
    min_shift : int >= 0; above 0 no query patch may take a key closer than this
        many pixels to its own place (`gpnn.core.search.DisplacedKeys`): the
        output must be the size of the level's one source image. Meant for the
        small coarsest levels, where a generation's layout is decided: the
        search is then exact and runs on the host, whatever `mode` and `device`.
    """

    def __init__(
        self,
        keys: np.ndarray,
        values: ValuePatches,
        *,
        mode: str = "exact",
        device: str | Device = "cpu",
        min_shift: int = 0,
    ) -> None:
        if len(keys) == 0:
            raise ValueError("no valid source patch at this pyramid level (hole too large?)")
        if min_shift < 0:
            raise ValueError(f"`min_shift` must be >= 0, got {min_shift}")
        self.values, self.min_shift = values, min_shift
        self.mode = search_mode(mode)
        self.placement = select("cpu" if min_shift else device, self.mode)
        self.backend = self.placement.backend
        if min_shift:
            self.index = _displaced_keys(keys, values, min_shift)
        else:
            self.index = build_index(keys, mode=self.mode, placement=self.placement)
        self.arrays = build_arrays(values, placement=self.placement)

    def nearest(
        self, queries: Any, alpha: float, hint: Any = None, grid: Shape | None = None
    ) -> Any:
        """(n,) int64 index of the best key of each query row.

        `grid` (rows, cols): how the queries tile the output; with it, the fast
        search also tries each neighbour's previous match, shifted.

        `hint` (n,) int64, optional: a candidate match per query (the previous
        iteration's), used in fast mode by backends that propagate matches.
        """
        if not self._propagates or (hint is not None and len(hint) != len(queries)):
            hint = None
        if hint is not None and grid is not None:
            hint = self.arrays.neighbour_candidates(hint, grid)
        return self.index.nearest(queries, alpha, hint)

    @property
    def _propagates(self) -> bool:
        return self.mode == "fast" and self.placement.spec.propagation and not self.min_shift

    def candidates_from(
        self, coarser: SourceLevel, chosen: Any, coarse_shape: Shape, shape: Shape
    ) -> np.ndarray | None:
        """Candidates for a stage's first iteration from the previous stage's
        matches (`ValuePatches.upscaled_candidates`), in fast mode on a backend
        that takes them (the CPU's): they replace the inverted file's probe
        there. None elsewhere, and where patches around an inpainting hole are
        left out (the probe finds those positions' candidates better)."""
        if (
            self.mode != "fast"
            or self.min_shift
            or not (
                self.placement.spec.stage_candidates and coarser.placement.spec.stage_candidates
            )
        ):
            return None
        if not (self.values.complete and coarser.values.complete):
            return None
        return self.values.upscaled_candidates(coarser.values, chosen, coarse_shape, shape)

    def converged(self, previous: Any, chosen: Any) -> bool:
        """Whether a level's iterations may stop: in fast mode, once fewer than
        `CONVERGED_FRACTION` of the matches changed since the previous iteration.

        Always False in exact mode, which runs every iteration.
        """
        if self.mode != "fast" or previous is None or len(previous) != len(chosen):
            return False
        return float((previous != chosen).sum()) / len(chosen) < CONVERGED_FRACTION


def _displaced_keys(keys: np.ndarray, values: ValuePatches, min_shift: int) -> DisplacedKeys:
    if len(values.images) != 1:
        raise ValueError("a displaced search needs a level with one source image")
    _, y, x = values.positions(np.arange(len(values)))
    grid = patch_grid(values.image_shape(0), values.patch_size)
    return DisplacedKeys(keys, np.stack([y, x], axis=1), grid, min_shift)


@dataclass(frozen=True)
class Known:
    """Pixels that must keep the input's values (outside an inpainting hole)."""

    free: np.ndarray  # (H, W, 1) bool: True where the engine may change the pixel
    image: np.ndarray  # (H, W, 3) the input at this level


@dataclass(frozen=True)
class Stage:
    source: SourceLevel
    shape: Shape
    iterations: int
    known: Known | None = None
    # The stage's own alpha; None: `refine`'s.
    alpha: float | None = None
    # (H, W, C) channels appended to every query patch (an analogy's structure); the
    # source level's keys then carry C matching channels of the source.
    guide: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.source.min_shift and tuple(self.shape) != self.source.values.image_shape(0):
            raise ValueError("a displaced level's stage must be the size of its source image")
        if self.guide is not None and self.guide.shape[:2] != tuple(self.shape):
            raise ValueError("a stage's guide must be the stage's size")


def refine(
    guess: np.ndarray,
    stages: Sequence[Stage],
    *,
    patch_size: int,
    alpha: float,
    report: Callable[[int, int, int, int, np.ndarray | None], None] | None = None,
) -> np.ndarray:
    """Run PNN over `stages`, starting from `guess`; returns the final image."""
    run = refine_stages(guess, stages, patch_size=patch_size, alpha=alpha, report=report)
    last = deque(run, maxlen=1)
    return last[0] if last else guess


def refine_stages(
    guess: np.ndarray,
    stages: Sequence[Stage],
    *,
    patch_size: int,
    alpha: float,
    report: Callable[[int, int, int, int, np.ndarray | None], None] | None = None,
) -> Iterator[np.ndarray]:
    """`refine`, a stage at a time: yields the image after each stage, so that a caller
    can compare runs part way and go on with one (its matches carried on as hints).

    Each iteration hands the previous iteration's matches to the search as a
    hint, and a stage's first iteration the previous stage's matches (in the CPU
    fast mode, see `SourceLevel.candidates_from`); a stage ends early once its
    source level says the matches have converged (fast mode only), and reports
    its remaining iterations as done.
    """
    image, last_stage, last_matches = guess, None, None
    for number, stage in enumerate(stages):
        grid = patch_grid(stage.shape, patch_size)
        source, arrays = stage.source, stage.source.arrays
        working = arrays.upload(resize(image, stage.shape))
        if stage.known is not None:
            free, known = arrays.upload(stage.known.free), arrays.upload(stage.known.image)
        guide = None if stage.guide is None else arrays.upload(stage.guide)
        first_hint = None
        if last_stage is not None and last_matches is not None:
            first_hint = source.candidates_from(
                last_stage.source, last_matches, last_stage.shape, stage.shape
            )
        chosen = None
        stage_alpha = alpha if stage.alpha is None else stage.alpha
        for iteration in range(stage.iterations):
            queries = arrays.extract(working, guide)
            if chosen is None:
                previous, chosen = None, source.nearest(queries, stage_alpha, first_hint)
            else:
                previous, chosen = chosen, source.nearest(queries, stage_alpha, chosen, grid)
            working = arrays.fold(chosen, stage.shape)
            if stage.known is not None:
                working = arrays.keep(working, free, known)
            converged = source.converged(previous, chosen)
            if converged or iteration == stage.iterations - 1:
                image = arrays.download(working)
                if report is not None:
                    report(number, len(stages), stage.iterations - 1, stage.iterations, image)
                break
            if report is not None:
                report(number, len(stages), iteration, stage.iterations, None)
        last_stage, last_matches = stage, chosen
        yield image
