"""The cost estimate against the run (`gpnn.core.cost`): every application at its
defaults, fast mode, on SIGD16 images, one sample each.

Prints per application the estimated work (MPI) and seconds, the measured seconds and
their ratio, and the rate the run achieved (MPI per second): the figures behind
`cost.FAST_MPI_PER_S` (alpha = inf: every level's search is a plain nearest
neighbour) and `cost.FAST_NORMALIZED_MPI_PER_S` (finite alpha: the normalisation pass
over each level's matches). Run it alone: a busy machine slows every row.

    .venv/bin/python bench/estimates.py
    .venv/bin/python bench/estimates.py --images 2,4
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from engine import DATASET

from gpnn.core import TASK_INPUTS, cost, params_for, tasks
from gpnn.core.imageio import read_image


def inputs(first: np.ndarray, second: np.ndarray) -> dict[str, tuple]:
    """Each application's positional inputs: a hole in the middle for inpainting, a
    block moved for the edit, the second image as the structure and the collage's
    other source."""
    height, width = first.shape[:2]
    mask = np.zeros((height, width), bool)
    mask[height // 3 : height // 2, width // 3 : width // 2] = True
    edited = first.copy()
    rows, columns = height // 4, width // 4
    edited[2 * rows : 3 * rows, 2 * columns : 3 * columns] = first[:rows, :columns]
    return {
        "generate": (first,),
        "retarget": (first,),
        "analogy": (first, second),
        "inpaint": (first, mask),
        "collage": ([first, second],),
        "edit": (first, edited),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", default="2,4", help="two SIGD16 image numbers")
    args = parser.parse_args(argv)
    first, second = (read_image(DATASET / f"{n}.jpg") for n in args.images.split(","))
    overrides = {"retarget": {"width": first.shape[1] * 3 // 2}}
    print(
        f"{'task':<9} {'alpha':>7} {'work MPI':>9} {'est s':>7} {'took s':>7} "
        f"{'took/est':>9} {'MPI/s':>6}"
    )
    for task, positional in inputs(first, second).items():
        options = overrides.get(task, {})
        params = params_for(task, **options)
        named = dict(zip(TASK_INPUTS[task], positional, strict=True))
        estimate = cost.estimate(params, cost.input_shape(task, cost.shapes_of(named)))
        start = time.perf_counter()
        getattr(tasks, task)(*positional, **options)
        took = time.perf_counter() - start
        print(
            f"{task:<9} {params.alpha:7.0e} {estimate['work_mpi']:9.2f} {estimate['seconds']:7.2f} "
            f"{took:7.2f} {took / estimate['seconds']:9.2f} {estimate['work_mpi'] / took:6.2f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
