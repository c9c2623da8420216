"""The counters and histograms behind /metrics and the active-job quota, kept in Redis so
that every worker and API replica adds to the same ones (`gpnn.service.metrics` reads them).

The state counters change inside the transaction of the state change they count: each
function here takes the pipeline of that transaction.
"""

from __future__ import annotations

from redis import Redis
from redis.client import Pipeline

from gpnn.worker import defaults, keys
from gpnn.worker.status import JobStatus


def count_created(pipe: Pipeline, owner: str) -> None:
    """A new job: one more queued, one more unfinished for its owner."""
    pipe.hincrby(keys.state_counts_key(), JobStatus.queued.value, 1)
    pipe.hincrby(keys.active_jobs_key(), owner, 1)


def count_transition(pipe: Pipeline, old: JobStatus, new: JobStatus, owner: str) -> None:
    """A job moved from `old` to `new`: the per-state counts follow, and a job that
    finished no longer counts as unfinished for its owner."""
    if old != new:
        pipe.hincrby(keys.state_counts_key(), old.value, -1)
        pipe.hincrby(keys.state_counts_key(), new.value, 1)
    if new.is_terminal():
        pipe.hincrby(keys.active_jobs_key(), owner, -1)


def observe(redis: Redis, name: str, value: float) -> None:
    """Add one observation to a histogram (buckets `defaults.DURATION_BUCKETS_S`)."""
    key = keys.histogram_key(name)
    with redis.pipeline(transaction=False) as pipe:
        for bound in defaults.DURATION_BUCKETS_S:
            if value <= bound:
                pipe.hincrby(key, str(bound), 1)
        pipe.hincrby(key, "+Inf", 1)
        pipe.hincrbyfloat(key, "sum", value)
        pipe.hincrby(key, "count", 1)
        pipe.execute()


def observe_success(redis: Redis, timings: dict[str, float], samples: int) -> None:
    """The durations of a succeeded job: its whole run, and its engine time per image."""
    observe(redis, "job_duration_seconds", timings.get("total_s", 0.0))
    for _ in range(samples):
        observe(redis, "engine_seconds_per_image", timings.get("engine_s", 0.0) / samples)
