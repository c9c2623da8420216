"""Every way a job's attempt can end reaches its record, and no job runs twice.

Real worker processes against the real Redis: a work-horse SIGKILLed on its last
attempt, a worker SIGTERMed mid-job (drain, hand-back), a superseded attempt, and
the `gpnn worker` supervisor through worker kills and a Redis kill and restart.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from redis import Redis
from rq import Queue
from rq.job import Job
from rq.results import Result

from gpnn.config import Settings
from gpnn.worker.exceptions import AttemptSuperseded

from .conftest import (
    REDIS_SERVER,
    derive,
    descendants,
    drain,
    free_port,
    get_job,
    png,
    start_worker,
    stop_process,
    submit,
    synthetic,
    wait_until,
)

# A job of several seconds here (7x7 patches, 10 iterations per level, 4 samples).
SLOW = {"patch_size": 7, "depth": 3, "iterations": 10, "mode": "exact"}


def submit_slow(client, samples: int = 4) -> dict:
    files = {"source": ("s.png", png(synthetic(64, 96)), "image/png")}
    answer = submit(client, "generate", files, SLOW, samples=str(samples))
    assert answer.status_code == 202, answer.text
    return answer.json()


def running(client, job_id) -> bool:
    job = get_job(client, job_id)
    return job["status"] == "running" and bool(job["progress"])


def gone(pids: list[int]) -> bool:
    return not any(Path(f"/proc/{pid}").exists() for pid in pids)


def test_work_horse_killed_on_the_last_attempt_fails_the_job_with_the_reason(
    make_client, settings, tmp_path
):
    no_retries = derive(settings, job_retries=0)
    client = make_client(no_retries)
    worker = start_worker(no_retries, log=tmp_path / "worker.log")
    try:
        job = submit_slow(client)
        wait_until(lambda: running(client, job["id"]), 60, "the job to run")
        horses = descendants(worker.pid)
        assert horses
        for pid in horses:  # as the kernel's out-of-memory killer does
            os.kill(pid, signal.SIGKILL)
        wait_until(lambda: get_job(client, job["id"])["status"] == "failed", 20, "the job to fail")
        record = get_job(client, job["id"])
        assert "work-horse" in record["error"] and "signal 9" in record["error"]
        assert "1 attempt" in record["error"]
        metrics = client.get("/metrics").text
        assert 'gpnn_jobs{state="running"} 0' in metrics
        assert worker.poll() is None  # the worker lives on and takes the next job
    finally:
        stop_process(worker)


def test_a_batch_whose_last_attempt_died_finishes_and_fires_its_webhook(
    make_client, settings, tmp_path, webhook_receiver
):
    no_retries = derive(settings, job_retries=0)
    client = make_client(no_retries)
    worker = start_worker(no_retries, log=tmp_path / "worker.log")
    try:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as bundle:
            bundle.writestr("slow.png", png(synthetic(64, 96)))
        answer = client.post(
            "/v1/batches",
            data={"task": "generate", "params": json.dumps(SLOW), "samples": "4",
                  "webhook_url": webhook_receiver.url},
            files={"archive": ("in.zip", buffer.getvalue(), "application/zip")},
        )  # fmt: skip
        assert answer.status_code == 202, answer.text
        batch_id = answer.json()["id"]
        job_id = answer.json()["jobs"][0].rsplit("/", 1)[1]
        wait_until(lambda: running(client, job_id), 60, "the job to run")
        for pid in descendants(worker.pid):  # the work-horse, out of memory
            os.kill(pid, signal.SIGKILL)

        def batch() -> dict:
            return client.get(f"/v1/batches/{batch_id}").json()

        wait_until(lambda: batch()["status"] == "failed", 20, "the batch to finish")
        assert (batch()["done"], batch()["failed"]) == (1, 1)
        (entry,) = client.get(batch()["manifest"]).json()["jobs"]
        assert entry["status"] == "failed" and "work-horse" in entry["error"]
        drain(no_retries)  # delivers the webhook queued by the batch's end
        events = [json.loads(body) for _, body in webhook_receiver.requests]
        assert [e["type"] for e in events] == ["batch.failed"]
        assert events[0]["data"]["id"] == batch_id and events[0]["data"]["failed"] == 1
    finally:
        stop_process(worker)


def test_work_horse_killed_with_a_retry_left_runs_again_at_once(make_client, settings, tmp_path):
    client = make_client(settings)  # job_retries=1; the lease grace is the default 30 s
    worker = start_worker(settings, log=tmp_path / "worker.log")
    try:
        job = submit_slow(client, samples=1)
        wait_until(lambda: running(client, job["id"]), 60, "the job to run")
        for pid in descendants(worker.pid):
            os.kill(pid, signal.SIGKILL)
        wait_until(lambda: get_job(client, job["id"])["attempts"] == 2, 20, "the second attempt")
        wait_until(
            lambda: get_job(client, job["id"])["status"] == "succeeded", 90, "the job to end"
        )
        assert len(get_job(client, job["id"])["outputs"]) == 1
    finally:
        stop_process(worker)


def test_sigterm_hands_the_running_job_back_after_the_drain_grace(make_client, settings, tmp_path):
    short_drain = derive(settings, drain_grace_s=0.5)
    client = make_client(short_drain)
    first = start_worker(short_drain, log=tmp_path / "first.log")
    second = None
    try:
        job = submit_slow(client, samples=8)
        wait_until(lambda: running(client, job["id"]), 60, "the job to run")
        horses = descendants(first.pid)
        os.killpg(first.pid, signal.SIGTERM)  # as Kubernetes does at scale-in
        # Generous: a loaded machine slows the worker's exit. How fast a job is handed
        # back is measured by bench/hosts.py (0.58 s), not asserted here.
        first.wait(timeout=60)
        assert gone(horses), "the work-horse must not compute on"
        record = get_job(client, job["id"])
        # Handed back by the stopping worker itself (not found later as abandoned: the
        # lease grace is 30 s), to the front of the queue.
        assert record["status"] == "queued" and record["attempts"] == 1
        assert "handed back" in record["error"]
        queue = Queue(short_drain.queue_name, connection=client.app.state.ledger.redis)
        assert queue.job_ids[:1] == [job["id"]]  # at the front: the next worker takes it
        second = start_worker(short_drain, log=tmp_path / "second.log")
        wait_until(lambda: get_job(client, job["id"])["status"] == "succeeded", 120, "the job")
        record = get_job(client, job["id"])
        assert record["attempts"] == 2 and len(record["outputs"]) == 8
    finally:
        stop_process(first)
        if second is not None:
            stop_process(second)


def test_sigterm_within_the_drain_grace_finishes_the_job_first(make_client, settings, tmp_path):
    long_drain = derive(settings, drain_grace_s=120)
    client = make_client(long_drain)
    worker = start_worker(long_drain, log=tmp_path / "worker.log")
    try:
        job = submit_slow(client, samples=2)
        wait_until(lambda: running(client, job["id"]), 60, "the job to run")
        os.killpg(worker.pid, signal.SIGTERM)
        assert worker.wait(timeout=120) == 0
        record = get_job(client, job["id"])
        assert record["status"] == "succeeded" and record["attempts"] == 1
    finally:
        stop_process(worker)


def test_a_superseded_attempt_can_write_no_outcome(client, settings):
    job = submit_slow(client, samples=1)
    ledger = client.app.state.ledger
    old = ledger.start(job["id"])
    new = ledger.start(job["id"])  # the job was taken for lost and started again
    assert old and new and old != new
    with pytest.raises(AttemptSuperseded):
        ledger.check_attempt(job["id"], old)
    ledger.check_attempt(job["id"], new)
    assert not ledger.succeed(job["id"], ["x.png"], {"engine_s": 1.0, "total_s": 1.0}, lease=old)
    assert get_job(client, job["id"])["status"] == "running"
    assert ledger.succeed(job["id"], ["x.png"], {"engine_s": 1.0, "total_s": 1.0}, lease=new)
    assert get_job(client, job["id"])["status"] == "succeeded"


class OwnRedis:
    """A redis-server of this test alone (it gets killed), on a fixed port across restarts."""

    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        self.folder = folder
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None

    def start(self) -> OwnRedis:
        command = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1",
                   "--dir", str(self.folder), "--appendonly", "yes", "--save", ""]  # fmt: skip
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
        wait_until(Redis.from_url(self.url).ping, 10, "redis-server")
        return self

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()


def start_supervisor(own: Settings, folder: Path) -> tuple[subprocess.Popen, Callable[[], dict]]:
    """`gpnn worker` (the supervisor of a pool) with the settings `own`, its output in
    `folder`/supervisor.log, and what reads the pool's health file back."""
    supervisor = subprocess.Popen(
        [str(Path(sys.executable).parent / "gpnn"), "worker"],
        env={**os.environ, **own.as_env()},
        stdout=open(folder / "supervisor.log", "wb"),  # noqa: SIM115
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )

    def health() -> dict:
        return json.loads(Path(own.worker_health_file).read_text())

    return supervisor, health


