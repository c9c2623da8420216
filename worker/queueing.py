"""The RQ queues of gpnn and what goes on them: image jobs, batch reports and webhook
deliveries. Each RQ job names its importable function here and nowhere else.

Webhook deliveries have their own queue, listened to first by workers of their own, so
that a notification never waits behind a long image job.
"""

from __future__ import annotations

from redis import Redis
from rq import Callback, Queue, Retry

from gpnn.config import Settings
from gpnn.worker import defaults


def jobs_queue_name(settings: Settings) -> str:
    """The queue of image jobs and batch reports."""
    return settings.queue_name


def webhooks_queue_name(settings: Settings) -> str:
    """The queue of webhook deliveries."""
    return settings.queue_name + defaults.WEBHOOKS_QUEUE_SUFFIX


class Queues:
    """The two queues of the service, and one method per kind of RQ job put on them.

    Parameters
    ----------
    connection : a `redis.Redis` with `decode_responses=False` (what RQ needs).
    settings : the service settings (queue name, timeouts, retries, result TTL).
    """

    def __init__(self, connection: Redis, settings: Settings) -> None:
        self.settings = settings
        self.jobs = Queue(jobs_queue_name(settings), connection=connection)
        self.webhooks = Queue(webhooks_queue_name(settings), connection=connection)

    def run_job(self, job_id: str) -> None:
        """Queue `gpnn.worker.jobs.run_job` for a job (under the job's own id), retried
        `job_retries` times; `on_rq_failure` brings every failed attempt to the record."""
        retries = self.settings.job_retries
        self.jobs.enqueue(
            "gpnn.worker.jobs.run_job",
            job_id,
            job_id=job_id,
            job_timeout=self.settings.job_timeout_s,
            retry=Retry(max=retries) if retries > 0 else None,
            on_failure=Callback("gpnn.worker.jobs.on_rq_failure"),
            result_ttl=self.settings.result_ttl_s,
            failure_ttl=self.settings.result_ttl_s,
        )

    def write_batch_report(self, batch_id: str) -> None:
        """Queue the evaluation report of a finished batch (`jobs.write_batch_report`)."""
        self.jobs.enqueue(
            "gpnn.worker.jobs.write_batch_report",
            batch_id,
            job_timeout=self.settings.job_timeout_s,
            result_ttl=self.settings.result_ttl_s,
            failure_ttl=self.settings.result_ttl_s,
        )

    def deliver_webhook(self, url: str, webhook_id: str, body: str, owner: str) -> None:
        """Queue one signed delivery (`webhooks.deliver`, which retries with backoff)."""
        self.webhooks.enqueue(
            "gpnn.worker.webhooks.deliver",
            url,
            webhook_id,
            body,
            owner,
            job_timeout=defaults.WEBHOOK_JOB_TIMEOUT_S,
            result_ttl=self.settings.result_ttl_s,
            failure_ttl=self.settings.result_ttl_s,
        )
