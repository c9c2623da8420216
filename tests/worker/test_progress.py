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


def test_a_sample_of_several_candidates_is_done_once_all_have_run():
    ledger = Ledger()
    reporter = _Reporter(ledger, "job", "lease")
    for candidate in range(3):
        for level in range(2):
            reporter(Progress(0, 1, level, 2, 0, 1, None, candidate, 3))
    reporter(Progress(0, 1, 1, 2, 0, 1, SimpleNamespace(), 2, 3))
    fractions = [r["fraction"] for r in ledger.reports]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert fractions[1] == round(1 / 3, 4)  # the first candidate's last level
    assert [r["samples_done"] for r in ledger.reports[:-2]] == [0] * 5
    assert ledger.reports[-1]["samples_done"] == 1
