import math
import subprocess
import sys

import pytest

from gpnn.core import cost, params_for
from gpnn.core.params import COMPARE_AT_SIDE
from gpnn.core.pyramid import level_shape


def shared_share(shape, power):
    """The share of a run's work in the levels every candidate runs (those up to the
    first at least COMPARE_AT_SIDE of the output's sides), from the pyramid's own
    sizes: a level's work is its pixels (power 1) or, exact mode's, its pixels times
    the source's there (power 2)."""
    sizes = [math.prod(level_shape(shape, 0.8, n)) ** power for n in range(60)]
    compared = max(n for n, s in enumerate(sizes) if s >= COMPARE_AT_SIDE ** (2 * power) * sizes[0])
    return sum(sizes[compared:]) / sum(sizes)


@pytest.mark.parametrize("mode", ["fast", "exact"])
def test_a_collage_costs_its_candidates_up_to_their_comparison_and_one_run_after(mode):
    shape = (120, 240)
    one = cost.estimate(params_for("collage", candidates=1, mode=mode), shape)
    powers = {"work_mpi": 1, "seconds": 1 if mode == "fast" else 2}
    for candidates in (2, 4):
        estimate = cost.estimate(params_for("collage", candidates=candidates, mode=mode), shape)
        for key, power in powers.items():
            expected = one[key] * (1 + (candidates - 1) * shared_share(shape, power))
            assert estimate[key] == pytest.approx(expected, rel=0.03), key
    still = params_for("collage", candidates=4, noise_rounds=0, mode=mode)
    assert cost.estimate(still, shape) == one  # without noise, one run


def test_fast_mode_with_a_finite_alpha_is_estimated_slower_per_megapixel():
    """A finite alpha adds the normalisation pass to every level (bench/estimates.py)."""
    shape = (120, 240)
    plain = cost.estimate(params_for("generate", alpha=float("inf")), shape)
    normalized = cost.estimate(params_for("generate", alpha=5e-3), shape)
    assert normalized["work_mpi"] == plain["work_mpi"]
    assert normalized["seconds"] > 2 * plain["seconds"]


def test_the_memory_estimate_of_a_small_run_counts_the_engine_itself():
    # A process that loads the engine and runs one small generation: its peak memory is
    # mostly the interpreter and the libraries, which the estimate must not leave out.
    # (VmHWM, not ru_maxrss: that one keeps the forking test process's peak.)
    script = (
        "import re, numpy as np; from gpnn.core import generate; "
        "generate(np.random.default_rng(0).random((60, 80, 3), np.float32)); "
        "status = open('/proc/self/status').read(); "
        "print(int(re.search(r'VmHWM:\\s+(\\d+) kB', status).group(1)) / 1024)"
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    peak_mb = float(run.stdout)
    estimate = cost.estimate(params_for("generate"), (60, 80))
    assert 0.7 * peak_mb <= estimate["memory_mb"] <= 2 * peak_mb, peak_mb
