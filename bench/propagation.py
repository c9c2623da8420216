"""The PNN loop with match propagation and early stopping (proposed for `pnn.refine`).

`refine_with_hints` is `gpnn.core.pnn.refine` plus two lines: each iteration
passes the previous iteration's matches of the stage to
`SourceLevel.nearest(..., hint=...)`, and a stage stops once
`SourceLevel.converged(previous, chosen)` says so (fast mode only; exact mode
runs every iteration). `install()` makes `gpnn.core.tasks` use it, so that the
benchmark can show the effect before the change is made in `pnn.py`.
"""

from __future__ import annotations

import inspect

import numpy as np

from gpnn.core import pnn, tasks
from gpnn.core.patches import extract_patches, fold, patch_grid
from gpnn.core.pyramid import resize


def refine_with_hints(guess, stages, *, patch_size, alpha, report=None) -> np.ndarray:
    image = guess
    for number, stage in enumerate(stages):
        patch_grid(stage.shape, patch_size)
        image = resize(image, stage.shape)
        chosen = None
        for iteration in range(stage.iterations):
            queries = extract_patches(image, patch_size)
            previous, chosen = chosen, stage.source.nearest(queries, alpha, hint=chosen)
            image = fold(stage.source.values[chosen], stage.shape, patch_size)
            if stage.known is not None:
                image = np.where(stage.known.free, image, stage.known.image)
            if report is not None:
                report(number, len(stages), iteration, stage.iterations)
            if stage.source.converged(previous, chosen):
                break
    return image


def refine_has_hints() -> bool:
    """Whether the library's own loop already propagates (the change is merged)."""
    return "hint=" in inspect.getsource(pnn.refine)


def install() -> None:
    if not refine_has_hints():
        tasks.refine = refine_with_hints
