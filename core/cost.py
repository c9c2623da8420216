"""What a job will cost before it runs, from its parameters and input sizes alone.

The engine's work grows with the pixels it refines times the iterations per level,
summed over the pyramid (a geometric series in ``ratio**2``), times the samples.
`work` counts that in megapixel-iterations (MPI). A SIGD16 image (250x170, one
sample) is about 1 MPI; on this project's 2-core CPU machine fast mode took 1.69 s
per such sample (`gpnn eval-dataset` on SIGD16, 50 samples, with other work beside
it), so about 0.6 MPI per second there: a conservative figure for time estimates.
The service refuses jobs over `GPNN_MAX_JOB_WORK` at submit.
"""

from __future__ import annotations

from typing import Any

from gpnn.core.params import CommonParams

Shape = tuple[int, int]

# MPI per second of fast mode on 2 CPU cores (see above).
FAST_MPI_PER_S = 0.6


def output_shape(params: CommonParams, source: Shape) -> Shape:
    """The output size: the requested one (retarget, collage) or the source's."""
    height = getattr(params, "height", None) or source[0]
    width = getattr(params, "width", None) or source[1]
    return int(height), int(width)


def work(params: CommonParams, source: Shape, samples: int = 1) -> float:
    """Megapixel-iterations of a job on a source of `source` (height, width)."""
    height, width = output_shape(params, source)
    per_level = height * width * params.iterations / 1e6
    return samples * per_level / (1.0 - params.ratio**2)


def estimate(params: CommonParams, source: Shape, samples: int = 1) -> dict[str, Any]:
    """The public estimate of a job: its work and a CPU fast-mode time."""
    units = work(params, source, samples)
    return {"work_mpi": round(units, 3), "cpu_fast_s": round(units / FAST_MPI_PER_S, 1)}
