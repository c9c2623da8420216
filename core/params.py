"""Parameters of the six GPNN applications, defined once.

The library, the CLI and the REST API all read these models, so every default
and every range lives here and nowhere else. Defaults are the authors'
(Granot et al. 2022, section 4, and their public code).

A model validates itself on construction; invalid values raise
`ValueError` (pydantic's `ValidationError` is one) before any expensive work.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from enum import StrEnum
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_serializer,
    field_validator,
    model_validator,
)


class Task(StrEnum):
    generate = "generate"
    retarget = "retarget"
    analogy = "analogy"
    inpaint = "inpaint"
    collage = "collage"
    edit = "edit"


class SearchMode(StrEnum):
    """How the patch nearest-neighbour search is done.

    `exact`: every query against every key, exact alpha normalisation.
    `fast`: approximate FAISS indices for the candidates, re-scored exactly.
    """

    exact = "exact"
    fast = "fast"


def _ratio(default: float) -> Any:
    return Field(default, gt=0.3, lt=1.0, description="Pyramid downscale ratio per level.")


def _depth(default: int | None) -> Any:
    return Field(
        default,
        ge=0,
        le=20,
        description="Number of downscalings N (the pyramid has N + 1 levels); "
        "unset: chosen from the image and the application.",
    )


def _coarsest_iterations(default: int) -> Any:
    return Field(default, ge=1, le=50, description="PNN iterations at the coarsest level.")


def _alpha(default: float) -> Any:
    return Field(
        default,
        gt=0,
        description="Completeness knob of the score D / (alpha + min D): small favours "
        "completeness, inf turns the normalisation off.",
    )


def _sigma(default: float) -> Any:
    return Field(
        default, ge=0, le=5, description="Std of the Gaussian noise added at the coarsest level."
    )


def _noise_rounds(default: int, minimum: int, what: str) -> Any:
    return Field(
        default,
        ge=minimum,
        le=20,
        description="Noisy PNN steps at the coarsest level, each with fresh noise and "
        f"displaced patches (`min_shift`): {what}",
    )


def _min_shift(default: int, where: str) -> Any:
    return Field(
        default,
        ge=0,
        le=8,
        description=f"In every noisy round{where} each patch takes a source patch at least "
        "this many pixels (of its level) from its own place, so that no sample keeps or "
        "walks back to the input's layout; 0: plain nearest neighbour.",
    )


def _size(axis: str) -> Any:
    return Field(None, ge=8, le=8192, description=f"Output {axis} in pixels; unset: the input's.")


def _step() -> Any:
    return Field(
        0.1, gt=0.0, le=1.0, description="Largest relative size change of one gradual step."
    )


class CommonParams(BaseModel):
    """Parameters shared by every application.

    In JSON, `alpha = inf` is the string "Infinity" (strict JSON has no infinity); the
    models accept that string back, so parameters read from any JSON the project
    writes (API answers, webhooks, manifests, reports) validate again unchanged.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    patch_size: int = Field(7, ge=3, le=15, description="Side of the square patches (odd).")
    ratio: float = _ratio(0.75)
    depth: int | None = _depth(None)
    iterations: int = Field(10, ge=1, le=50, description="PNN iterations per finer level.")
    coarsest_iterations: int = _coarsest_iterations(1)
    alpha: float = _alpha(math.inf)
    seed: int = Field(
        0,
        ge=0,
        lt=2**32,
        description="Random seed; sample i uses seed + i (a collage's, with k candidates: "
        "seed + i * k onwards).",
    )
    mode: SearchMode = Field(
        SearchMode.fast,
        description="Nearest-neighbour search mode: fast (the default everywhere: "
        "coarse-to-fine PatchMatch candidates re-scored exactly) or exact (every query "
        "against every key, the reference; tens of times slower on a CPU).",
    )

    @field_validator("patch_size")
    @classmethod
    def _odd_patch(cls, value: int) -> int:
        if value % 2 == 0:
            raise ValueError("must be odd")
        return value

    @field_serializer("alpha", "layout_alpha", when_used="json", check_fields=False)
    def _alpha_as_strict_json(self, value: float) -> float | str:
        return "Infinity" if value == math.inf else value

    @property
    def seeded(self) -> bool:
        """Whether noise enters the run, so that each seed gives a different output."""
        return False

    @property
    def runs_per_sample(self) -> int:
        """Engine runs started for each sample (a collage tries `candidates` seeds, an
        analogy's refinement runs the pyramid twice)."""
        return 1

    @property
    def levels_run_alone(self) -> int:
        """The finest levels that only a sample's kept run goes through (a collage's
        candidates are compared before them)."""
        return 0

    def run_equivalents(self, series: int = 2) -> float:
        """Whole runs' work behind each sample, a level's work shrinking by
        ``ratio**series`` a level coarser (2: its pixels; 4: exact mode's pairs)."""
        shared = self.ratio ** (series * self.levels_run_alone)
        return 1 + (self.runs_per_sample - 1) * shared

    def changed(self) -> dict[str, Any]:
        """The fields whose values differ from their defaults, in JSON form (pydantic's
        `exclude_defaults` compares serialised values, and "Infinity" != inf)."""
        values = self.model_dump(mode="json")
        return {
            name: values[name]
            for name, field in type(self).model_fields.items()
            if getattr(self, name) != field.default
        }


