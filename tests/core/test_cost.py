import pytest

from gpnn.core import cost, params_for


@pytest.mark.parametrize("mode", ["fast", "exact"])
def test_a_collage_costs_one_run_per_candidate_when_it_has_noise(mode):
    shape = (120, 240)
    one = params_for("collage", candidates=1, mode=mode)
    four = params_for("collage", candidates=4, mode=mode)
    still = params_for("collage", candidates=4, noise_rounds=0, mode=mode)
    for key in ("work_mpi", "seconds"):
        base = cost.estimate(one, shape)[key]
        assert cost.estimate(four, shape)[key] == pytest.approx(4 * base, rel=0.01)
        assert cost.estimate(still, shape)[key] == base  # without noise, one run
