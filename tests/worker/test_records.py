"""Job and batch records: written to a real Redis and read back, they are themselves, and
their public shape is the one every reader sees."""

from __future__ import annotations

import json
import math

import pytest

from gpnn.core.params import params_for
from gpnn.worker import keys
from gpnn.worker.records import BatchRecord, JobRecord, now_iso
from gpnn.worker.status import JobStatus, ReportStatus

JOB_ID = "a" * 32
BATCH_ID = "b" * 32


def job(**changes) -> JobRecord:
    """A queued generate job, alpha at its default inf, with `changes`."""
    values = {
        "id": JOB_ID,
        "task": "generate",
        "params": params_for("generate", seed=7),
        "samples": 3,
        "owner": "key-0123456789abcdef",
        "inputs": {"source": f"jobs/{JOB_ID}/inputs/source.png"},
        "output_prefix": f"jobs/{JOB_ID}/outputs",
        "created_at": now_iso(),
        **changes,
    }
    return JobRecord(**values)


JOBS = {
    "queued, alpha inf": job(),
    "running, with progress and previews": job(
        status=JobStatus.running,
        started_at=now_iso(),
        attempts=2,
        lease="0123abcd",
        worker_host="host-1",
        preview_levels=True,
        progress={"sample": 1, "samples": 3, "level": 2, "levels": 5, "fraction": 0.4},
        previews=[{"sample": 0, "level": 0, "levels": 5}],
        webhook_url="https://example.com/hook",
        estimate={"work_mpi": 1.5, "seconds": 2.0, "memory_mb": 40, "mode": "fast"},
    ),
    "succeeded": job(
        status=JobStatus.succeeded,
        finished_at=now_iso(),
        outputs=[f"jobs/{JOB_ID}/outputs/{n}.png" for n in range(3)],
        timings={"engine_s": 1.25, "total_s": 1.5},
    ),
    "failed batch job, finite alpha": job(
        params=params_for("retarget", width=64, alpha=0.005),
        task="retarget",
        samples=1,
        status=JobStatus.failed,
        error="the image is too small",
        batch_id=BATCH_ID,
        batch_index=4,
        input_name="photos/cat.png",
    ),
    "collage, a list of inputs": job(
        task="collage",
        params=params_for("collage", width=96),
        inputs={"sources": ["a.png", "b.png"]},
    ),
    "inpaint by colour": job(
        task="inpaint", samples=1, params=params_for("inpaint", color=(255, 0, 0))
    ),
}


@pytest.mark.parametrize("record", JOBS.values(), ids=JOBS.keys())
def test_a_job_record_written_to_redis_and_read_back_is_itself(redis, record):
    redis.hset(keys.job_key(record.id), mapping=record.to_redis())
    assert JobRecord.load(redis, record.id) == record


def test_alpha_inf_is_stored_as_the_string_infinity(redis):
    record = job()
    redis.hset(keys.job_key(record.id), mapping=record.to_redis())
    stored = json.loads(redis.hget(keys.job_key(record.id), "params"))
    assert stored["alpha"] == "Infinity"
    assert JobRecord.load(redis, record.id).params.alpha == math.inf


def test_a_batch_record_and_its_job_list_read_back_are_itself(redis):
    record = BatchRecord(
        id=BATCH_ID,
        task="generate",
        params=[params_for("generate"), params_for("generate", sigma=1.25)],
        samples=2,
        output_prefix=f"batches/{BATCH_ID}",
        origin="archive",
        report=ReportStatus.requested,
        skipped=[{"name": ".DS_Store", "reason": "hidden file"}],
        skipped_total=1,
        created_at=now_iso(),
        total=2,
        started=1,
        done=1,
        failed=1,
        job_ids=["c" * 32, "d" * 32],
    )
    redis.hset(keys.batch_key(record.id), mapping=record.to_redis())
    redis.rpush(keys.batch_jobs_key(record.id), *record.job_ids)
    assert "job_ids" not in record.to_redis()  # kept in their own list
    assert BatchRecord.load(redis, record.id) == record


def test_a_partial_update_is_stored_as_the_whole_record_is(redis):
    record = job()
    redis.hset(keys.job_key(record.id), mapping=record.to_redis())
    timings = {"engine_s": 2.0, "total_s": 2.5}
    redis.hset(
        keys.job_key(record.id),
        mapping=JobRecord.redis_fields(status=JobStatus.succeeded, timings=timings),
    )
    read = JobRecord.load(redis, record.id)
    assert read == record.model_copy(update={"status": JobStatus.succeeded, "timings": timings})


def test_a_field_the_record_does_not_have_is_refused():
    with pytest.raises(KeyError, match="`colour` is no field of JobRecord"):
        JobRecord.redis_fields(colour="red")


def test_the_public_shape_shows_links_not_store_keys_and_no_error_once_succeeded():
    record = JOBS["succeeded"].model_copy(update={"error": "an earlier attempt was lost"})
    public = record.public()
    assert public["outputs"] == [f"/v1/jobs/{JOB_ID}/outputs/{n}" for n in range(3)]
    assert public["error"] is None
    assert public["params"]["alpha"] == "Infinity"
    assert public["created_at"] == record.created_at  # the stamp as written, not reformatted
    running = JOBS["running, with progress and previews"].public()
    assert running["previews"] == [
        {"sample": 0, "level": 0, "levels": 5, "url": f"/v1/jobs/{JOB_ID}/previews/0/0"}
    ]


def test_a_batch_in_progress_shows_running_once_a_job_started():
    batch = BatchRecord(
        id=BATCH_ID,
        task="generate",
        params=[params_for("generate")],
        output_prefix=f"batches/{BATCH_ID}",
        total=4,
    )
    assert batch.public()["status"] == "queued"
    assert batch.model_copy(update={"started": 1}).public()["status"] == "running"
    assert batch.public(fraction=0.25)["progress"] == 0.25


def test_seeds_follow_the_seed_of_the_parameters():
    assert job().seeds == [7, 8, 9]


def test_a_field_read_alone_is_decoded_as_in_the_whole_record(redis):
    record = JOBS["running, with progress and previews"]
    redis.hset(keys.job_key(record.id), mapping=record.to_redis())
    status, progress = redis.hmget(keys.job_key(record.id), "status", "progress")
    assert JobRecord.decode_field("status", status) is JobStatus.running
    assert JobRecord.decode_field("progress", progress) == record.progress
