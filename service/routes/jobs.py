"""`/v1/jobs`: submit one job, read it, download its outputs, cancel it."""

from __future__ import annotations

import hashlib
import time
import uuid
from typing import Annotated

from fastapi import APIRouter, File, Form, Header, Path, Response, UploadFile
from fastapi.responses import RedirectResponse

from gpnn.core.params import Task
from gpnn.service.deps import LedgerDep, OwnerDep, SettingsDep, check_owner
from gpnn.service.errors import Conflict, InvalidRequest, NotFound
from gpnn.service.intake import (
    check_webhook_url,
    image_extension,
    parse_params,
    uploads_for_task,
)
from gpnn.service.quotas import check_quota
from gpnn.service.schemas import ErrorBody, JobPublic
from gpnn.store import with_retries
from gpnn.worker import defaults, keys
from gpnn.worker.exceptions import UnknownJob
from gpnn.worker.ledger import Ledger, public_job
from gpnn.worker.status import JobStatus

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])

ERRORS = {
    401: {"model": ErrorBody, "description": "No API key."},
    403: {"model": ErrorBody, "description": "Unknown API key."},
    404: {"model": ErrorBody, "description": "Unknown job."},
}
# Routes that read a multipart form answer 400 when the body is not one (no boundary,
# a damaged part header, a part without a name); FastAPI raises it while parsing.
MULTIPART_ERRORS = {
    400: {"model": ErrorBody, "description": "Malformed multipart/form-data body."},
}
JobId = Annotated[str, Path(pattern=r"^[0-9a-f]{32}$", description="Job id.")]


def load_owned_job(ledger: Ledger, job_id: str, owner: str) -> dict:
    record = ledger.get_job(job_id)
    check_owner(record, owner)
    return record


def put_input(ledger: Ledger, key: str, data: bytes) -> str:
    settings = ledger.settings
    with_retries(
        lambda: ledger.store.put(key, data),
        retries=settings.store_retries,
        delay_s=settings.store_retry_delay_s,
        what=f"write {key}",
    )
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
        list[UploadFile] | None, File(description="Collage: the source images.")
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
    if samples > settings.max_samples:
        raise InvalidRequest(f"`samples`: at most {settings.max_samples}")
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
            return JobPublic.model_validate(public_job(_wait_for_record(ledger, existing)))

    try:
        inputs: dict[str, str | list[str]] = {}
        for name, data in uploads.items():
            if isinstance(data, list):
                inputs[name] = [
                    put_input(ledger, f"jobs/{job_id}/inputs/{name}-{i}{image_extension(d)}", d)
                    for i, d in enumerate(data)
                ]
            else:
                key = f"jobs/{job_id}/inputs/{name}{image_extension(data)}"
                inputs[name] = put_input(ledger, key, data)
        ledger.create_job(
            {
                "id": job_id,
                "task": task.value,
                "params": job_params.model_dump(mode="json"),
                "samples": samples,
                "owner": owner,
                "inputs": inputs,
                "output_prefix": f"jobs/{job_id}/outputs",
                "webhook_url": webhook,
                "estimate": estimate,
            }
        )
    except BaseException:
        if idempotency_key:  # free the key: nothing was queued under it
            ledger.redis.delete(keys.idempotency_key(owner, idempotency_key))
        raise
    return JobPublic.model_validate(public_job(ledger.get_job(job_id)))


def _request_digest(task, params_json, samples, webhook, uploads) -> str:
    digest = hashlib.sha256(f"{task}|{params_json}|{samples}|{webhook}".encode())
    for name in sorted(uploads):
        value = uploads[name]
        for data in value if isinstance(value, list) else [value]:
            digest.update(name.encode() + hashlib.sha256(data).digest())
    return digest.hexdigest()


def _claim_idempotency_key(
    ledger: Ledger, owner: str, key: str, job_id: str, digest: str
) -> str | None:
    """None when this request owns the key now; else the job id it created before."""
    redis_key = keys.idempotency_key(owner, key)
    claimed = ledger.redis.hsetnx(redis_key, "job_id", job_id)
    if claimed:
        with ledger.redis.pipeline() as pipe:
            pipe.hset(redis_key, "digest", digest)
            pipe.expire(redis_key, defaults.IDEMPOTENCY_TTL_S)
            pipe.execute()
        return None
    existing = ledger.redis.hget(redis_key, "job_id").decode()
    deadline = time.monotonic() + 5.0
    stored = ledger.redis.hget(redis_key, "digest")
    while stored is None and time.monotonic() < deadline:
        time.sleep(0.02)  # the first request is between its two writes
        stored = ledger.redis.hget(redis_key, "digest")
    if stored is not None and stored.decode() != digest:
        raise Conflict("`Idempotency-Key`: already used for a different request")
    return existing


def _wait_for_record(ledger: Ledger, job_id: str) -> dict:
    deadline = time.monotonic() + 10.0
    while True:
        try:
            return ledger.get_job(job_id)
        except UnknownJob:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)  # the first request is still storing its inputs


@router.get("/{job_id}", response_model=JobPublic, responses=ERRORS, summary="Read a job")
def get_job(job_id: JobId, ledger: LedgerDep, owner: OwnerDep) -> JobPublic:
    return JobPublic.model_validate(public_job(load_owned_job(ledger, job_id, owner)))


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
    if record["status"] != JobStatus.succeeded:
        raise Conflict(f"job `{job_id}` is {record['status']}, it has no outputs")
    outputs = record.get("outputs") or []
    if n >= len(outputs):
        raise NotFound(f"job `{job_id}` has {len(outputs)} output(s); no output {n}")
    url = ledger.store.download_url(outputs[n], settings.download_url_ttl_s)
    if url is not None:
        return RedirectResponse(url, status_code=307)
    data = with_retries(lambda: ledger.store.get(outputs[n]), retries=settings.store_retries)
    return Response(
        data,
        media_type="image/png",
        headers={"Content-Disposition": f'inline; filename="{job_id}-{n}.png"'},
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
    if JobStatus(record["status"]).is_terminal():
        if record["status"] == JobStatus.canceled:
            return JobPublic.model_validate(public_job(record))
        raise Conflict(f"job `{job_id}` already {record['status']}")
    if not ledger.cancel(job_id):
        record = ledger.get_job(job_id)
        if record["status"] != JobStatus.canceled:
            raise Conflict(f"job `{job_id}` already {record['status']}")
    return JobPublic.model_validate(public_job(ledger.get_job(job_id)))


__all__ = ["router"]
