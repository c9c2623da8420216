"""RQ's failures are told apart by class (subclasses included), not by name."""

import pytest
from rq.exceptions import AbandonedJobError
from rq.timeouts import JobTimeoutException

from gpnn.worker import jobs


class LateJob(JobTimeoutException):
    pass


class AbandonedJobErrorLookalike(Exception):
    """Named like RQ's error, but not it."""


@pytest.mark.parametrize(
    ("exc_type", "reason"),
    [
        (AbandonedJobError, "the worker running this job stopped (killed or lost)"),
        (JobTimeoutException, "the job ran longer than"),
        (LateJob, "the job ran longer than"),
        (AbandonedJobErrorLookalike, "AbandonedJobErrorLookalike: boom"),
        (None, "error: boom"),
    ],
)
def test_the_reason_of_a_lost_attempt(monkeypatch, exc_type, reason):
    seen = []
    monkeypatch.setattr(jobs, "record_lost_attempt", lambda job, conn, why: seen.append(why))
    jobs.on_rq_failure(None, None, exc_type, "boom", None)
    assert seen[0].startswith(reason)