def test_supervisor_replaces_dead_workers_and_waits_for_redis(make_client, settings, tmp_path):
    redis = OwnRedis(tmp_path).start()
    health_file = tmp_path / "health.json"
    own = derive(settings, redis_url=redis.url, worker_health_file=str(health_file), workers=2)
    client = make_client(own)
    supervisor, health = start_supervisor(own, tmp_path)
    try:
        wait_until(lambda: health()["healthy"], 60, "a healthy pool")
        assert health()["workers"] == 3  # 2 job workers + 1 webhook worker
        victim = descendants(supervisor.pid)[0]
        os.kill(victim, signal.SIGKILL)
        wait_until(lambda: health()["restarts"] >= 1 and health()["healthy"], 30, "a new worker")

        redis.kill()
        wait_until(lambda: health()["redis"] == "unreachable", 15, "the pool to see Redis gone")
        assert not health()["healthy"]
        assert supervisor.poll() is None, "the supervisor waits for Redis instead of exiting"
        redis.start()
        wait_until(lambda: health()["healthy"], 90, "the pool to come back with Redis")
        files = {"source": ("s.png", png(synthetic(32, 48)), "image/png")}
        job = submit(client, "generate", files).json()
        wait_until(lambda: get_job(client, job["id"])["status"] == "succeeded", 60, "a job to run")

        children = descendants(supervisor.pid)
        supervisor.send_signal(signal.SIGTERM)
        assert supervisor.wait(timeout=60) == 0
        assert gone(children), "no worker outlives the supervisor"
    finally:
        stop_process(supervisor)
        redis.kill()


