"""The two stores behave the same: atomic put, get, exists, list, expiry, URLs."""

from __future__ import annotations

import os
import time
from pathlib import Path

import httpx
import pytest

from gpnn.store import FileStore, ObjectNotFound, TransientStoreError, open_store, with_retries

from .conftest import S3_BUCKET, unique


@pytest.fixture(params=["file", "s3"])
def store(request, tmp_path):
    if request.param == "file":
        return FileStore(tmp_path / "store")
    endpoint = request.getfixturevalue("s3_endpoint")
    from gpnn.store.s3 import S3Store

    return S3Store(
        S3_BUCKET,
        f"unit-{unique()}",
        endpoint_url=endpoint,
        access_key_id="test",
        secret_access_key="test",
    )


def test_put_get_list_exists(store):
    store.ping()
    store.put("jobs/a/outputs/0.png", b"zero", "image/png")
    store.put("jobs/a/outputs/1.png", b"one")
    store.put("jobs/b/inputs/source.png", b"src")
    store.put("jobs/a/outputs/0.png", b"zero again")
    assert store.get("jobs/a/outputs/0.png") == b"zero again"
    assert store.exists("jobs/a/outputs/1.png")
    assert not store.exists("jobs/a/outputs/2.png")
    assert store.list("jobs/a/") == ["jobs/a/outputs/0.png", "jobs/a/outputs/1.png"]
    assert store.list("jobs/") == [
        "jobs/a/outputs/0.png",
        "jobs/a/outputs/1.png",
        "jobs/b/inputs/source.png",
    ]
    with pytest.raises(ObjectNotFound):
        store.get("jobs/a/outputs/9.png")


def test_keys_cannot_escape(store):
    for bad in ("../x", "/etc/passwd", "a/../../b", ""):
        with pytest.raises(ValueError):
            store.put(bad, b"x")


def test_delete_expired_keeps_recent(store):
    # S3 stamps objects to the second, so the cutoff sits 1.5 s clear of both objects
    # (a cutoff 1 s before the delete call failed whenever that call came late).
    store.put("jobs/old/0.png", b"x")
    if isinstance(store, FileStore):
        os.utime(store.root / "jobs/old/0.png", (time.time() - 100, time.time() - 100))
    else:
        time.sleep(1.5)  # the object's age is what is tested: no event to wait for
    cutoff = time.time()
    if not isinstance(store, FileStore):
        time.sleep(1.5)
    store.put("jobs/new/0.png", b"y")
    assert store.delete_expired("jobs/", older_than_s=time.time() - cutoff) == 1
    assert store.list("jobs/") == ["jobs/new/0.png"]


def test_download_url(store):
    store.put("jobs/u/0.png", b"png bytes", "image/png")
    url = store.download_url("jobs/u/0.png", 60)
    if isinstance(store, FileStore):
        assert url is None
    else:
        answer = httpx.get(url)
        assert answer.status_code == 200 and answer.content == b"png bytes"


def test_file_store_put_is_atomic(tmp_path):
    store = FileStore(tmp_path)
    store.put("k/obj", b"a" * 1000)
    leftovers = [p.name for p in (tmp_path / "k").iterdir()]
    assert leftovers == ["obj"]


def test_open_store_by_url(tmp_path):
    store = open_store(f"file://{tmp_path}/x")
    assert isinstance(store, FileStore) and store.root == (tmp_path / "x").resolve()
    with pytest.raises(ValueError, match="unknown store URL"):
        open_store("ftp://host/x")


def test_with_retries_backs_off_then_succeeds():
    calls = []

    def flaky():
        calls.append(time.monotonic())
        if len(calls) < 3:
            raise TransientStoreError("503")
        return "ok"

    assert with_retries(flaky, retries=5, delay_s=0.01) == "ok"
    assert len(calls) == 3
    with pytest.raises(TransientStoreError):
        with_retries(
            lambda: (_ for _ in ()).throw(TransientStoreError("down")), retries=1, delay_s=0.0
        )


def test_s3_unreachable_is_transient():
    from gpnn.store.s3 import S3Store

    store = S3Store(
        "nowhere", endpoint_url="http://127.0.0.1:9", access_key_id="a", secret_access_key="b"
    )
    with pytest.raises(TransientStoreError):
        store.get("x")


def test_file_store_expiry_removes_the_folders_it_empties(tmp_path):
    store = FileStore(tmp_path / "store")
    old = time.time() - 100
    for key in ("jobs/old/inputs/source.png", "jobs/old/outputs/0.png", "jobs/mixed/a.png"):
        store.put(key, b"x")
        os.utime(store.root / key, (old, old))
    store.put("jobs/mixed/b.png", b"recent")
    assert store.delete_expired("jobs/", older_than_s=50) == 3
    assert not (store.root / "jobs/old").exists()
    assert sorted(p.name for p in (store.root / "jobs").iterdir()) == ["mixed"]
    assert store.list("jobs/") == ["jobs/mixed/b.png"]
    store.put("jobs/mixed/c.png", b"y")  # a folder kept in use stays writable
    store.delete_expired("jobs/", older_than_s=0)
    assert store.root.is_dir() and not any(store.root.iterdir())


def test_file_store_lists_by_walking_only_the_prefix_folder(tmp_path, monkeypatch):
    import gpnn.store.file as file_module

    store = FileStore(tmp_path / "store")
    for n in range(3):
        store.put(f"batches/other/outputs/{n}.png", b"x")
    store.put("jobs/a/outputs/0.png", b"a")
    store.put("jobs/ab/outputs/0.png", b"b")
    walked: list[str] = []
    real_walk = file_module.os.walk

    def counting_walk(top, *args, **kwargs):
        for entry in real_walk(top, *args, **kwargs):
            walked.append(Path(entry[0]).relative_to(store.root).as_posix())
            yield entry

    monkeypatch.setattr(file_module.os, "walk", counting_walk)
    assert store.list("jobs/a") == ["jobs/a/outputs/0.png", "jobs/ab/outputs/0.png"]
    assert walked and all(folder.startswith("jobs") for folder in walked)
    walked.clear()
    assert store.list("jobs/a/") == ["jobs/a/outputs/0.png"]
    assert walked and all(folder.startswith("jobs/a") for folder in walked)
    assert store.list("nothing/here/") == []
    with pytest.raises(ValueError):
        store.list("../")
