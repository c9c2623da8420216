"""What a job will cost before it runs, from its parameters and input sizes alone.

The engine's work grows with the pixels it refines times the iterations per level,
summed over the pyramid (a geometric series in ``ratio**2``), times the runs: the
samples, each one run (a collage's, `candidates` up to where they are compared).
`work` counts that in megapixel-iterations (MPI). A SIGD16 image (250x170, one
sample) is about 1 MPI; on this project's 2-core CPU machine fast mode took 1.69 s
per such sample (`gpnn eval-dataset` on SIGD16, 50 samples, with other work beside
it), so about 0.6 MPI per second there: a conservative figure for time estimates.
The service refuses jobs over `GPNN_MAX_JOB_WORK` at submit.
"""

from __future__ import annotations

from typing import Any

from gpnn.core.params import CommonParams, SearchMode

Shape = tuple[int, int]

# MPI per second of fast mode on 2 CPU cores (see above).
FAST_MPI_PER_S = 0.6
# Exact mode compares every query patch with every key: 2 * 3 p^2 flops a pair, at
# 0.76 of this machine's 207 GFLOP/s sgemm rate (docs/performance.md, bench/engine.py).
EXACT_FLOPS_PER_S = 1.5e11
# Peak resident bytes per pixel of the largest level: fast mode 2843 MB at 1024x1024
# (bench/scaling.py), exact mode 235 MB at 250x167 (bench/engine.py).
BYTES_PER_PIXEL = {SearchMode.fast: 2800, SearchMode.exact: 5600}


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
        seconds = units / FAST_MPI_PER_S
    memory = BYTES_PER_PIXEL[SearchMode(params.mode)] * max(output_pixels, source_pixels)
    return {
        "work_mpi": float(f"{units:.3g}"),
        "seconds": float(f"{seconds:.3g}"),
        "memory_mb": round(memory / 2**20),
        "mode": SearchMode(params.mode).value,
    }


def describe(estimate: dict[str, Any]) -> str:
    """One line for people: 'about 12 s and 250 MB (fast mode, 2 CPU cores)'."""
    return (
        f"about {estimate['seconds']:g} s and {estimate['memory_mb']} MB "
        f"({estimate['mode']} mode, measured on 2 CPU cores)"
    )
