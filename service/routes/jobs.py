"""`/v1/jobs`: submit one job, read it, download its outputs, cancel it."""

from __future__ import annotations

import hashlib
import json
import re
import time
import uuid
from typing import Annotated

from fastapi import APIRouter, File, Form, Header, Path, Response, UploadFile
from fastapi.responses import RedirectResponse

from gpnn.core.params import Task
from gpnn.service.deps import LedgerDep, OwnerDep, SettingsDep, check_owner
from gpnn.service.downloads import stored_object, zip_response
from gpnn.service.errors import Conflict, NotFound
from gpnn.service.intake import (
    check_job_samples,
    check_webhook_url,
    image_extension,
    parse_params,
    uploads_for_task,
)
from gpnn.service.quotas import check_quota
from gpnn.service.schemas import ErrorBody, JobPublic
from gpnn.store import keys as store_keys
from gpnn.worker import defaults, keys
from gpnn.worker.exceptions import UnknownJob
from gpnn.worker.ledger import Ledger
from gpnn.worker.records import JobRecord
from gpnn.worker.status import JobStatus

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])

ERRORS = {
    401: {"model": ErrorBody, "description": "No API key."},
    403: {"model": ErrorBody, "description": "Unknown API key."},
    404: {"model": ErrorBody, "description": "Unknown job."},
    422: {"model": ErrorBody, "description": "Invalid input, each field at fault named."},
}
# Routes that read a multipart form answer 400 when the body is not one (no boundary,
# a damaged part header, a part without a name); FastAPI raises it while parsing.
MULTIPART_ERRORS = {
    400: {"model": ErrorBody, "description": "Malformed multipart/form-data body."},
}
JobId = Annotated[str, Path(pattern=r"^[0-9a-f]{32}$", description="Job id.")]
# `Prefer: wait=N` holds the answer of a submission at most this long (Replicate's bound).
MAX_WAIT_S = 60


def load_owned_job(ledger: Ledger, job_id: str, owner: str) -> JobRecord:
    record = ledger.get_job(job_id)
    check_owner(record, owner)
    return record


def put_input(ledger: Ledger, key: str, data: bytes) -> str:
    ledger.store.put(key, data)
    return key


