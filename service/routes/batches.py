"""`/v1/batches`: many inputs x parameter sets x samples, with a manifest.

Each (input, parameter set) pair is one job that computes all its samples in
one engine call, so pyramids and key indices are built once per input.
"""

from __future__ import annotations

import json
import uuid
import zipfile
from pathlib import PurePosixPath
from typing import Annotated

from fastapi import APIRouter, File, Form, Path, Response, UploadFile

from gpnn.core import TASK_INPUTS
from gpnn.core.params import Task
from gpnn.service.deps import LedgerDep, OwnerDep, SettingsDep, check_owner
from gpnn.service.downloads import stored_object, zip_response
from gpnn.service.errors import Conflict, InvalidRequest, NotFound, TooLarge
from gpnn.service.intake import (
    IMAGE_EXTENSIONS,
    check_image_bytes,
    check_job_samples,
    check_webhook_url,
    check_work,
    image_extension,
    parse_params,
    read_upload,
)
from gpnn.service.quotas import check_quota
from gpnn.service.routes.jobs import ERRORS, MULTIPART_ERRORS, put_input
from gpnn.service.schemas import BatchPublic, ErrorBody
from gpnn.store import ObjectNotFound
from gpnn.store import keys as store_keys
from gpnn.store.base import check_key
from gpnn.store.keys import check_input_prefix, is_shared_input
from gpnn.worker.imagecheck import UnreadableImage, image_size
from gpnn.worker.ledger import Ledger, UnknownJob
from gpnn.worker.records import BatchRecord, JobRecord
from gpnn.worker.status import ReportStatus

router = APIRouter(prefix="/v1/batches", tags=["batches"])

BatchId = Annotated[str, Path(pattern=r"^[0-9a-f]{32}$", description="Batch id.")]
# The first bytes of an archive member read to size it from its header.
HEADER_BYTES = 64 * 1024


# Archive members left out of a batch are listed in its record, at most this many.
MAX_SKIPPED_LISTED = 100


def _skip_reason(member: zipfile.ZipInfo) -> str | None:
    """Why an archive member is not an input of the batch (None: it is one)."""
    path = PurePosixPath(member.filename)
    if path.parts[:1] == ("__MACOSX",):
        return "macOS metadata (under __MACOSX/)"
    if path.name.startswith("._"):
        return "macOS metadata (an AppleDouble `._` file)"
    if path.name.startswith("."):
        return "hidden file (its name starts with '.'); rename it to use it"
    if path.suffix.lower() not in IMAGE_EXTENSIONS:
        return f"not an image file name ({', '.join(IMAGE_EXTENSIONS)})"
    return None


def _zip_members(
    archive: UploadFile, settings
) -> tuple[zipfile.ZipFile, list[zipfile.ZipInfo], list[dict[str, str]]]:
    """The image members of an archive, checked against the batch limits by their
    declared sizes (nothing is decompressed yet), and the members skipped with why."""
    try:
        bundle = zipfile.ZipFile(archive.file)
    except (zipfile.BadZipFile, OSError, ValueError):
        raise InvalidRequest("`archive`: not a readable zip file") from None
    members, skipped = [], []
    for member in bundle.infolist():
        if member.is_dir():
            continue
        reason = _skip_reason(member)
        if reason is None:
            members.append(member)
        else:
            skipped.append({"name": member.filename, "reason": reason})
    if len(members) > settings.max_batch_inputs:
        raise TooLarge(f"`archive`: {len(members)} images, over {settings.max_batch_inputs}")
    expanded = sum(m.file_size for m in members)
    if expanded > settings.max_batch_bytes:
        raise TooLarge(
            f"`archive`: expands to {expanded} bytes, over the limit of {settings.max_batch_bytes}"
        )
    for member in members:
        if member.file_size > settings.max_upload_bytes:
            raise TooLarge(f"`archive`: `{member.filename}` is over the upload limit")
    return bundle, sorted(members, key=lambda m: m.filename), skipped


def _read_member(bundle: zipfile.ZipFile, member: zipfile.ZipInfo, limit: int) -> bytes:
    try:
        with bundle.open(member) as handle:
            return handle.read(limit)
    except (zipfile.BadZipFile, OSError, ValueError, NotImplementedError, RuntimeError):
        raise InvalidRequest(f"`archive`: cannot read `{member.filename}`") from None


def _check_archive_work(bundle, members, param_sets, samples, settings) -> None:
    """Every member's job within the work limit and all pixels within the batch's, from
    the image headers, before anything is written."""
    pixels = 0
    for member in members:
        try:
            width, height = image_size(_read_member(bundle, member, HEADER_BYTES))
        except UnreadableImage:
            continue  # its job fails with the reason; the others run
        pixels += width * height
        where = f"archive: {member.filename}"
        for job_params in param_sets:
            check_work(job_params, (height, width), samples, settings, where)
    if pixels > settings.max_batch_pixels:
        raise TooLarge(
            f"`archive`: {pixels} pixels in all, over the limit of {settings.max_batch_pixels}"
        )


