"""Signed webhook deliveries in the Standard Webhooks format, retried with backoff,
and only to addresses outside the service's own networks.

Each request carries the three headers of https://www.standardwebhooks.com:

- `webhook-id`: the job or batch id (one event per job or batch),
- `webhook-timestamp`: Unix seconds of this attempt,
- `webhook-signature`: `v1,<base64 HMAC-SHA256(key, "<id>.<timestamp>.<body>")>`.

Each owner (API key) has its own secret, `whsec_<base64 key>`, shown to that owner alone
by `GET /v1/webhooks/secret`: it is derived from the service's master secret
(`GPNN_WEBHOOK_SECRET`, or one generated once in Redis), so one tenant cannot sign
for another. A receiver verifies with any Standard Webhooks library, for example
``standardwebhooks.Webhook(secret).verify(body, headers)``.

Webhook URLs that resolve to loopback, private, link-local (cloud metadata),
multicast or reserved addresses are refused at submit and again before every
delivery attempt, unless `GPNN_WEBHOOK_ALLOW_NETWORKS` lists them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import logging
import secrets
import socket
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from urllib.parse import urlparse

import httpx
from redis import Redis
from rq import get_current_job
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from gpnn.config import Settings, get_settings
from gpnn.worker import keys
from gpnn.worker.queueing import Queues
from gpnn.worker.records import BatchRecord, JobRecord, now_iso

logger = logging.getLogger(__name__)

SECRET_PREFIX = "whsec_"


class ForbiddenTarget(ValueError):
    """A webhook URL that is not http(s), does not resolve, or points inward."""


def owner_secret(master: str, owner: str) -> str:
    """The signing secret of one owner, derived from the master secret."""
    key = hmac.new(master.encode(), f"webhooks:{owner}".encode(), hashlib.sha256).digest()
    return SECRET_PREFIX + base64.b64encode(key).decode()


def sign(secret: str, webhook_id: str, timestamp: int, body: str | bytes) -> str:
    """The `webhook-signature` value of one delivery."""
    if isinstance(body, bytes):
        body = body.decode()
    return Webhook(secret).sign(webhook_id, datetime.fromtimestamp(timestamp, UTC), body)


def verify(secret: str, body: str | bytes, headers: dict[str, str]) -> bool:
    """Whether a delivery's signature is valid and its timestamp recent (5 minutes)."""
    try:
        Webhook(secret).verify(body, headers, json_parse=False)
    except WebhookVerificationError:
        return False
    return True


def check_target(url: str | None, allowed: Sequence[str] = ()) -> str:
    """`url` when it is http(s) and every address its host resolves to is public (or in
    one of the `allowed` networks, CIDR); else `ForbiddenTarget` naming the reason."""
    networks = [ipaddress.ip_network(n, strict=False) for n in allowed]
    parsed = urlparse(url or "")
    if parsed.scheme not in ("http", "https") or not parsed.hostname or len(url) > 2048:
        raise ForbiddenTarget("must be an http(s) URL")
    host = parsed.hostname
    try:
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (ValueError, OSError) as error:
        raise ForbiddenTarget(f"`{host}` cannot be resolved ({error})") from None
    for info in infos:
        address = ipaddress.ip_address(info[4][0].split("%")[0])
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            address = address.ipv4_mapped
        if any(address in network for network in networks):
            continue
        if not address.is_global or address.is_multicast:
            raise ForbiddenTarget(
                f"`{host}` is {address}, an internal address (loopback, private, link-local "
                "or metadata); the service does not call those"
            )
    return url


def deliver(url: str, webhook_id: str, body: str, owner: str) -> int:
    """RQ job: POST `body` to `url`, retrying failures (network, 5xx, 429) with backoff.

    Returns the final HTTP status; raises after the last retry, or at once when the
    target now resolves inward, so the delivery lands in RQ's failed registry.
    """
    settings = get_settings()
    secret = signing_secret(get_current_job().connection, settings, owner)
    attempts = settings.webhook_retries + 1
    error = ""
    for attempt in range(attempts):
        check_target(url, settings.webhook_allow_networks)
        stamp = int(time.time())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "gpnn-webhooks/1",
            "webhook-id": webhook_id,
            "webhook-timestamp": str(stamp),
            "webhook-signature": sign(secret, webhook_id, stamp, body),
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


def signing_secret(redis: Redis, settings: Settings, owner: str) -> str:
    """The secret that signs `owner`'s deliveries, derived from the master secret:
    `GPNN_WEBHOOK_SECRET`, or one generated once and kept in Redis."""
    if settings.webhook_secret is not None:
        master = settings.webhook_secret.get_secret_value()
    else:
        generated = SECRET_PREFIX + secrets.token_urlsafe(32)
        redis.set(keys.webhook_secret_key(), generated, nx=True)
        master = redis.get(keys.webhook_secret_key()).decode()
    return owner_secret(master, owner)


def notify(queues: Queues, record: JobRecord | BatchRecord) -> None:
    """Queue the event of a finished job or batch (`job.<status>`, `batch.<status>`, its
    public shape as data) for delivery to its webhook; nothing when it has none."""
    if not record.webhook_url:
        return
    event = f"{record.kind}.{record.status.value}"
    body = json.dumps({"type": event, "created_at": now_iso(), "data": record.public()})
    queues.deliver_webhook(record.webhook_url, record.id, body, record.owner)
