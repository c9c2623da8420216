"""Running RQ workers: one worker, or a supervised pool of worker processes on one machine.

Each worker process imports the engine once, then RQ forks a work-horse per job,
so a job's memory is returned when it ends and a crash kills only that job.
No GPU is touched before the fork: the work-horse initialises CUDA itself
(`device="cuda"` reaches the engine only inside the job).

How a job survives the loss of its worker:

- **Work-horse killed** (out of memory, a signal): the worker that forked it sees
  it die and records the lost attempt at once (`record_lost_attempt`): queued
  again while retries are left, else failed with the reason.
- **Worker killed** (its machine lost): its work-horse dies with it (a parent-death
  signal, so no orphan computes on), the job's lease expires after
  `heartbeat_interval_s` + `heartbeat_grace_s`, and the next maintenance pass of
  any live worker (every `maintenance_interval_s`) retries or fails it. With the
  defaults (10 + 30 + 15 s) that is within about 55 s.
- **Worker asked to stop** (SIGTERM from the supervisor, Kubernetes or an
  autoscaler): it takes no new job, lets the running one finish within
  `drain_grace_s`, else kills its work-horse and hands the job back to the front
  of the queue, without using up a retry.
- **Redis gone**: workers exit; the supervisor (`WorkerPool.supervise`) starts them
  again with backoff, and each waits for Redis before it takes work.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

from redis import Redis
from redis.exceptions import RedisError
from rq import Queue, Worker
from rq.worker import WorkerStatus

from gpnn.config import Settings
from gpnn.worker.queueing import jobs_queue_name, webhooks_queue_name

logger = logging.getLogger(__name__)


class Role(StrEnum):
    """What a worker process listens to: image jobs, or webhook deliveries only, so
    that a receiver that never answers delays no job."""

    jobs = "jobs"
    webhooks = "webhooks"


# Run in a child process by `check_device`: the backend, or the engine's error, on stdout.
_DEVICE_PROBE = """
import sys
from gpnn.core.device import select
try:
    print(select(sys.argv[1], sys.argv[2]).backend)
except ValueError as error:
    print(error)
    sys.exit(1)
