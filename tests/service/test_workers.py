"""Real worker processes: cancel of a running job, recovery after SIGKILL, and a prompt stop."""

from __future__ import annotations

from pathlib import Path

import pytest
from redis import Redis
from rq import Queue
from rq.registry import StartedJobRegistry

from gpnn.config import Settings
from gpnn.store import open_store
from gpnn.worker.runner import make_worker

from .conftest import (
    burst_worker,
    derive,
    descendants,
    get_job,
    kill_tree,
    png,
    start_worker,
    stop_process,
    submit,
    synthetic,
    wait_until,
)

# A job of several seconds on this machine (exact search, 7x7 patches, 10 iterations).
SLOW = {"patch_size": 7, "depth": 3, "iterations": 10, "coarsest_iterations": 1}


def test_cancel_running_job_stops_the_worker(client, settings, tmp_path):
    worker = start_worker(settings, log=tmp_path / "worker.log")
    try:
        files = {"source": ("s.png", png(synthetic(96, 128)), "image/png")}
        job = submit(client, "generate", files, SLOW, samples="4").json()
        wait_until(lambda: get_job(client, job["id"])["progress"], 30, "the job to make progress")
        answer = client.post(f"/v1/jobs/{job['id']}/cancel")
        assert answer.status_code == 202 and answer.json()["status"] == "canceled"
        wait_until(lambda: get_job(client, job["id"])["stopped_at"], 15, "the worker to stop")
        record = get_job(client, job["id"])
        assert record["status"] == "canceled" and record["outputs"] == []
        assert record["progress"]["fraction"] < 0.5  # it did not run to the end
        connection = client.app.state.ledger.redis
        registry = StartedJobRegistry(settings.queue_name, connection=connection)
        wait_until(lambda: job["id"] not in registry.get_job_ids(), 10, "RQ to release the job")
        assert open_store(settings.store_url).list(f"jobs/{job['id']}/outputs") == []
        assert worker.poll() is None  # the worker itself lives on
    finally:
        stop_process(worker)


def test_sigkilled_worker_job_is_picked_up_again(make_client, settings, tmp_path):
    fast_recovery = derive(
        settings, heartbeat_interval_s=1, heartbeat_grace_s=2, maintenance_interval_s=1
    )
    client = make_client(fast_recovery)
    first = start_worker(fast_recovery, log=tmp_path / "first.log")
    second = None
    try:
        files = {"source": ("s.png", png(synthetic(48, 64)), "image/png")}
        job = submit(client, "generate", files, SLOW, samples="2").json()
        wait_until(lambda: get_job(client, job["id"])["progress"], 30, "the first attempt to run")
        horses = descendants(first.pid)
        assert horses, "RQ runs each job in a forked work-horse"
        kill_tree(first)  # the worker and its work-horse, as when a machine is lost
        wait_until(lambda: not any(Path(f"/proc/{pid}").exists() for pid in horses), 10, "death")
        assert get_job(client, job["id"])["status"] == "running"
        second = start_worker(fast_recovery, log=tmp_path / "second.log")
        wait_until(
            lambda: get_job(client, job["id"])["status"] in ("succeeded", "failed"),
            90,
            "the job to finish on the second worker",
            every_s=0.2,
        )
        record = get_job(client, job["id"])
        assert record["status"] == "succeeded", record["error"]
        assert record["attempts"] == 2 and len(record["outputs"]) == 2
        queue = Queue(fast_recovery.queue_name, connection=client.app.state.ledger.redis)
        assert queue.count == 0
    finally:
        stop_process(first)
        if second is not None:
            stop_process(second)


def test_default_recovery_is_within_two_minutes():
    defaults = Settings(redis_url="redis://unused")
    lease = defaults.heartbeat_interval_s + defaults.heartbeat_grace_s
    # Lease expiry, then the next maintenance pass of a live worker requeues the job.
    assert lease + defaults.maintenance_interval_s <= 60
    assert defaults.job_retries >= 1


def test_worker_pool_shares_the_cores_between_its_workers(monkeypatch):
    from gpnn.worker.runner import THREAD_VARIABLES, WorkerPool

    for name in THREAD_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr("os.cpu_count", lambda: 8)
    assert {WorkerPool(4).env[name] for name in THREAD_VARIABLES} == {"2"}
    assert WorkerPool(16).env["OMP_NUM_THREADS"] == "1"
    monkeypatch.setenv("OMP_NUM_THREADS", "3")  # an operator's choice wins
    assert WorkerPool(4).env["OMP_NUM_THREADS"] == "3"


@pytest.mark.parametrize("kind", ["service", "burst"])
def test_a_worker_stops_its_command_listener_at_once(settings, kind):
    """A stopping worker does not wait out its command listener's blocking read: the
    listener is stopped with nothing on its channel to wake it (as when the reply to
    the unsubscribe was read first), and must exit long before RQ's 60 s read."""
    connection = Redis.from_url(settings.redis_url)
    worker = (
        make_worker(settings, connection)
        if kind == "service"
        else burst_worker(settings, connection)
    )
    worker.subscribe()
    listener = worker.pubsub_thread
    try:
        listener.stop(timeout=0)
        listener.join(timeout=10)
        assert not listener.is_alive()
    finally:
        worker.pubsub.close()
        connection.close()
