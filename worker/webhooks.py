"""Signed webhook deliveries, retried with exponential backoff.

Each request carries three headers:

- `Webhook-Id`: the job or batch id,
- `Webhook-Timestamp`: Unix seconds of this attempt,
- `Webhook-Signature`: `v1=<hex HMAC-SHA256(secret, "<id>.<timestamp>.<body>")>`.

A receiver recomputes the HMAC with the secret (`GPNN_WEBHOOK_SECRET`, or
`GET /v1/webhooks/secret`), compares in constant time and refuses old timestamps.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time

import httpx
from rq import get_current_job

from gpnn.config import get_settings

logger = logging.getLogger(__name__)

SIGNATURE_VERSION = "v1"


def sign(secret: str, webhook_id: str, timestamp: int, body: str | bytes) -> str:
    """The `Webhook-Signature` value of one delivery."""
    if isinstance(body, str):
        body = body.encode()
    message = f"{webhook_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()
    return f"{SIGNATURE_VERSION}={digest}"


def verify(
    secret: str,
    webhook_id: str,
    timestamp: str | int,
    body: str | bytes,
    signature: str,
    *,
    tolerance_s: float = 300.0,
) -> bool:
    """Whether `signature` is valid for this delivery and its timestamp recent."""
    try:
        stamp = int(timestamp)
    except (TypeError, ValueError):
        return False
    if abs(time.time() - stamp) > tolerance_s:
        return False
    return hmac.compare_digest(sign(secret, webhook_id, stamp, body), signature)


def deliver(url: str, webhook_id: str, body: str) -> int:
    """RQ job: POST `body` to `url`, retrying failures (network, 5xx, 429) with backoff.

    Returns the final HTTP status; raises after the last retry so the delivery
    lands in RQ's failed registry.
    """
    from gpnn.worker.ledger import Ledger

    settings = get_settings()
    secret = Ledger(get_current_job().connection, settings).webhook_secret()
    attempts = settings.webhook_retries + 1
    error = ""
    for attempt in range(attempts):
        stamp = int(time.time())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "gpnn-webhooks/1",
            "Webhook-Id": webhook_id,
            "Webhook-Timestamp": str(stamp),
            "Webhook-Signature": sign(secret, webhook_id, stamp, body),
        }
        try:
            answer = httpx.post(
                url, content=body, headers=headers, timeout=settings.webhook_timeout_s
            )
            if answer.status_code < 300:
                return answer.status_code
            error = f"HTTP {answer.status_code}"
            if 400 <= answer.status_code < 500 and answer.status_code not in (408, 409, 429):
                break
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
        if attempt + 1 < attempts:
            wait = settings.webhook_backoff_s * 2**attempt
            logger.warning("webhook %s to %s: %s; retry in %.1fs", webhook_id, url, error, wait)
            time.sleep(wait)
    raise RuntimeError(f"webhook {webhook_id} to {url} failed: {error}")