class GenerateParams(CommonParams):
    """Random samples of one source image (paper section 3)."""

    task: Literal[Task.generate] = Task.generate
    sigma: float = _sigma(0.75)
    noise_rounds: int = _noise_rounds(
        5,
        1,
        "a random walk of the layout away from the source's, different for every seed; "
        "1: the paper's single step, which hands some images back unchanged.",
    )
    min_shift: int = _min_shift(2, " and in the `layout_levels`")
    layout_levels: int = Field(
        3,
        ge=0,
        le=20,
        description="The coarsest levels, where a sample's layout is decided, run with "
        "`layout_alpha` instead of `alpha` and displaced matches (`min_shift`): small "
        "objects stay in the new layout; 0: `alpha` everywhere (the largest texture crowds "
        "them out). More than 3 misplaces fragments (docs/engine.md).",
    )
    layout_alpha: float = Field(
        1e-3,
        gt=0,
        description="alpha of the `layout_levels` coarsest levels: small keeps every part "
        "of the source in the new layout (at inf the largest texture, a sky or a lawn, "
        "crowds out the small objects), while the finer levels keep `alpha` (inf: the "
        "sharpest, most coherent detail).",
    )

    @property
    def seeded(self) -> bool:
        return self.sigma > 0


class RetargetParams(CommonParams):
    """Resize to any size while keeping the patch distribution (gradual)."""

    task: Literal[Task.retarget] = Task.retarget
    height: int | None = _size("height")
    width: int | None = _size("width")
    ratio: float = _ratio(0.8)
    alpha: float = _alpha(5e-3)
    coarsest_iterations: int = _coarsest_iterations(10)
    step: float = _step()

    @model_validator(mode="after")
    def _a_side(self) -> RetargetParams:
        if self.height is None and self.width is None:
            raise ValueError("give `height`, `width` or both (an unset side keeps the input's)")
        return self


class AnalogyParams(CommonParams):
    """The patch distribution of a source A laid out like a structure image B."""

    task: Literal[Task.analogy] = Task.analogy
    alpha: float = _alpha(5e-3)
    depth: int | None = _depth(None)
    coarsest_iterations: int = _coarsest_iterations(10)
    refine: bool = Field(True, description="Downscale the output and run GPNN once more.")
    structure_weight: float = Field(
        1.0,
        ge=0,
        description="How closely every level follows the structure image: the weight of "
        "its grey image (matched to the source's mean and spread) as one more channel of "
        "each query patch, against the source's grey in each key. 0 steers only the start "
        "(the paper's recipe); higher follows B more closely, at some cost in coherence.",
    )

    @property
    def runs_per_sample(self) -> int:
        return 2 if self.refine else 1  # the refinement runs the pyramid again


class InpaintParams(CommonParams):
    """Fill a hole, steered by the colour the user painted into it."""

    task: Literal[Task.inpaint] = Task.inpaint
    # Small, unlike the authors' inf: with plain nearest neighbours every query of the
    # hole takes the same few smoothest patches and the fill is a flat smear; the
    # normalised score spends each source patch about once (docs/engine.md).
    alpha: float = _alpha(5e-4)
    coarsest_iterations: int = _coarsest_iterations(10)
    color: tuple[int, int, int] | None = Field(
        None,
        description="RGB (0-255) of the uniformly coloured region to fill, "
        "used when no mask is given.",
    )

    @field_validator("color")
    @classmethod
    def _color_range(cls, value: tuple[int, int, int] | None) -> tuple[int, int, int] | None:
        if value is not None and not all(0 <= c <= 255 for c in value):
            raise ValueError("channels must lie in 0..255")
        return value


