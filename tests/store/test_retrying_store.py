"""A store carries its retry policy: a plain `store.get(...)` retries transient errors."""

from __future__ import annotations

import pytest
from redis import Redis

from gpnn.config import Settings
from gpnn.store import FileStore, ObjectNotFound, TransientStoreError, open_store


class FlakyBackend:
    """A backend whose every operation fails transiently `failures` times, then works."""

    url = "fake://flaky"

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls: list[str] = []
        self.objects: dict[str, bytes] = {"a/k": b"v"}

    def _call(self, name: str) -> None:
        self.calls.append(name)
        if self.calls.count(name) <= self.failures:
            raise TransientStoreError(f"{name}: 503 slow down")

    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        self._call("put")
        self.objects[key] = data

    def get(self, key: str) -> bytes:
        self._call("get")
        if key not in self.objects:
            raise ObjectNotFound(key)
        return self.objects[key]

    def exists(self, key: str) -> bool:
        self._call("exists")
        return key in self.objects

    def list(self, prefix: str) -> list[str]:
        self._call("list")
        return sorted(k for k in self.objects if k.startswith(prefix))

    def delete_expired(self, prefix: str, older_than_s: float) -> int:
        self._call("delete_expired")
        return 0

    def download_url(self, key: str, expires_s: int) -> str | None:
        return None

    def ping(self) -> None:
        self._call("ping")


def test_plain_calls_are_retried_by_the_store_itself():
    from gpnn.store import RetryingStore

    backend = FlakyBackend(failures=2)
    store = RetryingStore(backend, retries=5, delay_s=0.0)
    assert store.get("a/k") == b"v"
    store.put("a/n", b"w")
    assert store.exists("a/n")
    assert store.list("a/") == ["a/k", "a/n"]
    assert store.delete_expired("a/", 1.0) == 0
    assert [backend.calls.count(n) for n in ("get", "put", "exists", "list")] == [3, 3, 3, 3]
    assert store.url == backend.url


def test_the_policy_has_a_limit_and_lets_lasting_errors_through():
    from gpnn.store import RetryingStore

    store = RetryingStore(FlakyBackend(failures=3), retries=2, delay_s=0.0)
    with pytest.raises(TransientStoreError):
        store.get("a/k")
    with pytest.raises(ObjectNotFound):  # not transient: never retried
        RetryingStore(FlakyBackend(failures=0), retries=5, delay_s=0.0).get("a/missing")


def _flaky_file_store_get(monkeypatch, failures: int) -> list[str]:
    calls: list[str] = []
    real_get = FileStore.get

    def get(self, key):
        calls.append(key)
        if len(calls) <= failures:
            raise TransientStoreError("disk busy")
        return real_get(self, key)

    monkeypatch.setattr(FileStore, "get", get)
    return calls


def test_open_store_with_settings_retries_by_the_settings(tmp_path, monkeypatch):
    settings = Settings(store_url=f"file://{tmp_path}", store_retries=3, store_retry_delay_s=0)
    store = open_store(settings.store_url, settings)
    store.put("x/0.png", b"png")
    calls = _flaky_file_store_get(monkeypatch, failures=2)
    assert store.get("x/0.png") == b"png"
    assert len(calls) == 3


def test_the_ledger_store_retries_without_any_wrapper_at_the_call(tmp_path, monkeypatch):
    from gpnn.worker.ledger import Ledger

    settings = Settings(store_url=f"file://{tmp_path}", store_retries=3, store_retry_delay_s=0)
    ledger = Ledger(Redis(), settings)  # Redis is never reached: only the store is used
    ledger.store.put("x/0.png", b"png")
    calls = _flaky_file_store_get(monkeypatch, failures=2)
    assert ledger.store.get("x/0.png") == b"png"
    assert len(calls) == 3