def test_jobs_in_flight_when_redis_is_killed_all_finish_once(make_client, settings, tmp_path):
    """kill -9 of Redis with jobs queued and one running; Redis restarts from its
    append-only file and, with no one stepping in, every job ends exactly once."""
    redis = OwnRedis(tmp_path).start()
    health_file = tmp_path / "health.json"
    own = derive(settings, redis_url=redis.url, worker_health_file=str(health_file),
                 workers=2, heartbeat_interval_s=1, heartbeat_grace_s=1,
                 maintenance_interval_s=1)  # fmt: skip
    client = make_client(own)
    supervisor, health = start_supervisor(own, tmp_path)
    try:
        wait_until(lambda: health()["healthy"], 60, "a healthy pool")
        jobs = [submit_slow(client, samples=1)["id"] for _ in range(6)]
        wait_until(lambda: any(running(client, j) for j in jobs), 60, "a job to run")
        assert any(get_job(client, j)["status"] == "queued" for j in jobs)
        redis.kill()
        wait_until(lambda: health()["redis"] == "unreachable", 15, "the pool to see Redis gone")
        redis.start()  # the same port and folder: it loads its append-only file

        def all_done() -> bool:
            return all(get_job(client, j)["status"] == "succeeded" for j in jobs)

        # RQ re-queues a job caught between dequeue and start after a fixed minute.
        wait_until(all_done, 150, "every job to succeed")
        store = client.app.state.ledger.store
        connection = Redis.from_url(redis.url)
        for job_id in jobs:
            record = get_job(client, job_id)
            assert len(record["outputs"]) == 1 and record["attempts"] <= 2
            assert store.list(f"jobs/{job_id}/outputs/") == [f"jobs/{job_id}/outputs/0.png"]
            results = Result.all(Job.fetch(job_id, connection=connection))
            returned = [r.return_value["status"] for r in results if r.return_value]
            assert returned.count("succeeded") == 1, returned  # outputs written once
        connection.close()
    finally:
        stop_process(supervisor)
        redis.kill()