"""
DEVICE_CHECK_TIMEOUT_S = 120


def check_device(settings: Settings) -> str:
    """The backend that runs the workers' device (`settings.device`) in the default
    mode; `ValueError` with the engine's message when none can, so that a bad
    `GPNN_DEVICE` stops the start instead of failing every job.

    A GPU device is probed in a child process: this one never touches CUDA, so the
    work-horses it forks can still initialise it. "cpu" needs no probe.
    """
    from gpnn.core.device import Device, select

    if Device.parse(settings.device).kind == "cpu":
        return str(select(settings.device, settings.default_mode).backend)
    probe = subprocess.run(
        [sys.executable, "-c", _DEVICE_PROBE, settings.device, str(settings.default_mode)],
        capture_output=True,
        text=True,
        timeout=DEVICE_CHECK_TIMEOUT_S,
    )
    lines = (probe.stdout.strip() or probe.stderr.strip()).splitlines()
    answer = lines[-1] if lines else "the device check printed nothing"
    if probe.returncode != 0:
        raise ValueError(answer)
    return answer


def queue_names(settings: Settings, role: Role) -> list[str]:
    return [jobs_queue_name(settings) if role == Role.jobs else webhooks_queue_name(settings)]


_PR_SET_PDEATHSIG = 1


class PromptCommandListener:
    """RQ's subscription to its worker's command channel, with a listener that stops at
    once.

    RQ's listener blocks up to 60 s on one read. Its exit (redis-py's
    PubSubWorkerThread.stop joins the listener) then waited up to a minute whenever the
    reply to the unsubscribe was read before the stop: a stopping worker was held after
    it had handed its job back, and a burst worker after its last job.
    """

    # Seconds the command listener blocks on one read.
    COMMAND_POLL_S = 1.0

    def subscribe(self):
        self.log.info("Worker %s: subscribing to channel %s", self.name, self.pubsub_channel_name)
        self.pubsub = self.connection.pubsub()
        self.pubsub.subscribe(**{self.pubsub_channel_name: self.handle_payload})
        self.pubsub_thread = self.pubsub.run_in_thread(
            sleep_time=self.COMMAND_POLL_S,
            daemon=True,
            exception_handler=self._pubsub_exception_handler,
        )


class GpnnWorker(PromptCommandListener, Worker):
    """An RQ worker with configurable lease grace, drain on SIGTERM, and work-horses
    that never outlive it."""

    heartbeat_grace_s = 60
    drain_grace_s = 30.0
    _handing_back: str | None = None

    def get_heartbeat_ttl(self, job, working_time: float = 0.0) -> int:
        interval = self.job_monitoring_interval
        if job.timeout and job.timeout > 0:
            interval = min(job.timeout - working_time, interval)
        return int(max(interval, 1)) + int(self.heartbeat_grace_s)

    def request_stop(self, signum, frame):
        """Warm shutdown (RQ's), bounded: after `drain_grace_s` the job is handed back."""
        if self.get_state() == WorkerStatus.BUSY and (job_id := self.get_current_job_id()):
            timer = threading.Timer(self.drain_grace_s, self._hand_back, args=(job_id,))
            timer.daemon = True
            timer.start()
        super().request_stop(signum, frame)

    def _hand_back(self, job_id: str) -> None:
        if self.horse_pid and self.get_current_job_id() == job_id:
            logger.warning("job %s: not done within the drain grace; handing it back", job_id)
            self._handing_back = job_id
            self.kill_horse()

    def handle_work_horse_killed(self, job, retpid, ret_val, rusage):
        from gpnn.worker.jobs import record_lost_attempt

        super().handle_work_horse_killed(job, retpid, ret_val, rusage)
        if self._handing_back == job.id:
            self._handing_back = None
            # One more retry, spent by RQ's own retry below: a hand-back is not a failure.
            job.retries_left = (job.retries_left or 0) + 1
            job.enqueue_at_front_on_retry = True
            record_lost_attempt(job, self.connection, "handed back: its worker was stopped")
            return
        how = f"signal {os.WTERMSIG(ret_val)}" if ret_val and os.WIFSIGNALED(ret_val) else ret_val
        reason = f"the work-horse running this job died ({how}; out of memory?)"
        record_lost_attempt(job, self.connection, reason)

    def setup_work_horse_signals(self):
        super().setup_work_horse_signals()
        if sys.platform.startswith("linux"):
            # A work-horse is in its own process group, so a kill of the worker's
            # group misses it; without this it would compute on while another
            # worker retries the job.
            libc = ctypes.CDLL("libc.so.6", use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def make_worker(
    settings: Settings, connection: Redis, *, role: Role = Role.jobs, name: str | None = None
) -> GpnnWorker:
    """A worker on the queue of `role`, tuned by `settings`."""
    queues = [Queue(q, connection=connection) for q in queue_names(settings, role)]
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
    worker.drain_grace_s = settings.drain_grace_s
    return worker


# Waiting for Redis: the first retry after this long, doubling up to the cap.
REDIS_BACKOFF_S = (0.1, 5.0)


def wait_for_redis_forever(connection: Redis, stop: threading.Event | None = None) -> bool:
    """Block until Redis answers (True), with capped exponential backoff; False on `stop`."""
    delay, cap = REDIS_BACKOFF_S
    warned = False
    while stop is None or not stop.is_set():
        try:
            connection.ping()
            if warned:
                logger.info("Redis is back")
            return True
        except RedisError as error:
            if not warned:
                logger.warning("waiting for Redis (%s)", error)
                warned = True
        time.sleep(delay)
        delay = min(delay * 2, cap)
    return False


def wait_for_redis(connection: Redis, timeout_s: float = 10.0) -> None:
    """Poll `connection` until it answers PING, or raise `ConnectionError`."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            connection.ping()
            return
        except Exception as error:
            if time.monotonic() > deadline:
                raise ConnectionError(f"Redis not reachable: {error}") from error
            time.sleep(0.05)


def run_worker(settings: Settings, *, role: Role = Role.jobs, burst: bool = False) -> bool:
    """Run one worker in this process until stopped (or the queue is empty, `burst`)."""
    if not settings.redis_url:
        raise ValueError("`gpnn worker` needs REDIS_URL (the Redis of the service)")
    if role == Role.jobs:
        import gpnn.core  # noqa: F401  (load the engine once, before the work-horses fork)

    connection = Redis.from_url(settings.redis_url)
    wait_for_redis_forever(connection)
    worker = make_worker(settings, connection, role=role)
    return worker.work(burst=burst, logging_level=settings.log_level, with_scheduler=False)


THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


class _Slot:
    """One supervised worker process and its restart backoff."""

    # Restart delays: doubling from the first to the cap; reset after a healthy run.
    BACKOFF_S = (0.5, 30.0)
    HEALTHY_RUN_S = 60.0

    def __init__(self, role: Role) -> None:
        self.role = role
        self.process: subprocess.Popen | None = None
        self.started = 0.0
        self.delay = self.BACKOFF_S[0]
        self.restart_at = 0.0
        self.restarts = 0

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


class WorkerPool:
    """`count` job workers and one webhook worker (`python -m gpnn.worker ROLE`),
    each in its own session, kept alive by `supervise()`.

    `stop()` asks them to finish (SIGTERM: each drains its job within
    `drain_grace_s`), then kills each whole process group after that grace and a
    margin, so nothing is left behind.

    The cores are shared out: each worker's OpenMP (FAISS) and BLAS thread pools
    get ``cores // count`` threads unless the environment already says. Pools that
    together ask for more threads than there are cores spin against each other;
    on 2 cores with one busy neighbour that made a generation three times slower.
    """

    STOP_MARGIN_S = 10.0

    def __init__(
        self, count: int, env: Mapping[str, str] | None = None, settings: Settings | None = None
    ) -> None:
        self.count = count
        self.settings = settings
        threads = str(max(1, (os.cpu_count() or 1) // count))
        shares = {name: threads for name in THREAD_VARIABLES}
        self.env = {**shares, **os.environ, **(env or {})}
        self.slots = [_Slot(Role.jobs) for _ in range(count)] + [_Slot(Role.webhooks)]
        self.stopping = threading.Event()

    @property
    def processes(self) -> list[subprocess.Popen]:
        return [slot.process for slot in self.slots if slot.process is not None]

    def _spawn(self, slot: _Slot) -> None:
        slot.process = subprocess.Popen(
            [sys.executable, "-m", "gpnn.worker", slot.role.value],
            env=self.env,
            start_new_session=True,
        )
        slot.started = time.monotonic()

    def start(self) -> WorkerPool:
        for slot in self.slots:
            self._spawn(slot)
        logger.info("started %d job workers and 1 webhook worker", self.count)
        return self

    def alive(self) -> int:
        """Job workers running now."""
        return sum(slot.alive() for slot in self.slots if slot.role == Role.jobs)

    def heal(self) -> int:
        """Start again every worker that exited, each after its backoff; the number started."""
        started = 0
        now = time.monotonic()
        for slot in self.slots:
            if slot.alive() or self.stopping.is_set():
                continue
            if slot.restart_at == 0.0:
                ran = now - slot.started
                slot.delay = slot.BACKOFF_S[0] if ran > slot.HEALTHY_RUN_S else slot.delay
                slot.restart_at = now + slot.delay
                logger.warning(
                    "a %s worker exited (code %s); restart in %.1fs",
                    slot.role.value,
                    slot.process.returncode if slot.process else None,
                    slot.delay,
                )
                slot.delay = min(slot.delay * 2, slot.BACKOFF_S[1])
            if now >= slot.restart_at:
                slot.restart_at = 0.0
                slot.restarts += 1
                self._spawn(slot)
                started += 1
        return started

    def health(self, connection: Redis | None) -> dict:
        """Whether the pool can work now: every worker up and Redis answering."""
        redis_ok = True
        if connection is not None:
            try:
                connection.ping()
            except RedisError:
                redis_ok = False
        alive = sum(slot.alive() for slot in self.slots)
        return {
            "healthy": redis_ok and alive == len(self.slots),
            "workers": alive,
            "expected": len(self.slots),
            "redis": "ok" if redis_ok else "unreachable",
            "restarts": sum(slot.restarts for slot in self.slots),
            "updated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }

    def supervise(self, every_s: float = 1.0) -> None:
        """Keep the pool alive until `stopping` is set (SIGTERM, see `serve_forever`)."""
        settings = self.settings
        connection = health_file = None
        if settings is not None and settings.redis_url:
            connection = Redis.from_url(
                settings.redis_url, socket_timeout=2, socket_connect_timeout=2
            )
        if settings is not None and settings.worker_health_file:
            health_file = Path(settings.worker_health_file)
        try:
            while not self.stopping.wait(every_s):
                self.heal()
                if health_file is not None:
                    _write_atomically(health_file, json.dumps(self.health(connection)))
        finally:
            if connection is not None:
                connection.close()

    def stop(self, grace_s: float | None = None) -> None:
        self.stopping.set()
        if grace_s is None:
            drain = self.settings.drain_grace_s if self.settings else 0.0
            grace_s = drain + self.STOP_MARGIN_S
        for process in self.processes:
            if process.poll() is None:
                _signal_group(process, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        for process in self.processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=max(deadline - time.monotonic(), 0.1))
            _signal_group(process, signal.SIGKILL)
            process.wait()
        for slot in self.slots:
            slot.process = None

    def __enter__(self) -> WorkerPool:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def read_health(path: Path, max_age_s: float = 10.0) -> dict:
    """The health a supervisor wrote; unhealthy when missing or older than `max_age_s`."""
    try:
        health = json.loads(path.read_text())
    except (OSError, ValueError):
        return {"healthy": False, "reason": f"no health file at {path}"}
    if time.time() - path.stat().st_mtime > max_age_s:
        return {**health, "healthy": False, "reason": "the supervisor stopped writing"}
    return health


def _write_atomically(path: Path, text: str) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text)
    partial.replace(path)


def _signal_group(process: subprocess.Popen, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, sig)
