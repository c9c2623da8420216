"""A batch manifest lists each job as its record says, and a job whose record expired as
"expired"."""

from __future__ import annotations

import json

from gpnn.core.params import params_for
from gpnn.store import FileStore
from gpnn.worker import keys
from gpnn.worker.manifests import build_manifest, write_manifest
from gpnn.worker.records import BatchRecord, JobRecord, now_iso
from gpnn.worker.status import JobStatus

BATCH_ID = "b" * 32


def batch_job(job_id: str, **changes) -> JobRecord:
    return JobRecord(
        id=job_id,
        task="generate",
        params=params_for("generate", seed=3),
        samples=2,
        inputs={"source": f"batches/{BATCH_ID}/inputs/0-a.png"},
        input_name="a.png",
        output_prefix=f"batches/{BATCH_ID}/outputs/a",
        batch_id=BATCH_ID,
        created_at=now_iso(),
        **changes,
    )


def test_the_manifest_lists_each_job_as_its_record_says_and_expired_ones(redis, tmp_path):
    done = batch_job(
        "c" * 32,
        status=JobStatus.succeeded,
        outputs=["batches/b/outputs/a/0.png", "batches/b/outputs/a/1.png"],
        timings={"engine_s": 1.0, "total_s": 1.25},
        attempts=1,
        worker_host="host-2",
        error="an earlier attempt was lost",
    )
    redis.hset(keys.job_key(done.id), mapping=done.to_redis())
    expired_id = "d" * 32
    batch = BatchRecord(
        id=BATCH_ID,
        task="generate",
        params=[done.params],
        samples=2,
        output_prefix=f"batches/{BATCH_ID}",
        created_at=now_iso(),
        job_ids=[done.id, expired_id],
    )

    manifest = build_manifest(redis, batch)
    entry, expired = manifest["jobs"]
    assert expired == {"job_id": expired_id, "status": "expired"}
    assert entry["outputs"] == done.outputs  # store keys, beside the links
    assert entry["output_urls"] == done.public()["outputs"]
    assert entry["seeds"] == [3, 4]
    assert entry["params"]["alpha"] == "Infinity"
    assert (entry["status"], entry["error"], entry["worker_host"]) == ("succeeded", None, "host-2")
    assert (manifest["batch_id"], manifest["task"], manifest["samples"]) == (
        BATCH_ID,
        "generate",
        2,
    )

    store = FileStore(tmp_path)
    key = write_manifest(store, redis, batch)
    assert key == f"batches/{BATCH_ID}/manifest.json"
    written = json.loads(store.get(key))
    assert written["jobs"] == manifest["jobs"]
