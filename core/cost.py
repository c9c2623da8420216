"""What a job will cost before it runs, from its parameters and input sizes alone.

The engine's work grows with the pixels it refines times the iterations per level,
summed over the pyramid (a geometric series in ``ratio**2``), times the runs: the
samples, each one run (a collage's, `candidates` up to where they are compared; an
analogy's, two with its refinement pass).
`work` counts that in megapixel-iterations (MPI). A SIGD16 image (250x170, one
sample) is about 1 MPI. How fast fast mode gets through it depends on alpha: with
alpha = inf a level's search is a plain nearest neighbour, with a finite alpha every
level also normalises by each key's best query, several times the work per MPI. On
this project's 2-core CPU machine (`bench/estimates.py`, every application at its
defaults on SIGD16 2 and 4) generation ran at 0.9-1.0 MPI/s and editing at 2.1; with
finite alpha, retargeting at 0.21-0.26, inpainting 0.30, a collage 0.18-0.21 (its
candidates' scores included) and an analogy 0.20 (its refinement pass counted). The
figures below are rounded down, so that estimates err long. The service refuses jobs
over `GPNN_MAX_JOB_WORK` at submit.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from gpnn.core.params import CommonParams, SearchMode, Task
from gpnn.core.pyramid import common_height

Shape = tuple[int, int]

# MPI per second of fast mode on 2 CPU cores (see above): alpha = inf, and finite.
FAST_MPI_PER_S = 0.8
FAST_NORMALIZED_MPI_PER_S = 0.2
# Exact mode compares every query patch with every key: 2 * 3 p^2 flops a pair, at
# 0.76 of this machine's 207 GFLOP/s sgemm rate (docs/performance.md, bench/engine.py).
EXACT_FLOPS_PER_S = 1.5e11
# Peak resident bytes per pixel of the largest level: fast mode 2843 MB at 1024x1024
# (bench/scaling.py), exact mode 235 MB at 250x167 (bench/engine.py).
BYTES_PER_PIXEL = {SearchMode.fast: 2800, SearchMode.exact: 5600}
# Resident size of a process with the engine loaded (the interpreter, NumPy, OpenCV
# and FAISS), which the figures above are on top of: about all a small run takes.
ENGINE_RESTING_MB = 90


def input_shape(task: Task | str, shapes: Mapping[str, Sequence[Shape]]) -> Shape:
    """The size a job's work is estimated from, given each input's shapes by name (a
    collage's `sources` several): the image the engine refines. A collage's sources
    side by side at their common height, an analogy's structure (the output has its
    size), else the source."""
    if task == Task.collage:
        joined = common_height(shapes["sources"])
        return joined[0][0], sum(width for _, width in joined)
    first = shapes["structure" if task == Task.analogy else "source"][0]
    return int(first[0]), int(first[1])


def shapes_of(inputs: Mapping[str, Any]) -> dict[str, list[Shape]]:
    """Each input's (h, w) by name, for `input_shape`, from its image or list of them."""
    return {
        name: [image.shape[:2] for image in (value if isinstance(value, list) else [value])]
        for name, value in inputs.items()
    }


def output_shape(params: CommonParams, source: Shape) -> Shape:
    """The output size: the requested one (retarget, collage) or the source's."""
    height = getattr(params, "height", None) or source[0]
    width = getattr(params, "width", None) or source[1]
    return int(height), int(width)


def work(params: CommonParams, source: Shape, samples: int = 1) -> float:
    """Megapixel-iterations of a job on a source of `source` (height, width)."""
    height, width = output_shape(params, source)
    per_level = height * width * params.iterations / 1e6
    return samples * params.run_equivalents() * per_level / (1.0 - params.ratio**2)


def estimate(params: CommonParams, source: Shape, samples: int = 1) -> dict[str, Any]:
    """What a job will take on this project's 2-core CPU machine: its work (MPI),
    seconds and peak memory in the job's search mode. A rough guide (within a factor
    of about 2), for telling a user before heavy work starts."""
    units = work(params, source, samples)
    output = output_shape(params, source)
    output_pixels, source_pixels = output[0] * output[1], source[0] * source[1]
    if params.mode == SearchMode.exact:
        pair_flops = 6 * params.patch_size**2
        # Queries and keys both shrink by ratio^2 a level: a series in ratio^4.
        pairs = output_pixels * source_pixels / (1.0 - params.ratio**4)
        runs = samples * params.run_equivalents(series=4)
        seconds = runs * params.iterations * pairs * pair_flops / EXACT_FLOPS_PER_S
    else:
        rate = FAST_MPI_PER_S if params.alpha == math.inf else FAST_NORMALIZED_MPI_PER_S
        seconds = units / rate
    memory = BYTES_PER_PIXEL[SearchMode(params.mode)] * max(output_pixels, source_pixels)
    return {
        "work_mpi": float(f"{units:.3g}"),
        "seconds": float(f"{seconds:.3g}"),
        "memory_mb": ENGINE_RESTING_MB + round(memory / 2**20),
        "mode": SearchMode(params.mode).value,
    }


def describe(estimate: dict[str, Any]) -> str:
    """One line for people: 'about 12 s and 250 MB (fast mode, 2 CPU cores)'."""
    return (
        f"about {estimate['seconds']:g} s and {estimate['memory_mb']} MB "
        f"({estimate['mode']} mode, measured on 2 CPU cores)"
    )
