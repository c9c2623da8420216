"""Every change of state of a job or a batch.

State changes go only through `Ledger` methods; each one stamps the time and refuses to
leave a terminal state. What follows a change is done by the module of its own concern,
called from here: queueing (`gpnn.worker.queueing`), the /metrics counters
(`gpnn.worker.counters`), the webhook of a finished job or batch
(`gpnn.worker.webhooks.notify`) and, for the last job of a batch, its manifest
(`gpnn.worker.manifests`). The records themselves are `gpnn.worker.records`.
"""

from __future__ import annotations

import json
import logging
import secrets
import socket
from typing import Any

from redis import Redis
from redis.exceptions import WatchError

from gpnn.config import Settings
from gpnn.store import Store, open_store, with_retry_policy
from gpnn.worker import counters, defaults, keys, manifests, webhooks
from gpnn.worker.exceptions import AttemptSuperseded, JobCanceled, UnknownJob
from gpnn.worker.queueing import Queues
from gpnn.worker.records import (
    ANONYMOUS,
    BatchRecord,
    JobRecord,
    now_iso,
    preview_url,
    time_score,
)
from gpnn.worker.status import JobStatus, ReportStatus

logger = logging.getLogger(__name__)


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
        self.queues = Queues(connection, settings)

    def _with_policy(self, store: Store) -> Store:
        retries, delay_s = self.settings.store_retries, self.settings.store_retry_delay_s
        return with_retry_policy(store, retries=retries, delay_s=delay_s)

    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = open_store(self.settings.store_url, self.settings)
        return self._store

    # --- reading --------------------------------------------------------------------------

    def get_job(self, job_id: str) -> JobRecord:
        """The job record; `UnknownJob` when missing or expired."""
        return JobRecord.load(self.redis, job_id)

    def get_batch(self, batch_id: str) -> BatchRecord:
        """The batch record with its counters; `UnknownJob` when missing or expired."""
        return BatchRecord.load(self.redis, batch_id)

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
            if status is None or JobRecord.decode_field("status", status).is_terminal():
                total += 1.0
            elif progress:
                total += JobRecord.decode_field("progress", progress).get("fraction", 0.0)
        return total / len(job_ids)

    def cancel_requested(self, job_id: str) -> bool:
        return bool(self.redis.exists(keys.cancel_key(job_id)))

    # --- creating -------------------------------------------------------------------------

    def create_job(self, record: JobRecord) -> None:
        """Save a new job record (status queued) and put it on the queue."""
        job_id = record.id
        created = now_iso()
        record = record.model_copy(
            update={"status": JobStatus.queued, "created_at": created, "attempts": 0}
        )
        owner = record.owner
        with self.redis.pipeline() as pipe:
            pipe.hset(keys.job_key(job_id), mapping=record.to_redis())
            pipe.expire(keys.job_key(job_id), defaults.PENDING_RECORD_TTL_S)
            if not record.batch_id:  # a batch's jobs are listed through their batch
                pipe.zadd(keys.owner_jobs_key(owner), {job_id: time_score(created)})
            counters.count_created(pipe, owner)
            pipe.execute()
        self.queues.run_job(job_id)

    def create_batch(self, record: BatchRecord, jobs: list[JobRecord]) -> None:
        """Save a batch and its jobs, then queue the jobs (grouped samples per input)."""
        batch_id = record.id
        created = now_iso()
        record = record.model_copy(
            update={"status": JobStatus.queued, "created_at": created, "total": len(jobs)}
        )
        with self.redis.pipeline() as pipe:
            pipe.hset(keys.batch_key(batch_id), mapping=record.to_redis())
            pipe.expire(keys.batch_key(batch_id), defaults.PENDING_RECORD_TTL_S)
            pipe.zadd(keys.owner_batches_key(record.owner), {batch_id: time_score(created)})
            if jobs:
                pipe.rpush(keys.batch_jobs_key(batch_id), *[j.id for j in jobs])
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
        fields = JobRecord.redis_fields(**(fields or {}))
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
                    if new.is_terminal():
                        pipe.expire(key, self.settings.result_ttl_s)
                    counters.count_transition(
                        pipe, status, new, owner.decode() if owner else ANONYMOUS
                    )
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
                "attempts": record.attempts + 1,
                "lease": lease,
                "worker_host": self.settings.worker_host or socket.gethostname(),
            },
        )
        if started and record.batch_id and record.attempts == 0:
            self.redis.hincrby(keys.batch_key(record.batch_id), "started", 1)
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
            pipe.hset(keys.job_key(job_id), mapping=JobRecord.redis_fields(progress=progress))
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
            pipe.hset(keys.job_key(job_id), mapping=JobRecord.redis_fields(previews=previews))
            pipe.publish(
                keys.job_events_channel(job_id), json.dumps({"type": "preview", "preview": preview})
            )
            pipe.execute()

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
            counters.observe_success(self.redis, timings, samples=max(len(outputs), 1))
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
        self.redis.hset(keys.job_key(job_id), mapping=JobRecord.redis_fields(stopped_at=now_iso()))

    def cancel_batch(self, batch_id: str) -> int:
        """Cancel every unfinished job of a batch; the number canceled."""
        batch = self.get_batch(batch_id)
        return sum(self.cancel(job_id) for job_id in batch.job_ids)

    # --- finishing ------------------------------------------------------------------------

    def _finished(self, job_id: str) -> None:
        record = self.get_job(job_id)
        webhooks.notify(self.queues, record)
        batch_id = record.batch_id
        if batch_id:
            key = keys.batch_key(batch_id)
            with self.redis.pipeline() as pipe:
                pipe.hincrby(key, record.status.value, 1)
                pipe.hincrby(key, "done", 1)
                pipe.hget(key, "total")
                _, done, total = pipe.execute()
            if total is not None and done == int(total):
                self._finish_batch(batch_id)

    def _finish_batch(self, batch_id: str) -> None:
        batch = self.get_batch(batch_id)
        manifest_key = manifests.write_manifest(self.store, self.redis, batch)
        status = JobStatus.succeeded if batch.succeeded > 0 else JobStatus.failed
        if batch.canceled == batch.total > 0:
            status = JobStatus.canceled
        with self.redis.pipeline() as pipe:
            pipe.hset(
                keys.batch_key(batch_id),
                mapping=BatchRecord.redis_fields(
                    status=status, finished_at=now_iso(), manifest=manifest_key
                ),
            )
            pipe.expire(keys.batch_key(batch_id), self.settings.result_ttl_s)
            pipe.expire(keys.batch_jobs_key(batch_id), self.settings.result_ttl_s)
            pipe.execute()
        logger.info("batch %s: %s", batch_id, status.value)
        if batch.report == ReportStatus.requested:
            self.queues.write_batch_report(batch_id)
        if batch.webhook_url:
            webhooks.notify(self.queues, self.get_batch(batch_id))

    # --- reports -----------------------------------------------------------------------------

    def report_step(self, batch_id: str, done: int, total: int) -> None:
        """Record how many of a report's images are measured (shown as its progress)."""
        fields = BatchRecord.redis_fields(
            report=ReportStatus.running, report_done=done, report_total=total
        )
        self.redis.hset(keys.batch_key(batch_id), mapping=fields)

    def finish_report(self, batch_id: str, error: str | None = None) -> None:
        """Record that a batch's report was written (or why it was not)."""
        report = ReportStatus.failed if error else ReportStatus.written
        fields = BatchRecord.redis_fields(report=report, report_error=error)
        self.redis.hset(keys.batch_key(batch_id), mapping=fields)