@router.post(
    "",
    status_code=202,
    response_model=BatchPublic,
    responses={
        **ERRORS,
        **MULTIPART_ERRORS,
        413: {"model": ErrorBody, "description": "Upload or batch over the limits."},
        422: {"description": "Invalid task, parameter, archive or prefix (the field is named)."},
    },
    summary="Submit a batch",
)
def create_batch(
    response: Response,
    ledger: LedgerDep,
    settings: SettingsDep,
    owner: OwnerDep,
    task: Annotated[Task, Form(description="The application (one with a `source` input).")],
    params: Annotated[
        str,
        Form(description="JSON object, or list of objects (one job per input and set)."),
    ] = "{}",
    samples: Annotated[int, Form(ge=1, description="Outputs per input and parameter set.")] = 1,
    seed: Annotated[int | None, Form(ge=0, lt=2**32, description="Overrides `seed`.")] = None,
    webhook_url: Annotated[
        str | None, Form(description="Called (signed POST) when the batch finishes.")
    ] = None,
    archive: Annotated[UploadFile | None, File(description="A zip of input images.")] = None,
    prefix: Annotated[
        str | None, Form(max_length=512, description="Or: a prefix of images in the store.")
    ] = None,
    structure: Annotated[UploadFile | None, File(description="Analogy: for all inputs.")] = None,
    mask: Annotated[UploadFile | None, File(description="Inpaint: for all inputs.")] = None,
    edited: Annotated[UploadFile | None, File(description="Edit: for all inputs.")] = None,
    report: Annotated[
        bool,
        Form(
            description="Also write the evaluation report (metrics per input, HTML page, "
            "contact sheet) next to the manifest once the batch has finished."
        ),
    ] = False,
) -> BatchPublic:
    if "source" not in TASK_INPUTS[task]:
        raise InvalidRequest(f"`task`: batches run tasks with a `source` input, not `{task}`")
    param_sets = parse_params(task, params, seed, settings.default_mode)
    check_job_samples(param_sets, samples, settings)
    webhook = check_webhook_url(webhook_url, settings)
    if (archive is None) == (prefix in (None, "")):
        raise InvalidRequest("`archive`/`prefix`: give exactly one of them")
    batch_id = uuid.uuid4().hex
    base = store_keys.batch_prefix(batch_id)

    shared_uploads: dict[str, bytes] = {}
    extras = {"structure": structure, "mask": mask, "edited": edited}
    for name, upload in extras.items():
        if upload is not None and name not in TASK_INPUTS[task]:
            raise InvalidRequest(f"`{name}`: task `{task}` takes no such input")
    for name in TASK_INPUTS[task]:
        if name == "source":
            continue
        upload = extras.get(name)
        if upload is None:
            if name == "mask" and any(getattr(p, "color", None) for p in param_sets):
                continue
            raise InvalidRequest(f"`{name}`: task `{task}` needs this input")
        data = read_upload(upload, settings, name)
        check_image_bytes(data, settings, name, mask=name == "mask")
        shared_uploads[name] = data

    # Everything is checked (sizes, work, job count, quotas) before anything is written.
    if archive is not None:
        bundle, members, skipped = _zip_members(archive, settings)
        _check_archive_work(bundle, members, param_sets, samples, settings)
        count = len(members)
    else:
        listed = _prefix_inputs(ledger, prefix or "", settings.max_batch_inputs)
        count = len(listed)
        skipped = []
    if not count:
        raise InvalidRequest("`archive`/`prefix`: no images found (png, jpg, webp, bmp, tif)")
    total = count * len(param_sets)
    if total > settings.max_batch_jobs:
        raise TooLarge(f"the batch has {total} jobs, over the limit of {settings.max_batch_jobs}")
    check_quota(ledger, settings, owner, new_jobs=total)

    shared = {
        name: put_input(
            ledger, store_keys.batch_shared_input(batch_id, name, image_extension(data)), data
        )
        for name, data in shared_uploads.items()
    }
    if archive is not None:
        limit = settings.max_upload_bytes
        sources = [  # one member in memory at a time
            (
                m.filename,
                put_input(
                    ledger,
                    store_keys.batch_input(batch_id, i, m.filename),
                    _read_member(bundle, m, limit),
                ),
            )
            for i, m in enumerate(members)
        ]
    else:
        sources = listed

    jobs = []
    for i, (name, key) in enumerate(sources):
        for k, job_params in enumerate(param_sets):
            index = len(jobs)
            param_set = k if len(param_sets) > 1 else None
            jobs.append(
                JobRecord(
                    id=uuid.uuid4().hex,
                    task=task,
                    params=job_params,
                    samples=samples,
                    owner=owner,
                    inputs={"source": key, **shared},
                    input_name=name,
                    output_prefix=store_keys.batch_outputs(batch_id, i, name, param_set),
                    batch_id=batch_id,
                    batch_index=index,
                )
            )
    ledger.create_batch(
        BatchRecord(
            id=batch_id,
            task=task,
            params=param_sets,
            samples=samples,
            owner=owner,
            output_prefix=base,
            webhook_url=webhook,
            origin="archive" if archive is not None else f"prefix:{prefix}",
            report=ReportStatus.requested if report else None,
            skipped=skipped[:MAX_SKIPPED_LISTED],
            skipped_total=len(skipped),
        ),
        jobs,
    )
    response.headers["Location"] = f"/v1/batches/{batch_id}"
    return _public(ledger, batch_id)