# A collage's candidates are compared at the first level whose sides are at least this
# share of the output's (two levels before the finest at ratio 0.8): on 12 pairs the
# run kept there scored within 12% of the best finished run (docs/engine.md).
COMPARE_AT_SIDE = 0.6


class CollageParams(CommonParams):
    """Merge several sources into one image (initial guess: their concatenation)."""

    task: Literal[Task.collage] = Task.collage
    ratio: float = _ratio(0.8)
    alpha: float = _alpha(5e-3)
    coarsest_iterations: int = _coarsest_iterations(10)
    height: int | None = _size("height")
    width: int | None = _size("width")
    step: float = _step()
    sigma: float = _sigma(0.3)
    noise_rounds: int = _noise_rounds(
        2,
        0,
        "patches cross the junctions of the sources, so they merge instead of meeting "
        "at a straight seam; 0: the plain concatenation (the paper's guess).",
    )
    min_shift: int = _min_shift(2, "")
    candidates: int = Field(
        4,
        ge=1,
        le=16,
        description="Collages started per sample, each from its own seed; they are "
        "compared two levels before the finest and the one whose worst seam, at a "
        "junction and anywhere, is least is finished (where the seam falls depends on the "
        "seed). Each more costs about 0.4 of a run (at ratio 0.8); 1: the first seed's. "
        "Without noise there is one.",
    )

    @property
    def seeded(self) -> bool:
        return self.sigma > 0 and self.noise_rounds > 0

    @property
    def runs_per_sample(self) -> int:
        return self.candidates if self.seeded else 1

    @property
    def levels_run_alone(self) -> int:
        if self.runs_per_sample == 1:
            return 0
        return math.floor(math.log(COMPARE_AT_SIDE) / math.log(self.ratio))


class EditParams(CommonParams):
    """Blend a naive edit (objects moved, pasted, removed) into the source."""

    task: Literal[Task.edit] = Task.edit
    depth: int | None = _depth(5)
    coarsest_iterations: int = _coarsest_iterations(10)
    sigma: float = _sigma(0.0)

    @property
    def seeded(self) -> bool:
        return self.sigma > 0


PARAMS_BY_TASK: dict[Task, type[CommonParams]] = {
    Task.generate: GenerateParams,
    Task.retarget: RetargetParams,
    Task.analogy: AnalogyParams,
    Task.inpaint: InpaintParams,
    Task.collage: CollageParams,
    Task.edit: EditParams,
}


def check_samples(params: CommonParams, samples: int) -> None:
    """`ValueError` unless `samples` outputs of `params` can differ from each other."""
    if samples < 1:
        raise ValueError("`samples` must be at least 1")
    if samples > 1 and not params.seeded:
        knob = " or set `sigma` above 0" if "sigma" in type(params).model_fields else ""
        raise ValueError(
            f"`samples`: `{params.task}` adds no noise here, so all {samples} samples "  # type: ignore[attr-defined]
            f"would be the same image; ask for 1{knob}"
        )


def params_for(task: Task | str, **values) -> CommonParams:
    """Build and validate the parameters of `task`.

    Raises `ValueError` with one readable line naming the field at fault.
    """
    try:
        model = PARAMS_BY_TASK[Task(task)]
    except ValueError:
        known = ", ".join(t.value for t in Task)
        raise ValueError(f"unknown task `{task}` (expected one of: {known})") from None
    try:
        return model(**values)
    except ValidationError as error:
        raise ValueError(describe_validation_error(error)) from None


def describe_validation_error(error: ValidationError) -> str:
    """One line naming each field at fault and what is wrong with it."""
    return describe_errors(error.errors())


def describe_errors(items: Iterable[Mapping[str, Any]]) -> str:
    """`describe_validation_error` of pydantic's error items (`loc`, `msg`)."""
    parts = []
    for item in items:
        field = ".".join(str(p) for p in item["loc"]) or "parameters"
        message = item["msg"].removeprefix("Value error, ")
        parts.append(f"`{field}`: {message}")
    return "; ".join(parts)
