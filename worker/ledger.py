"""Job and batch records in Redis, and every change of their state.

State changes go only through `Ledger` methods; each one stamps the time,
refuses to leave a terminal state, keeps the per-state counters of /metrics,
fires the webhook of a finished job or batch and, for the last job of a batch,
writes the batch manifest to the store.
"""

from __future__ import annotations

import json
import logging
import secrets
import socket
import time
from datetime import UTC, datetime
from typing import Any

from redis import Redis
from redis.exceptions import WatchError
from rq import Callback, Queue, Retry

from gpnn.config import Settings
from gpnn.store import Store, open_store, with_retry_policy
from gpnn.store import keys as store_keys
from gpnn.worker import defaults, keys
from gpnn.worker.exceptions import AttemptSuperseded, JobCanceled, UnknownJob
from gpnn.worker.status import JobStatus, ReportStatus

logger = logging.getLogger(__name__)

# The owner of jobs submitted while no API keys are configured.
ANONYMOUS = "anonymous"

JSON_FIELDS = (
    "params", "inputs", "outputs", "progress", "timings", "seeds", "skipped", "estimate",
    "previews",
)  # fmt: skip


def now_iso() -> str:
    """The current UTC time, ISO 8601."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def time_score(stamp: str) -> int:
    """Milliseconds since the epoch of an ISO 8601 stamp (the score of the owner indexes)."""
    return round(datetime.fromisoformat(stamp).timestamp() * 1000)


def _decode(raw: dict[bytes, bytes]) -> dict[str, Any]:
    record: dict[str, Any] = {k.decode(): v.decode() for k, v in raw.items()}
    for field in JSON_FIELDS:
        if field in record:
            record[field] = json.loads(record[field])
    return record


def jobs_queue_name(settings: Settings) -> str:
    return settings.queue_name


def webhooks_queue_name(settings: Settings) -> str:
    return settings.queue_name + defaults.WEBHOOKS_QUEUE_SUFFIX


class Ledger:
    """Reads and changes job and batch records.

    Parameters
    ----------
    connection : a `redis.Redis` with `decode_responses=False` (what RQ needs).
    settings : the service settings (TTLs, retries, queue names).
    store : the object store; opened from `settings.store_url` on first use when None.
        Either way it retries transient errors by `settings.store_retries` and
        `settings.store_retry_delay_s` (`gpnn.store.RetryingStore`), so no caller wraps
        its store calls.
    """

    def __init__(self, connection: Redis, settings: Settings, store: Store | None = None) -> None:
        self.redis = connection
        self.settings = settings
        self._store = store if store is None else self._with_policy(store)
        self.jobs_queue = Queue(jobs_queue_name(settings), connection=connection)
        self.webhooks_queue = Queue(webhooks_queue_name(settings), connection=connection)

    def _with_policy(self, store: Store) -> Store:
        retries, delay_s = self.settings.store_retries, self.settings.store_retry_delay_s
        return with_retry_policy(store, retries=retries, delay_s=delay_s)

    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = open_store(self.settings.store_url, self.settings)
        return self._store

    # --- reading --------------------------------------------------------------------------

    def get_job(self, job_id: str) -> dict[str, Any]:
        """The job record; `UnknownJob` when missing or expired."""
        raw = self.redis.hgetall(keys.job_key(job_id))
        if not raw:
            raise UnknownJob(job_id)
        return _decode(raw)

    def get_batch(self, batch_id: str) -> dict[str, Any]:
        """The batch record with its counters; `UnknownJob` when missing or expired."""
        raw = self.redis.hgetall(keys.batch_key(batch_id))
        if not raw:
            raise UnknownJob(batch_id)
        record = _decode(raw)
        record["job_ids"] = [
            j.decode() for j in self.redis.lrange(keys.batch_jobs_key(batch_id), 0, -1)
        ]
        return record

    def batch_progress(self, job_ids: list[str]) -> float:
        """Mean fraction done over `job_ids` (finished jobs count as 1)."""
        if not job_ids:
            return 1.0
        with self.redis.pipeline(transaction=False) as pipe:
            for job_id in job_ids:
                pipe.hmget(keys.job_key(job_id), "status", "progress")
            rows = pipe.execute()
        total = 0.0
        for status, progress in rows:
            if status is None or JobStatus(status.decode()).is_terminal():
                total += 1.0
            elif progress:
                total += float(json.loads(progress).get("fraction", 0.0))
        return total / len(job_ids)

    def cancel_requested(self, job_id: str) -> bool:
        return bool(self.redis.exists(keys.cancel_key(job_id)))

    # --- creating -------------------------------------------------------------------------

    def create_job(self, record: dict[str, Any]) -> None:
        """Save a new job record (status queued) and put it on the queue."""
        job_id = record["id"]
        created = now_iso()
        fields = {
            **{k: v for k, v in record.items() if v is not None and k not in JSON_FIELDS},
            **{k: json.dumps(record[k]) for k in JSON_FIELDS if k in record},
            "status": JobStatus.queued.value,
            "created_at": created,
            "attempts": 0,
        }
        owner = record.get("owner", ANONYMOUS)
        with self.redis.pipeline() as pipe:
            pipe.hset(keys.job_key(job_id), mapping=fields)
            pipe.expire(keys.job_key(job_id), defaults.PENDING_RECORD_TTL_S)
            if not record.get("batch_id"):  # a batch's jobs are listed through their batch
                pipe.zadd(keys.owner_jobs_key(owner), {job_id: time_score(created)})
            pipe.hincrby(keys.state_counts_key(), JobStatus.queued.value, 1)
            pipe.hincrby(keys.active_jobs_key(), owner, 1)
            pipe.execute()
        self.enqueue(job_id)

    def enqueue(self, job_id: str) -> None:
        retries = self.settings.job_retries
        self.jobs_queue.enqueue(
            "gpnn.worker.jobs.run_job",
            job_id,
            job_id=job_id,
            job_timeout=self.settings.job_timeout_s,
            retry=Retry(max=retries) if retries > 0 else None,
            on_failure=Callback("gpnn.worker.jobs.on_rq_failure"),
            result_ttl=self.settings.result_ttl_s,
            failure_ttl=self.settings.result_ttl_s,
        )

    def create_batch(self, record: dict[str, Any], jobs: list[dict[str, Any]]) -> None:
        """Save a batch and its jobs, then queue the jobs (grouped samples per input)."""
        batch_id = record["id"]
        created = now_iso()
        fields = {
            **{k: v for k, v in record.items() if v is not None and k not in JSON_FIELDS},
            **{k: json.dumps(record[k]) for k in JSON_FIELDS if k in record},
            "status": JobStatus.queued.value,
            "created_at": created,
            "total": len(jobs),
            "done": 0,
            "started": 0,
            **{s.value: 0 for s in (JobStatus.succeeded, JobStatus.failed, JobStatus.canceled)},
        }
        with self.redis.pipeline() as pipe:
            pipe.hset(keys.batch_key(batch_id), mapping=fields)
            pipe.expire(keys.batch_key(batch_id), defaults.PENDING_RECORD_TTL_S)
            owner = record.get("owner", ANONYMOUS)
            pipe.zadd(keys.owner_batches_key(owner), {batch_id: time_score(created)})
            if jobs:
                pipe.rpush(keys.batch_jobs_key(batch_id), *[j["id"] for j in jobs])
                pipe.expire(keys.batch_jobs_key(batch_id), defaults.PENDING_RECORD_TTL_S)
            pipe.execute()
        for job in jobs:
            self.create_job(job)

    # --- state changes --------------------------------------------------------------------

    def _transition(
        self,
        job_id: str,
        new: JobStatus,
        fields: dict[str, Any] | None = None,
        allowed_from: frozenset[JobStatus] | None = None,
        lease: str | None = None,
    ) -> bool:
        """Move a job to `new` unless it is finished (or not in `allowed_from`, or its
        lease is no longer `lease`)."""
        key = keys.job_key(job_id)
        fields = {k: json.dumps(v) if k in JSON_FIELDS else v for k, v in (fields or {}).items()}
        with self.redis.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(key)
                    current, holder, owner = pipe.hmget(key, "status", "lease", "owner")
                    if current is None:
                        raise UnknownJob(job_id)
                    status = JobStatus(current.decode())
                    if (
                        status.is_terminal()
                        or (allowed_from and status not in allowed_from)
                        or (lease is not None and (holder or b"").decode() != lease)
                    ):
                        pipe.unwatch()
                        return False
                    pipe.multi()
                    pipe.hset(key, mapping={"status": new.value, **fields})
                    if status != new:
                        pipe.hincrby(keys.state_counts_key(), status.value, -1)
                        pipe.hincrby(keys.state_counts_key(), new.value, 1)
                    if new.is_terminal():
                        pipe.expire(key, self.settings.result_ttl_s)
                        owner = owner.decode() if owner else ANONYMOUS
                        pipe.hincrby(keys.active_jobs_key(), owner, -1)
                    pipe.publish(
                        keys.job_events_channel(job_id),
                        json.dumps({"type": "status", "status": new.value}),
                    )
                    pipe.execute()
                    break
                except WatchError:
                    continue
        logger.info("job %s: %s -> %s", job_id, status.value, new.value)
        if new.is_terminal():
            self._finished(job_id)
        return True

    def start(self, job_id: str) -> str | None:
        """queued (or running, after a lost worker) -> running, under a new lease (returned);
        None when already finished. An older attempt holding the previous lease can no
        longer write the outcome (`check_attempt`, `succeed`)."""
        record = self.get_job(job_id)
        lease = secrets.token_hex(8)
        started = self._transition(
            job_id,
            JobStatus.running,
            {
                "started_at": now_iso(),
                "attempts": int(record.get("attempts", 0)) + 1,
                "lease": lease,
                "worker_host": self.settings.worker_host or socket.gethostname(),
            },
        )
        if started and record.get("batch_id") and int(record.get("attempts", 0)) == 0:
            self.redis.hincrby(keys.batch_key(record["batch_id"]), "started", 1)
        return lease if started else None

    def check_attempt(self, job_id: str, lease: str) -> None:
        """Raise `JobCanceled` on a cancel request, `AttemptSuperseded` when another
        attempt took the lease; one round trip, called at every engine iteration."""
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.exists(keys.cancel_key(job_id))
            pipe.hget(keys.job_key(job_id), "lease")
            canceled, holder = pipe.execute()
        if canceled:
            raise JobCanceled(job_id)
        if (holder or b"").decode() != lease:
            raise AttemptSuperseded(job_id)

    def report_progress(self, job_id: str, progress: dict[str, Any]) -> None:
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.hset(keys.job_key(job_id), "progress", json.dumps(progress))
            pipe.publish(
                keys.job_events_channel(job_id),
                json.dumps({"type": "progress", "progress": progress}),
            )
            pipe.execute()

    def add_preview(self, job_id: str, previews: list[dict[str, int]]) -> None:
        """Record the job's finished level previews; announce the newest one."""
        latest = previews[-1]
        preview = {**latest, "url": preview_url(job_id, latest["sample"], latest["level"])}
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.hset(keys.job_key(job_id), "previews", json.dumps(previews))
            pipe.publish(
                keys.job_events_channel(job_id), json.dumps({"type": "preview", "preview": preview})
            )
            pipe.execute()

    def page_index(
        self,
        key: str,
        *,
        limit: int,
        before: tuple[int, str] | None = None,
        since_ms: int | None = None,
    ) -> list[tuple[str, int]]:
        """Up to `limit` (id, score) of an owner index, newest first, strictly after the
        position `before` (score, id) and not older than `since_ms`."""
        top = before[0] if before else "+inf"
        bottom = since_ms if since_ms is not None else "-inf"
        found: list[tuple[str, int]] = []
        offset = 0
        while len(found) < limit:
            rows = self.redis.zrevrangebyscore(
                key, top, bottom, start=offset, num=limit, withscores=True
            )
            if not rows:
                break
            offset += len(rows)
            for member, score in rows:
                item = (member.decode(), int(score))
                if before and item[1] == before[0] and item[0] >= before[1]:
                    continue
                found.append(item)
                if len(found) == limit:
                    break
        return found

    def succeed(
        self, job_id: str, outputs: list[str], timings: dict[str, float], *, lease: str
    ) -> bool:
        """running -> succeeded, only for the attempt holding `lease`."""
        done = self._transition(
            job_id,
            JobStatus.succeeded,
            {"outputs": outputs, "timings": timings, "finished_at": now_iso()},
            lease=lease,
        )
        if done:
            samples = max(len(outputs), 1)
            self.observe("job_duration_seconds", timings.get("total_s", 0.0))
            for _ in range(samples):
                self.observe("engine_seconds_per_image", timings.get("engine_s", 0.0) / samples)
        return done

    def fail(self, job_id: str, error: str) -> bool:
        return self._transition(
            job_id, JobStatus.failed, {"error": error[:2000], "finished_at": now_iso()}
        )

    def requeue(self, job_id: str, note: str) -> bool:
        """running -> queued, when RQ retries a job whose attempt was lost."""
        return self._transition(
            job_id,
            JobStatus.queued,
            {"error": note[:2000]},
            allowed_from=frozenset({JobStatus.running, JobStatus.queued}),
        )

    def cancel(self, job_id: str) -> bool:
        """Request the cancel of a job: queued jobs leave the queue, running ones stop.

        The job is canceled at once for its users; a worker running it sees the
        cancel flag at its next engine iteration, stops and stamps `stopped_at`.
        """
        self.redis.set(keys.cancel_key(job_id), 1, ex=self.settings.result_ttl_s)
        changed = self._transition(
            job_id, JobStatus.canceled, {"finished_at": now_iso(), "error": "canceled"}
        )
        if changed:
            from rq.exceptions import InvalidJobOperation, NoSuchJobError
            from rq.job import Job

            try:
                rq_job = Job.fetch(job_id, connection=self.redis)
                if rq_job.get_status() in ("queued", "deferred", "scheduled"):
                    rq_job.cancel()
            except (NoSuchJobError, InvalidJobOperation):
                pass
        return changed

    def acknowledge_cancel(self, job_id: str) -> None:
        """The worker stopped a canceled job."""
        self._transition(job_id, JobStatus.canceled, {"finished_at": now_iso()})
        self.redis.hset(keys.job_key(job_id), "stopped_at", now_iso())

    def cancel_batch(self, batch_id: str) -> int:
        """Cancel every unfinished job of a batch; the number canceled."""
        batch = self.get_batch(batch_id)
        return sum(self.cancel(job_id) for job_id in batch["job_ids"])

    # --- finishing ------------------------------------------------------------------------

    def _finished(self, job_id: str) -> None:
        record = self.get_job(job_id)
        if record.get("webhook_url"):
            self.send_webhook(record, f"job.{record['status']}", public_job(record))
        batch_id = record.get("batch_id")
        if batch_id:
            key = keys.batch_key(batch_id)
            with self.redis.pipeline() as pipe:
                pipe.hincrby(key, record["status"], 1)
                pipe.hincrby(key, "done", 1)
                pipe.hget(key, "total")
                _, done, total = pipe.execute()
            if total is not None and done == int(total):
                self._finish_batch(batch_id)

    def _finish_batch(self, batch_id: str) -> None:
        batch = self.get_batch(batch_id)
        manifest_key = store_keys.batch_manifest(batch["output_prefix"])
        manifest = self.manifest(batch)
        self.store.put(manifest_key, json.dumps(manifest, indent=2).encode(), "application/json")
        status = JobStatus.succeeded if int(batch["succeeded"]) > 0 else JobStatus.failed
        if int(batch["canceled"]) == int(batch["total"]) and int(batch["total"]) > 0:
            status = JobStatus.canceled
        with self.redis.pipeline() as pipe:
            pipe.hset(
                keys.batch_key(batch_id),
                mapping={
                    "status": status.value,
                    "finished_at": now_iso(),
                    "manifest": manifest_key,
                },
            )
            pipe.expire(keys.batch_key(batch_id), self.settings.result_ttl_s)
            pipe.expire(keys.batch_jobs_key(batch_id), self.settings.result_ttl_s)
            pipe.execute()
        logger.info("batch %s: %s", batch_id, status.value)
        if batch.get("report") == ReportStatus.requested.value:
            self.jobs_queue.enqueue(
                "gpnn.worker.jobs.write_batch_report",
                batch_id,
                job_timeout=self.settings.job_timeout_s,
                result_ttl=self.settings.result_ttl_s,
                failure_ttl=self.settings.result_ttl_s,
            )
        if batch.get("webhook_url"):
            self.send_webhook(
                batch,
                f"batch.{status.value}",
                public_batch(self.get_batch(batch_id)),
            )

    def manifest(self, batch: dict[str, Any]) -> dict[str, Any]:
        """Inputs -> outputs, parameters, seeds, timings and errors of a batch."""
        entries = []
        for job_id in batch["job_ids"]:
            try:
                job = self.get_job(job_id)
            except UnknownJob:
                entries.append({"job_id": job_id, "status": "expired"})
                continue
            seed = int(job["params"].get("seed", 0))
            entries.append(
                {
                    "job_id": job_id,
                    "input": job.get("input_name"),
                    "inputs": job.get("inputs"),
                    "params": job.get("params"),
                    "status": job["status"],
                    "outputs": job.get("outputs", []),
                    "output_urls": [
                        output_url(job_id, n) for n in range(len(job.get("outputs", [])))
                    ],
                    "seeds": [seed + i for i in range(int(job.get("samples", 1)))],
                    "created_at": job.get("created_at"),
                    "started_at": job.get("started_at"),
                    "finished_at": job.get("finished_at"),
                    "timings": job.get("timings"),
                    "attempts": int(job.get("attempts", 0)),
                    "worker_host": job.get("worker_host"),
                    "error": job.get("error") if job["status"] != "succeeded" else None,
                }
            )
        return {
            "batch_id": batch["id"],
            "task": batch.get("task"),
            "samples": int(batch.get("samples", 1)),
            "created_at": batch.get("created_at"),
            "written_at": now_iso(),
            "jobs": entries,
            "skipped": batch.get("skipped", []),
            "skipped_total": int(batch.get("skipped_total", 0)),
        }

    # --- webhooks and metrics ---------------------------------------------------------------

    def report_step(self, batch_id: str, done: int, total: int) -> None:
        """Record how many of a report's images are measured (shown as its progress)."""
        fields = {"report": ReportStatus.running.value, "report_done": done, "report_total": total}
        self.redis.hset(keys.batch_key(batch_id), mapping=fields)

    def finish_report(self, batch_id: str, error: str | None = None) -> None:
        """Record that a batch's report was written (or why it was not)."""
        fields = {"report": ReportStatus.failed.value if error else ReportStatus.written.value}
        if error:
            fields["report_error"] = error
        self.redis.hset(keys.batch_key(batch_id), mapping=fields)

    def webhook_secret(self, owner: str) -> str:
        """The secret that signs `owner`'s deliveries (see `gpnn.worker.webhooks`)."""
        from gpnn.worker.webhooks import SECRET_PREFIX, owner_secret

        if self.settings.webhook_secret is not None:
            master = self.settings.webhook_secret.get_secret_value()
        else:
            generated = SECRET_PREFIX + secrets.token_urlsafe(32)
            self.redis.set(keys.webhook_secret_key(), generated, nx=True)
            master = self.redis.get(keys.webhook_secret_key()).decode()
        return owner_secret(master, owner)

    def send_webhook(self, record: dict[str, Any], event: str, data: dict[str, Any]) -> None:
        """Queue a signed delivery of `event` to the record's webhook (retried with backoff
        by the delivery job, on the webhook workers)."""
        body = json.dumps({"type": event, "created_at": now_iso(), "data": data})
        self.webhooks_queue.enqueue(
            "gpnn.worker.webhooks.deliver",
            record["webhook_url"],
            data["id"],
            body,
            record.get("owner", ANONYMOUS),
            job_timeout=defaults.WEBHOOK_JOB_TIMEOUT_S,
            result_ttl=self.settings.result_ttl_s,
            failure_ttl=self.settings.result_ttl_s,
        )

    def observe(self, name: str, value: float) -> None:
        """Add one observation to a histogram kept in Redis (shared by all workers)."""
        key = keys.histogram_key(name)
        with self.redis.pipeline(transaction=False) as pipe:
            for bound in defaults.DURATION_BUCKETS_S:
                if value <= bound:
                    pipe.hincrby(key, str(bound), 1)
            pipe.hincrby(key, "+Inf", 1)
            pipe.hincrbyfloat(key, "sum", value)
            pipe.hincrby(key, "count", 1)
            pipe.execute()