@router.post(
    "",
    status_code=202,
    response_model=JobPublic,
    responses={
        **ERRORS,
        **MULTIPART_ERRORS,
        409: {"model": ErrorBody, "description": "Idempotency-Key reused for another request."},
        413: {"model": ErrorBody, "description": "Upload or image over the limits."},
        422: {"description": "Invalid task, parameter or image (the field is named)."},
    },
    summary="Submit a job",
)
def create_job(
    response: Response,
    ledger: LedgerDep,
    settings: SettingsDep,
    owner: OwnerDep,
    task: Annotated[Task, Form(description="The application to run.")],
    params: Annotated[
        str,
        Form(description="JSON object of the task's parameters (see the `*Params` schemas)."),
    ] = "{}",
    samples: Annotated[int, Form(ge=1, description="Number of outputs (seeds seed..).")] = 1,
    seed: Annotated[
        int | None, Form(ge=0, lt=2**32, description="Overrides `params.seed`.")
    ] = None,
    webhook_url: Annotated[
        str | None, Form(description="Called (signed POST) when the job finishes.")
    ] = None,
    source: Annotated[UploadFile | None, File(description="The source image.")] = None,
    structure: Annotated[UploadFile | None, File(description="Analogy: the structure.")] = None,
    mask: Annotated[UploadFile | None, File(description="Inpaint: white = hole.")] = None,
    edited: Annotated[UploadFile | None, File(description="Edit: the naive edit.")] = None,
    sources: Annotated[
        list[UploadFile] | None, File(description="Collage: the source images (two or more).")
    ] = None,
    previews: Annotated[
        bool,
        Form(
            description="Write a small PNG of every finished pyramid level of every sample "
            "(`previews` in the job, `preview` events); off by default."
        ),
    ] = False,
    prefer: Annotated[
        str | None,
        Header(
            alias="Prefer",
            description=f"`wait=N` (1-{MAX_WAIT_S} s): answer 200 with the finished job "
            "when it ends within N seconds, else the usual 202.",
        ),
    ] = None,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            max_length=255,
            description="A repeated submission with the same key returns the original job.",
        ),
    ] = None,
) -> JobPublic:
    (job_params,) = parse_params(task, params, seed, settings.default_mode)
    check_job_samples([job_params], samples, settings)
    webhook = check_webhook_url(webhook_url, settings)
    files = {
        "source": source,
        "structure": structure,
        "mask": mask,
        "edited": edited,
        "sources": sources or None,
    }
    uploads, estimate = uploads_for_task(task, job_params, files, settings, samples)
    check_quota(ledger, settings, owner, new_jobs=1)
    job_id = uuid.uuid4().hex
    response.headers["Location"] = f"/v1/jobs/{job_id}"

    if idempotency_key:
        digest = _request_digest(task, job_params.model_dump_json(), samples, webhook, uploads)
        existing = _claim_idempotency_key(ledger, owner, idempotency_key, job_id, digest)
        if existing is not None:
            response.headers["Location"] = f"/v1/jobs/{existing}"
            response.headers["Idempotent-Replayed"] = "true"
            record = _wait_for_record(ledger, owner, idempotency_key, existing)
            return JobPublic.model_validate(record.public())

    try:
        inputs: dict[str, str | list[str]] = {}
        for name, data in uploads.items():
            if isinstance(data, list):
                inputs[name] = [
                    put_input(
                        ledger, store_keys.job_input(job_id, f"{name}-{i}", image_extension(d)), d
                    )
                    for i, d in enumerate(data)
                ]
            else:
                key = store_keys.job_input(job_id, name, image_extension(data))
                inputs[name] = put_input(ledger, key, data)
        ledger.create_job(
            JobRecord(
                id=job_id,
                task=task,
                params=job_params,
                samples=samples,
                owner=owner,
                inputs=inputs,
                output_prefix=store_keys.job_outputs(job_id),
                webhook_url=webhook,
                estimate=estimate,
                preview_levels=previews,
            )
        )
    except BaseException:
        if idempotency_key:  # free the key: nothing was queued under it
            ledger.redis.delete(keys.idempotency_key(owner, idempotency_key))
            ledger.redis.publish(keys.idempotency_channel(owner, idempotency_key), "")
        raise
    if idempotency_key:  # wake the requests replayed while this one stored its job
        ledger.redis.publish(keys.idempotency_channel(owner, idempotency_key), job_id)
    wait_s = _preferred_wait(prefer)
    if wait_s:
        response.headers["Preference-Applied"] = f"wait={wait_s}"
        record = wait_for_end(ledger, job_id, wait_s)
        if record.status.is_terminal():
            response.status_code = 200
        return JobPublic.model_validate(record.public())
    return JobPublic.model_validate(ledger.get_job(job_id).public())


def _preferred_wait(prefer: str | None) -> int:
    """Seconds of `Prefer: wait=N` (RFC 7240; other preferences are ignored), at most
    `MAX_WAIT_S`; 0 when absent."""
    match = re.search(r"(?:^|[,;\s])wait\s*=\s*\"?(\d+)", prefer or "")
    return min(int(match.group(1)), MAX_WAIT_S) if match else 0


def wait_for_end(ledger: Ledger, job_id: str, seconds: float) -> JobRecord:
    """The job's record once it is finished, or after `seconds`, whichever is first.

    Listens to the job's events channel (no polling): subscribed before the record is
    read, so an end between the two is seen either in the record or as a message.
    """
    deadline = time.monotonic() + seconds
    with ledger.redis.pubsub(ignore_subscribe_messages=True) as pubsub:
        pubsub.subscribe(keys.job_events_channel(job_id))
        record = ledger.get_job(job_id)
        while not record.status.is_terminal():
            left = deadline - time.monotonic()
            if left <= 0:
                break
            message = pubsub.get_message(timeout=min(left, 5.0))
            if message and json.loads(message["data"]).get("type") == "status":
                record = ledger.get_job(job_id)
    return record


