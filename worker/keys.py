"""Every Redis key of gpnn, built in exactly one place."""

PREFIX = "gpnn"


def job_key(job_id: str) -> str:
    """Hash: the job record (status, params, progress, outputs...)."""
    return f"{PREFIX}:job:{job_id}"


def cancel_key(job_id: str) -> str:
    """String: set when a cancel was requested; the running worker polls it."""
    return f"{PREFIX}:cancel:{job_id}"


def batch_key(batch_id: str) -> str:
    """Hash: the batch record and its counters."""
    return f"{PREFIX}:batch:{batch_id}"


def batch_jobs_key(batch_id: str) -> str:
    """List: the ids of a batch's jobs, in manifest order."""
    return f"{PREFIX}:batch:{batch_id}:jobs"


def idempotency_key(owner: str, key: str) -> str:
    """Hash: the job an Idempotency-Key created and a digest of its request."""
    return f"{PREFIX}:idem:{owner}:{key}"


def idempotency_channel(owner: str, key: str) -> str:
    """Pub/sub: the job id once the Idempotency-Key's first request has stored its job,
    or "" when that request failed and freed the key."""
    return f"{PREFIX}:idem:{owner}:{key}:settled"


def state_counts_key() -> str:
    """Hash: state -> number of jobs (current for queued/running, totals for the rest)."""
    return f"{PREFIX}:stats:states"


def histogram_key(name: str) -> str:
    """Hash: bucket upper bound -> count, plus `sum` and `count`."""
    return f"{PREFIX}:stats:hist:{name}"


def webhook_secret_key() -> str:
    """String: the generated webhook signing secret (when none is configured)."""
    return f"{PREFIX}:webhook-secret"


def rate_key(owner: str) -> str:
    """String: an owner's submissions in the current rate window (expires with it)."""
    return f"{PREFIX}:rate:{owner}"


def active_jobs_key() -> str:
    """Hash: owner -> number of its unfinished (queued or running) jobs."""
    return f"{PREFIX}:stats:active-by-owner"


def owner_jobs_key(owner: str) -> str:
    """Sorted set: an owner's jobs submitted one by one (not a batch's), scored by their
    creation time in milliseconds; `GET /v1/jobs` pages through it (newest first)."""
    return f"{PREFIX}:owner:{owner}:jobs"


def owner_batches_key(owner: str) -> str:
    """Sorted set: an owner's batches by creation time in milliseconds (`GET /v1/batches`)."""
    return f"{PREFIX}:owner:{owner}:batches"


def job_events_channel(job_id: str) -> str:
    """Pub/sub channel: a job's status changes, progress and previews, as JSON messages
    (`GET /v1/jobs/{id}/events`, `Prefer: wait`)."""
    return f"{PREFIX}:events:{job_id}"