def _prefix_inputs(ledger: Ledger, prefix: str, limit: int) -> list[tuple[str, str]]:
    try:
        check_input_prefix(prefix)
    except ValueError as error:
        raise InvalidRequest(f"`prefix`: {error}") from None
    keys = [
        k
        for k in ledger.store.list(prefix)
        if is_shared_input(k) and PurePosixPath(k).suffix.lower() in IMAGE_EXTENSIONS
    ]
    if len(keys) > limit:
        raise TooLarge(f"`prefix`: {len(keys)} images, over the limit of {limit}")
    return [(key, key) for key in keys]


def _public(ledger: Ledger, batch_id: str) -> BatchPublic:
    record = ledger.get_batch(batch_id)
    fraction = None
    if not record.status.is_terminal():
        fraction = ledger.batch_progress(record.job_ids)
    return BatchPublic.model_validate(record.public(fraction))


def _owned(ledger: Ledger, batch_id: str, owner: str) -> BatchRecord:
    record = ledger.get_batch(batch_id)
    check_owner(record, owner)
    return record


@router.get("/{batch_id}", response_model=BatchPublic, responses=ERRORS, summary="Read a batch")
def get_batch(batch_id: BatchId, ledger: LedgerDep, owner: OwnerDep) -> BatchPublic:
    _owned(ledger, batch_id, owner)
    return _public(ledger, batch_id)


@router.get(
    "/{batch_id}/manifest",
    responses={**ERRORS, 409: {"model": ErrorBody, "description": "Batch not finished."}},
    summary="The batch manifest: inputs -> outputs, parameters, seeds, timings, errors",
)
def get_manifest(batch_id: BatchId, ledger: LedgerDep, owner: OwnerDep) -> Response:
    record = _owned(ledger, batch_id, owner)
    if not record.manifest:
        raise Conflict(f"batch `{batch_id}` is not finished; no manifest yet")
    gone = f"the manifest of batch `{batch_id}` has expired"
    answer = stored_object(ledger.store, record.manifest, gone=gone)
    json.loads(answer.body)
    return answer


@router.get(
    "/{batch_id}/outputs.zip",
    responses={
        **ERRORS,
        200: {"content": {"application/zip": {}}, "description": "The outputs, one zip."},
    },
    summary="Every output of the batch's succeeded jobs in one zip (named as in the store)",
)
def get_outputs_zip(batch_id: BatchId, ledger: LedgerDep, owner: OwnerDep) -> Response:
    record = _owned(ledger, batch_id, owner)
    prefix = f"{record.output_prefix}/"

    def outputs():
        for job_id in record.job_ids:
            try:
                job = ledger.get_job(job_id)
            except UnknownJob:
                continue
            for key in job.outputs:
                try:
                    yield key.removeprefix(prefix), ledger.store.get(key)
                except ObjectNotFound:
                    continue  # expired

    return zip_response(outputs(), f"batch-{batch_id}-outputs.zip")


@router.get(
    "/{batch_id}/report/{name:path}",
    responses=ERRORS,
    summary="A file of the batch's evaluation report (start with index.html)",
)
def get_report_file(batch_id: BatchId, name: str, ledger: LedgerDep, owner: OwnerDep) -> Response:
    record = _owned(ledger, batch_id, owner)
    if record.report != ReportStatus.written:
        state = record.report or "not requested"
        raise Conflict(f"the report of batch `{batch_id}` is not available ({state})")
    try:
        key = check_key(store_keys.batch_report(record.output_prefix, name))
    except ValueError:
        raise NotFound(f"no report file {name!r}") from None
    return stored_object(ledger.store, key, gone=f"no report file `{name}` in batch `{batch_id}`")


@router.post(
    "/{batch_id}/cancel",
    status_code=202,
    response_model=BatchPublic,
    responses=ERRORS,
    summary="Cancel every unfinished job of a batch",
)
def cancel_batch(batch_id: BatchId, ledger: LedgerDep, owner: OwnerDep) -> BatchPublic:
    _owned(ledger, batch_id, owner)
    ledger.cancel_batch(batch_id)
    return _public(ledger, batch_id)
