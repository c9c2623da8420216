"""Prometheus metrics, read from Redis at scrape time so every API replica agrees.

- `gpnn_queue_depth{queue}`: jobs waiting.
- `gpnn_jobs{state}`: jobs queued and running now; totals for the finished states.
- `gpnn_workers`: RQ workers alive.
- `gpnn_job_duration_seconds`: start to outputs written, per succeeded job.
- `gpnn_engine_seconds_per_image`: engine time divided by samples.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily
from rq import Worker

from gpnn.worker import defaults, keys
from gpnn.worker.ledger import Ledger
from gpnn.worker.status import JobStatus

HISTOGRAMS = {
    "job_duration_seconds": "Seconds from a job's start to its outputs written.",
    "engine_seconds_per_image": "Engine seconds per output image.",
}


class RedisCollector:
    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    def collect(self):
        redis = self.ledger.redis
        depth = GaugeMetricFamily("gpnn_queue_depth", "Jobs waiting in a queue.", labels=["queue"])
        for queue in (self.ledger.queues.jobs, self.ledger.queues.webhooks):
            depth.add_metric([queue.name], queue.count)
        yield depth
        states = GaugeMetricFamily(
            "gpnn_jobs",
            "Jobs by state (queued/running: now; finished states: totals).",
            labels=["state"],
        )
        counts = redis.hgetall(keys.state_counts_key())
        for state in JobStatus:
            states.add_metric([state.value], max(int(counts.get(state.value.encode(), 0)), 0))
        yield states
        yield GaugeMetricFamily(
            "gpnn_workers", "RQ workers alive.", value=Worker.count(connection=redis)
        )
        for name, help_text in HISTOGRAMS.items():
            raw = {k.decode(): v for k, v in redis.hgetall(keys.histogram_key(name)).items()}
            buckets = [
                (str(float(b)), int(raw.get(str(b), 0))) for b in defaults.DURATION_BUCKETS_S
            ]
            buckets.append(("+Inf", int(raw.get("+Inf", 0))))
            yield HistogramMetricFamily(
                f"gpnn_{name}", help_text, buckets=buckets, sum_value=float(raw.get("sum", 0))
            )


def render(ledger: Ledger) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RedisCollector(ledger))
    return generate_latest(registry)