def preview_url(job_id: str, sample: int, level: int) -> str:
    """Where the API serves that preview (relative to the API's base URL)."""
    return f"/v1/jobs/{job_id}/previews/{sample}/{level}"


def output_url(job_id: str, n: int) -> str:
    """Where the API serves output `n` of a job (relative to the API's base URL)."""
    return f"/v1/jobs/{job_id}/outputs/{n}"


def public_job(record: dict[str, Any]) -> dict[str, Any]:
    """The job as users see it (API answers, webhooks)."""
    job_id = record["id"]
    outputs = record.get("outputs") or []
    return {
        "id": job_id,
        "task": record["task"],
        "params": record["params"],
        "samples": int(record.get("samples", 1)),
        "status": record["status"],
        "progress": record.get("progress"),
        "created_at": record.get("created_at"),
        "started_at": record.get("started_at"),
        "finished_at": record.get("finished_at"),
        "stopped_at": record.get("stopped_at"),
        "attempts": int(record.get("attempts", 0)),
        "error": record.get("error") if record["status"] != JobStatus.succeeded else None,
        "batch_id": record.get("batch_id"),
        "outputs": [output_url(job_id, n) for n in range(len(outputs))],
        "previews": [
            {**p, "url": preview_url(job_id, p["sample"], p["level"])}
            for p in record.get("previews") or []
        ],
        "timings": record.get("timings"),
        "estimate": record.get("estimate"),
    }


