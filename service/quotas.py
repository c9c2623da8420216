"""Per-owner quotas, checked before anything is stored: a submission rate and a ceiling
on unfinished jobs. Both answer 429 with `Retry-After`."""

from __future__ import annotations

from gpnn.config import Settings
from gpnn.service.errors import RateLimited
from gpnn.worker import keys
from gpnn.worker.ledger import Ledger

# The rate window: it opens with an owner's first submission and lasts this long.
RATE_WINDOW_S = 60
# Retry-After when an owner has too many unfinished jobs (they finish at their own pace).
ACTIVE_RETRY_AFTER_S = 30


def check_quota(ledger: Ledger, settings: Settings, owner: str, new_jobs: int) -> None:
    """Count one submission of `new_jobs` jobs by `owner`; 429 when over a quota."""
    redis = ledger.redis
    if settings.rate_limit_per_minute:
        key = keys.rate_key(owner)
        with redis.pipeline() as pipe:
            pipe.set(key, 0, ex=RATE_WINDOW_S, nx=True)  # opens the window (Redis 6: no EXPIRE NX)
            pipe.incr(key)
            pipe.ttl(key)
            _, count, ttl = pipe.execute()
        if count > settings.rate_limit_per_minute:
            raise RateLimited(
                f"more than {settings.rate_limit_per_minute} submissions in a minute; "
                f"retry in {max(ttl, 1)} s",
                retry_after_s=max(ttl, 1),
            )
    active = int(redis.hget(keys.active_jobs_key(), owner) or 0)
    if active + new_jobs > settings.max_active_jobs:
        raise RateLimited(
            f"{active} unfinished jobs; at most {settings.max_active_jobs} may be queued or "
            f"running at once (this submission adds {new_jobs})",
            retry_after_s=ACTIVE_RETRY_AFTER_S,
        )
