"""Running RQ workers: one worker, or a pool of worker processes on one machine.

Each worker process imports the engine once, then RQ forks a work-horse per job,
so a job's memory is returned when it ends and a crash kills only that job.
No GPU is touched before the fork: the work-horse initialises CUDA itself
(`device="cuda"` reaches the engine only inside the job).

Lost jobs: a worker refreshes its running job's lease every
`heartbeat_interval_s`; a lease `heartbeat_grace_s` overdue marks the job
abandoned, and the next maintenance pass of any live worker (every
`maintenance_interval_s`) retries it (`job_retries`) or fails it with a reason.
With the defaults (10 + 30 + 15 s) a job whose worker was SIGKILLed is picked
up again within about 55 s.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping

from redis import Redis
from rq import Queue, Worker

from gpnn.config import Settings
from gpnn.worker.ledger import jobs_queue_name, webhooks_queue_name

logger = logging.getLogger(__name__)


class GpnnWorker(Worker):
    """An RQ worker whose job leases expire after a configurable grace (RQ: 60 s)."""

    heartbeat_grace_s = 60

    def get_heartbeat_ttl(self, job, working_time: float = 0.0) -> int:
        interval = self.job_monitoring_interval
        if job.timeout and job.timeout > 0:
            interval = min(job.timeout - working_time, interval)
        return int(max(interval, 1)) + int(self.heartbeat_grace_s)


def make_worker(settings: Settings, connection: Redis, *, name: str | None = None) -> GpnnWorker:
    """A worker on the webhook queue (first) and the jobs queue, tuned by `settings`."""
    queues = [
        Queue(webhooks_queue_name(settings), connection=connection),
        Queue(jobs_queue_name(settings), connection=connection),
    ]
    worker = GpnnWorker(
        queues,
        connection=connection,
        name=name,
        job_monitoring_interval=settings.heartbeat_interval_s,
        maintenance_interval=settings.maintenance_interval_s,
        # RQ blocks on the queue for worker_ttl - 15 s; keep it within a maintenance pass.
        worker_ttl=settings.maintenance_interval_s + 15,
    )
    worker.heartbeat_grace_s = settings.heartbeat_grace_s
    return worker


def run_worker(settings: Settings, *, burst: bool = False) -> bool:
    """Run one worker in this process until stopped (or the queues are empty, `burst`)."""
    if not settings.redis_url:
        raise ValueError("`gpnn worker` needs REDIS_URL (the Redis of the service)")
    import gpnn.core  # noqa: F401  (load the engine once, before the work-horses fork)

    connection = Redis.from_url(settings.redis_url)
    worker = make_worker(settings, connection)
    return worker.work(burst=burst, logging_level="INFO", with_scheduler=False)


THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


class WorkerPool:
    """`count` worker processes (`python -m gpnn.worker`), each in its own session.

    `stop()` asks them to finish (SIGTERM), then kills each whole process group
    (worker and work-horse) after `grace_s`, so nothing is left behind.

    The cores are shared out: each worker's OpenMP (FAISS) and BLAS thread pools
    get ``cores // count`` threads unless the environment already says. Pools that
    together ask for more threads than there are cores spin against each other;
    on 2 cores with one busy neighbour that made a generation three times slower.
    """

    def __init__(self, count: int, env: Mapping[str, str] | None = None) -> None:
        self.count = count
        threads = str(max(1, (os.cpu_count() or 1) // count))
        shares = {name: threads for name in THREAD_VARIABLES}
        self.env = {**shares, **os.environ, **(env or {})}
        self.processes: list[subprocess.Popen] = []

    def start(self) -> WorkerPool:
        for _ in range(self.count):
            self.processes.append(
                subprocess.Popen(
                    [sys.executable, "-m", "gpnn.worker"],
                    env=self.env,
                    start_new_session=True,
                )
            )
        logger.info("started %d worker processes", self.count)
        return self

    def alive(self) -> int:
        return sum(p.poll() is None for p in self.processes)

    def stop(self, grace_s: float = 10.0) -> None:
        for process in self.processes:
            if process.poll() is None:
                _signal_group(process, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        for process in self.processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=max(deadline - time.monotonic(), 0.1))
            _signal_group(process, signal.SIGKILL)
            process.wait()
        self.processes.clear()

    def __enter__(self) -> WorkerPool:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _signal_group(process: subprocess.Popen, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, sig)