def _request_digest(task, params_json, samples, webhook, uploads) -> str:
    digest = hashlib.sha256(f"{task}|{params_json}|{samples}|{webhook}".encode())
    for name in sorted(uploads):
        value = uploads[name]
        for data in value if isinstance(value, list) else [value]:
            digest.update(name.encode() + hashlib.sha256(data).digest())
    return digest.hexdigest()


# Claims an Idempotency-Key: its job id and request digest written together, so that a
# second request never sees one without the other. Returns nil when this call claimed
# the key, else {job_id, digest} of the request that did.
_CLAIM = """
if redis.call('hsetnx', KEYS[1], 'job_id', ARGV[1]) == 1 then
    redis.call('hset', KEYS[1], 'digest', ARGV[2])
    redis.call('expire', KEYS[1], ARGV[3])
    return nil
end
return redis.call('hmget', KEYS[1], 'job_id', 'digest')
"""
# How long a replayed request waits for the first one to store its job.
REPLAY_WAIT_S = 10.0


def _claim_idempotency_key(
    ledger: Ledger, owner: str, key: str, job_id: str, digest: str
) -> str | None:
    """None when this request owns the key now; else the job id it created before."""
    redis_key = keys.idempotency_key(owner, key)
    found = ledger.redis.eval(_CLAIM, 1, redis_key, job_id, digest, defaults.IDEMPOTENCY_TTL_S)
    if found is None:
        return None
    existing, stored = (value.decode() for value in found)
    if stored != digest:
        raise Conflict("`Idempotency-Key`: already used for a different request")
    return existing


def _wait_for_record(ledger: Ledger, owner: str, key: str, job_id: str) -> JobRecord:
    """The record of `job_id`, the job of the key's first request, once that request
    has stored it (it announces it on `keys.idempotency_channel`: no polling).

    Subscribed before the record is read, so a record stored between the two is seen
    either in the read or as a message. `UnknownJob` when the first request failed
    (the key freed or claimed again) or did not finish within `REPLAY_WAIT_S`.
    """
    deadline = time.monotonic() + REPLAY_WAIT_S
    with ledger.redis.pubsub(ignore_subscribe_messages=True) as pubsub:
        pubsub.subscribe(keys.idempotency_channel(owner, key))
        while True:
            try:
                return ledger.get_job(job_id)
            except UnknownJob:
                claimed = ledger.redis.hget(keys.idempotency_key(owner, key), "job_id")
                left = deadline - time.monotonic()
                if claimed is None or claimed.decode() != job_id or left <= 0:
                    raise
            pubsub.get_message(timeout=left)


@router.get("/{job_id}", response_model=JobPublic, responses=ERRORS, summary="Read a job")
def get_job(job_id: JobId, ledger: LedgerDep, owner: OwnerDep) -> JobPublic:
    return JobPublic.model_validate(load_owned_job(ledger, job_id, owner).public())


@router.get(
    "/{job_id}/outputs/{n}",
    responses={
        **ERRORS,
        200: {"content": {"image/png": {}}, "description": "The PNG image."},
        307: {"description": "Redirect to a time-limited download URL (S3 store)."},
        409: {"model": ErrorBody, "description": "The job has not succeeded."},
    },
    response_class=Response,
    summary="Download an output image",
)
def get_output(
    job_id: JobId,
    n: Annotated[int, Path(ge=0, description="Output index (sample).")],
    ledger: LedgerDep,
    settings: SettingsDep,
    owner: OwnerDep,
) -> Response:
    record = load_owned_job(ledger, job_id, owner)
    if record.status != JobStatus.succeeded:
        raise Conflict(f"job `{job_id}` is {record.status}, it has no outputs")
    outputs = record.outputs
    if n >= len(outputs):
        raise NotFound(f"job `{job_id}` has {len(outputs)} output(s); no output {n}")
    url = ledger.store.download_url(outputs[n], settings.download_url_ttl_s)
    if url is not None:
        return RedirectResponse(url, status_code=307)
    data = ledger.store.get(outputs[n])
    return Response(
        data,
        media_type="image/png",
        headers={"Content-Disposition": f'inline; filename="{job_id}-{n}.png"'},
    )


