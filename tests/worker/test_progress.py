from types import SimpleNamespace

from gpnn.core import Progress
from gpnn.worker.jobs import _Reporter


class Ledger:
    """The two calls the reporter makes, recorded (no Redis: our own arithmetic)."""

    def __init__(self) -> None:
        self.reports: list[dict] = []

    def report_progress(self, job_id: str, progress: dict) -> None:
        self.reports.append(progress)

    def check_attempt(self, job_id: str, lease: str) -> None:
        pass


def test_a_sample_of_several_candidates_is_done_once_the_kept_one_has_run():
    """Three candidates run levels 0 and 1 of 3, are compared, and the second goes on."""
    ledger = Ledger()
    reporter = _Reporter(ledger, "job", "lease")
    for candidate in range(3):
        for level in range(2):
            reporter(Progress(0, 1, level, 3, 0, 1, None, candidate, 3, compared_at=1))
    reporter(Progress(0, 1, 2, 3, 0, 1, SimpleNamespace(), 1, 3, compared_at=1))
    fractions = [r["fraction"] for r in ledger.reports]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert fractions[1] == round(2 / 7, 4)  # of 3 x 2 shared levels and 1 alone
    assert [r["samples_done"] for r in ledger.reports[:-1]] == [0] * 6
    assert ledger.reports[-1]["samples_done"] == 1
