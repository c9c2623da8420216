"""The object store interface shared by the file and S3 backends.

Keys are relative, slash-separated paths (`jobs/<id>/outputs/0.png`). Every
backend makes `put` atomic: a reader sees the whole object or nothing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Protocol, TypeVar, runtime_checkable

logger = logging.getLogger(__name__)

T = TypeVar("T")


class StoreError(Exception):
    """A store operation failed for good."""


class ObjectNotFound(StoreError):
    """No object under that key."""


class TransientStoreError(StoreError):
    """A store operation failed in a way that may succeed when retried."""


@runtime_checkable
class Store(Protocol):
    """Where inputs, outputs and manifests live."""

    url: str

    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        """Write `data` under `key` atomically (replacing any previous object)."""

    def get(self, key: str) -> bytes:
        """The bytes under `key`; `ObjectNotFound` when missing."""

    def exists(self, key: str) -> bool:
        """Whether an object is under `key`."""

    def list(self, prefix: str) -> list[str]:
        """Keys starting with `prefix`, sorted."""

    def download_url(self, key: str, expires_s: int) -> str | None:
        """A time-limited URL to fetch `key` directly, or None (stream it through the API)."""

    def delete_expired(self, prefix: str, older_than_s: float) -> int:
        """Delete objects under `prefix` last written more than `older_than_s` ago."""

    def ping(self) -> None:
        """Raise `StoreError` when the store is not reachable."""


def check_key(key: str) -> str:
    """Refuse keys that could escape the store's root or that no store can hold
    (empty parts, '.', '..', NUL): ValueError."""
    parts = key.split("/")
    if not key or "\x00" in key or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"invalid store key `{key!r}`")
    return key


def with_retries(
    operation: Callable[[], T], *, retries: int = 5, delay_s: float = 0.2, what: str = "store"
) -> T:
    """Run `operation`, retrying `TransientStoreError` with exponential backoff."""
    for attempt in range(retries + 1):
        try:
            return operation()
        except TransientStoreError as error:
            if attempt == retries:
                raise
            wait = delay_s * 2**attempt
            logger.warning("%s: %s; retry %d/%d in %.1fs", what, error, attempt + 1, retries, wait)
            time.sleep(wait)
    raise AssertionError("unreachable")
