"""The /metrics counters: per-state counts and unfinished jobs per owner follow each state
change, and the histograms count each observation in every bucket it fits."""

from __future__ import annotations

from gpnn.worker import counters, keys
from gpnn.worker.status import JobStatus


def counts(redis) -> dict[str, int]:
    return {k.decode(): int(v) for k, v in redis.hgetall(keys.state_counts_key()).items()}


def test_state_counts_and_unfinished_jobs_follow_a_job(redis):
    with redis.pipeline() as pipe:
        counters.count_created(pipe, "alice")
        pipe.execute()
    assert counts(redis) == {"queued": 1}
    assert int(redis.hget(keys.active_jobs_key(), "alice")) == 1
    for old, new in [(JobStatus.queued, JobStatus.running), (JobStatus.running, JobStatus.failed)]:
        with redis.pipeline() as pipe:
            counters.count_transition(pipe, old, new, "alice")
            pipe.execute()
    assert counts(redis) == {"queued": 0, "running": 0, "failed": 1}
    assert int(redis.hget(keys.active_jobs_key(), "alice")) == 0


def test_an_observation_counts_in_every_bucket_it_fits(redis):
    counters.observe(redis, "job_duration_seconds", 3.0)
    raw = {
        k.decode(): float(v)
        for k, v in redis.hgetall(keys.histogram_key("job_duration_seconds")).items()
    }
    assert raw["5"] == raw["3600"] == raw["+Inf"] == raw["count"] == 1
    assert "2" not in raw and "0.5" not in raw
    assert raw["sum"] == 3.0