@router.get(
    "/{job_id}/outputs.zip",
    responses={
        **ERRORS,
        200: {"content": {"application/zip": {}}, "description": "The outputs, one zip."},
        409: {"model": ErrorBody, "description": "The job has not succeeded."},
    },
    response_class=Response,
    summary="Every output of a succeeded job in one zip (`<job id>-<n>.png`)",
)
def get_outputs_zip(job_id: JobId, ledger: LedgerDep, owner: OwnerDep) -> Response:
    record = load_owned_job(ledger, job_id, owner)
    if record.status != JobStatus.succeeded:
        raise Conflict(f"job `{job_id}` is {record.status}, it has no outputs")
    outputs = ((f"{job_id}-{n}.png", ledger.store.get(key)) for n, key in enumerate(record.outputs))
    return zip_response(outputs, f"job-{job_id}-outputs.zip")


@router.get(
    "/{job_id}/inputs/{input_name}",
    responses={**ERRORS, 200: {"content": {"image/*": {}}, "description": "The image."}},
    response_class=Response,
    summary="Download an input image as uploaded (`source`, `mask`, `sources-0`, ...)",
)
def get_input(
    job_id: JobId,
    input_name: Annotated[str, Path(pattern=r"^[a-z]+(-[0-9]+)?$", description="Input name.")],
    ledger: LedgerDep,
    owner: OwnerDep,
) -> Response:
    record = load_owned_job(ledger, job_id, owner)
    name, _, index = input_name.partition("-")
    key = record.inputs.get(name)
    if isinstance(key, list):
        key = key[int(index)] if index and int(index) < len(key) else None
    elif index:
        key = None
    if not isinstance(key, str):
        raise NotFound(f"job `{job_id}` has no input `{input_name}`")
    return stored_object(
        ledger.store, key, gone=f"input `{input_name}` of job `{job_id}` has expired"
    )


@router.get(
    "/{job_id}/previews/{n}/{level}",
    responses={**ERRORS, 200: {"content": {"image/png": {}}, "description": "The PNG."}},
    response_class=Response,
    summary="A finished pyramid level of sample n (jobs submitted with `previews=true`)",
)
def get_preview(
    job_id: JobId,
    n: Annotated[int, Path(ge=0, description="Sample.")],
    level: Annotated[int, Path(ge=0, description="Pyramid stage, 0 = coarsest.")],
    ledger: LedgerDep,
    owner: OwnerDep,
) -> Response:
    record = load_owned_job(ledger, job_id, owner)
    known = any(p["sample"] == n and p["level"] == level for p in record.previews)
    if not known:
        raise NotFound(f"job `{job_id}` has no preview of sample {n} at level {level}")
    key = store_keys.job_preview(job_id, n, level)
    return stored_object(
        ledger.store,
        key,
        gone=f"the preview `{key}` has expired",
        media_type="image/png",
        **{"Cache-Control": "max-age=3600"},
    )


@router.post(
    "/{job_id}/cancel",
    status_code=202,
    response_model=JobPublic,
    responses={**ERRORS, 409: {"model": ErrorBody, "description": "The job already finished."}},
    summary="Cancel a queued or running job",
)
def cancel_job(job_id: JobId, ledger: LedgerDep, owner: OwnerDep) -> JobPublic:
    record = load_owned_job(ledger, job_id, owner)
    if record.status.is_terminal():
        if record.status == JobStatus.canceled:
            return JobPublic.model_validate(record.public())
        raise Conflict(f"job `{job_id}` already {record.status}")
    if not ledger.cancel(job_id):
        record = ledger.get_job(job_id)
        if record.status != JobStatus.canceled:
            raise Conflict(f"job `{job_id}` already {record.status}")
    return JobPublic.model_validate(ledger.get_job(job_id).public())


__all__ = ["router"]
