"""A batch's manifest: inputs -> outputs, parameters, seeds, timings and errors of every
job, written to the store as ``batches/<id>/manifest.json`` when the batch ends.

A job's entry takes its parameters, status, timestamps, output links and error from the
job's public shape (`JobRecord.public`), so they read as in API answers and webhooks.
"""

from __future__ import annotations

import json
from typing import Any

from redis import Redis

from gpnn.store import Store
from gpnn.store import keys as store_keys
from gpnn.worker.exceptions import UnknownJob
from gpnn.worker.records import BatchRecord, JobRecord, now_iso


def manifest_entry(job: JobRecord) -> dict[str, Any]:
    """One job of a manifest."""
    public = job.public()
    return {
        "job_id": job.id,
        "input": job.input_name,
        "inputs": job.inputs,
        "params": public["params"],
        "status": public["status"],
        "outputs": job.outputs,
        "output_urls": public["outputs"],
        "seeds": job.seeds,
        "created_at": public["created_at"],
        "started_at": public["started_at"],
        "finished_at": public["finished_at"],
        "timings": public["timings"],
        "attempts": public["attempts"],
        "worker_host": job.worker_host,
        "error": public["error"],
    }


def build_manifest(redis: Redis, batch: BatchRecord) -> dict[str, Any]:
    """The manifest of `batch` as its jobs' records stand now (an expired job is listed
    with the status "expired")."""
    entries = []
    for job_id in batch.job_ids:
        try:
            entries.append(manifest_entry(JobRecord.load(redis, job_id)))
        except UnknownJob:
            entries.append({"job_id": job_id, "status": "expired"})
    return {
        "batch_id": batch.id,
        "task": batch.task.value,
        "samples": batch.samples,
        "created_at": batch.created_at,
        "written_at": now_iso(),
        "jobs": entries,
        "skipped": batch.skipped,
        "skipped_total": batch.skipped_total,
    }


def write_manifest(store: Store, redis: Redis, batch: BatchRecord) -> str:
    """Build the manifest of `batch`, put it in the store; its store key."""
    key = store_keys.batch_manifest(batch.output_prefix)
    data = json.dumps(build_manifest(redis, batch), indent=2).encode()
    store.put(key, data, "application/json")
    return key
