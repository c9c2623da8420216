"""gpnn.store: where inputs, outputs and manifests live (a local folder or S3).

>>> store = open_store("file:///tmp/gpnn", settings)  # retries by settings.store_retries
>>> store.put("jobs/1/outputs/0.png", png_bytes)
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlparse

from gpnn.store.base import (
    ObjectNotFound,
    RetryingStore,
    Store,
    StoreError,
    TransientStoreError,
    with_retries,
    with_retry_policy,
)
from gpnn.store.file import FileStore

if TYPE_CHECKING:
    from gpnn.config import Settings


def open_store(
    url: str,
    settings: Settings | None = None,
    *,
    retries: int | None = None,
    delay_s: float | None = None,
) -> Store:
    """The store named by `url`: `file:///path` or `s3://bucket/prefix`.

    With `settings` (or `retries`), a `RetryingStore` that retries transient errors
    `retries` times (default `settings.store_retries`) with backoff from `delay_s`
    (default `settings.store_retry_delay_s`); without either, the bare backend.
    """
    backend = _open_backend(url, settings)
    if retries is None and settings is not None:
        retries = settings.store_retries
    if retries is None:
        return backend
    if delay_s is None:
        delay_s = settings.store_retry_delay_s if settings is not None else 0.2
    return with_retry_policy(backend, retries=retries, delay_s=delay_s)


def _open_backend(url: str, settings: Settings | None) -> Store:
    if url.startswith("file://"):
        return FileStore(url.removeprefix("file://") or ".")
    if url.startswith("s3://"):
        from gpnn.store.s3 import S3Store

        parsed = urlparse(url)
        if not parsed.netloc:
            raise ValueError(f"store URL `{url}` names no bucket")
        options = {}
        if settings is not None:
            secret = settings.s3_secret_access_key
            options = {
                "endpoint_url": settings.s3_endpoint_url,
                "public_endpoint_url": settings.s3_public_endpoint_url,
                "region": settings.s3_region,
                "access_key_id": settings.s3_access_key_id,
                "secret_access_key": secret.get_secret_value() if secret else None,
                "create_bucket": settings.s3_create_bucket,
            }
        return S3Store(parsed.netloc, parsed.path, **options)
    raise ValueError(f"unknown store URL `{url}` (expected file:// or s3://)")


__all__ = [
    "FileStore",
    "ObjectNotFound",
    "RetryingStore",
    "Store",
    "StoreError",
    "TransientStoreError",
    "open_store",
    "with_retries",
    "with_retry_policy",
]
