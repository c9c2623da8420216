"""Named constants of the worker and the queue (settings hold the tunable ones)."""

# The webhook deliveries' queue is named the jobs queue's name (`GPNN_QUEUE_NAME`) with
# this suffix (`gpnn.worker.queueing`).
WEBHOOKS_QUEUE_SUFFIX = "-webhooks"

# Job records live this long while not finished (they get the result TTL once finished).
PENDING_RECORD_TTL_S = 30 * 24 * 3600
# Progress is written to Redis at most this often (level changes are always written).
PROGRESS_MIN_INTERVAL_S = 0.25
# Buckets (seconds) of the duration histograms kept in Redis for /metrics.
DURATION_BUCKETS_S = (0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
# An Idempotency-Key remembers its job this long.
IDEMPOTENCY_TTL_S = 24 * 3600
# Webhook deliveries: RQ timeout of one delivery job (all its retries included).
WEBHOOK_JOB_TIMEOUT_S = 600
# Level previews (only for jobs that ask for them): longest side in pixels (their store
# keys: `gpnn.store.keys.job_preview`).
PREVIEW_MAX_SIDE = 256
