"""The object store interface shared by the file and S3 backends.

Keys are relative, slash-separated paths (`jobs/<id>/outputs/0.png`). Every
backend makes `put` atomic: a reader sees the whole object or nothing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, Protocol, TypeVar, runtime_checkable

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


class RetryingStore:
    """A store that retries its backend's transient errors by its own policy.

    `put`, `get`, `exists`, `list` and `delete_expired` retry `TransientStoreError`
    `retries` times with exponential backoff from `delay_s`, so a caller writes a plain
    `store.get(key)` and cannot forget the policy. `download_url` (no I/O) and `ping`
    (a health check answers at once) go straight to the backend, as does any other
    attribute of it (`root`, `bucket`...).
    """

    def __init__(self, backend: Store, *, retries: int = 5, delay_s: float = 0.2) -> None:
        self.backend = backend
        self.retries = retries
        self.delay_s = delay_s

    @property
    def url(self) -> str:
        return self.backend.url

    def _retried(self, what: str, operation: Callable[[], T]) -> T:
        return with_retries(operation, retries=self.retries, delay_s=self.delay_s, what=what)

    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        self._retried(f"write {key}", lambda: self.backend.put(key, data, content_type))

    def get(self, key: str) -> bytes:
        return self._retried(f"read {key}", lambda: self.backend.get(key))

    def exists(self, key: str) -> bool:
        return self._retried(f"look up {key}", lambda: self.backend.exists(key))

    def list(self, prefix: str) -> list[str]:
        return self._retried(f"list {prefix}", lambda: self.backend.list(prefix))

    def delete_expired(self, prefix: str, older_than_s: float) -> int:
        return self._retried(
            f"expire {prefix}", lambda: self.backend.delete_expired(prefix, older_than_s)
        )

    def download_url(self, key: str, expires_s: int) -> str | None:
        return self.backend.download_url(key, expires_s)

    def ping(self) -> None:
        self.backend.ping()

    def __getattr__(self, name: str) -> Any:
        if name == "backend":  # not set yet (copying, unpickling)
            raise AttributeError(name)
        return getattr(self.backend, name)


def with_retry_policy(store: Store, *, retries: int, delay_s: float) -> Store:
    """`store` retrying by that policy (unchanged when it already carries one)."""
    if isinstance(store, RetryingStore):
        return store
    return RetryingStore(store, retries=retries, delay_s=delay_s)