def public_batch(record: dict[str, Any], fraction: float | None = None) -> dict[str, Any]:
    """The batch as users see it (API answers, webhooks)."""
    total = int(record.get("total", 0))
    done = int(record.get("done", 0))
    status = record["status"]
    if not JobStatus(status).is_terminal():
        status = JobStatus.running if int(record.get("started", 0)) or done else JobStatus.queued
    return {
        "id": record["id"],
        "task": record["task"],
        "params": record["params"],
        "samples": int(record.get("samples", 1)),
        "status": status,
        "total": total,
        "done": done,
        "succeeded": int(record.get("succeeded", 0)),
        "failed": int(record.get("failed", 0)),
        "canceled": int(record.get("canceled", 0)),
        "progress": fraction if fraction is not None else (done / total if total else 1.0),
        "created_at": record.get("created_at"),
        "finished_at": record.get("finished_at"),
        "jobs": [f"/v1/jobs/{j}" for j in record.get("job_ids", [])],
        "manifest": f"/v1/batches/{record['id']}/manifest" if record.get("manifest") else None,
        "manifest_key": record.get("manifest"),
        "report": record.get("report"),
        "report_url": f"/v1/batches/{record['id']}/report/index.html"
        if record.get("report") == ReportStatus.written.value
        else None,
        "report_error": record.get("report_error"),
        "report_progress": int(record["report_done"]) / int(record["report_total"])
        if int(record.get("report_total", 0))
        else None,
        "skipped": record.get("skipped", []),
        "skipped_total": int(record.get("skipped_total", 0)),
    }


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
