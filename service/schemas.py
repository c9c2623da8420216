"""API schemas, one per direction, derived from the engine's own parameter models.

The parameter schemas in the OpenAPI document are the engine's pydantic models
(`gpnn.core.params`), so every default and range is defined once.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from gpnn.worker.records import TaskParams
from gpnn.worker.status import JobStatus, ReportStatus


class JobProgress(BaseModel):
    """Where a running job stands (levels and iterations count from 0)."""

    sample: int = Field(description="Sample being computed (0-based).")
    samples: int
    samples_done: int
    level: int = Field(description="Pyramid stage, 0 = coarsest.")
    levels: int
    iteration: int
    iterations: int
    fraction: float = Field(ge=0, le=1, description="Estimated fraction of the job done.")


class JobTimings(BaseModel):
    engine_s: float = Field(description="Seconds in the engine, all samples.")
    total_s: float = Field(description="Seconds from start to outputs written.")


class JobEstimate(BaseModel):
    """What the job was expected to take when it was accepted (`gpnn.core.cost`)."""

    work_mpi: float = Field(description="Megapixel-iterations (the unit of GPNN_MAX_JOB_WORK).")
    seconds: float = Field(description="Seconds on 2 CPU cores in the job's mode.")
    memory_mb: int = Field(description="Peak memory of the engine, MB (its process included).")
    mode: str


class LevelPreview(BaseModel):
    """A finished pyramid level of one sample (a small PNG, longest side <= 256 px)."""

    sample: int
    level: int = Field(description="Pyramid stage, 0 = coarsest.")
    levels: int
    url: str = Field(description="Link to the PNG.")


class JobPublic(BaseModel):
    """A job as users see it."""

    id: str
    task: str
    params: TaskParams
    samples: int
    status: JobStatus
    progress: JobProgress | None = None
    created_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    stopped_at: datetime | None = Field(
        None, description="When a worker stopped this job after a cancel."
    )
    attempts: int = Field(0, description="Runs started (more than one after a lost worker).")
    error: str | None = None
    batch_id: str | None = None
    input_name: str | None = Field(
        None, description="A batch job's input: its name in the archive (or the prefix)."
    )
    outputs: list[str] = Field(default_factory=list, description="Links to the output images.")
    timings: JobTimings | None = None
    estimate: JobEstimate | None = Field(
        None, description="Expected time and memory, from the sizes (not for batch jobs)."
    )
    previews: list[LevelPreview] = Field(
        default_factory=list,
        description="Each finished pyramid level of each sample so far, for jobs submitted "
        "with `previews=true`.",
    )


class SkippedInput(BaseModel):
    """An archive member that is not an input of the batch, and why."""

    name: str
    reason: str


class BatchPublic(BaseModel):
    """A batch as users see it, with its aggregate progress."""

    id: str
    task: str
    params: list[TaskParams]
    samples: int
    status: JobStatus
    total: int = Field(description="Jobs in the batch (inputs x parameter sets).")
    done: int
    succeeded: int
    failed: int
    canceled: int
    progress: float = Field(ge=0, le=1)
    created_at: datetime | None = None
    finished_at: datetime | None = None
    jobs: list[str]
    manifest: str | None = Field(None, description="Link to the manifest once finished.")
    manifest_key: str | None = Field(None, description="Store key of the manifest.")
    report: ReportStatus | None = Field(None, description="The evaluation report, if asked for.")
    report_url: str | None = Field(None, description="Link to the report's index.html.")
    report_error: str | None = Field(None, description="Why the report could not be written.")
    report_progress: float | None = Field(
        None, ge=0, le=1, description="Share of the report's images measured so far."
    )
    skipped: list[SkippedInput] = Field(
        default_factory=list,
        description="Archive members left out (hidden files, macOS metadata, other file "
        "types), with the reason; at most 100 listed.",
    )
    skipped_total: int = Field(0, description="All archive members left out.")


class JobList(BaseModel):
    """A page of jobs, newest first."""

    results: list[JobPublic]
    next: str | None = Field(None, description="The next (older) page; null on the last.")


class BatchList(BaseModel):
    """A page of batches, newest first."""

    results: list[BatchPublic]
    next: str | None = Field(None, description="The next (older) page; null on the last.")


class ErrorBody(BaseModel):
    detail: str


class Health(BaseModel):
    status: str
    checks: dict[str, str] = Field(default_factory=dict)


class WebhookSecret(BaseModel):
    secret: str = Field(description="HMAC-SHA256 key of the `Webhook-Signature` header.")
    scheme: str = "v1=hex(HMAC-SHA256(secret, '<Webhook-Id>.<Webhook-Timestamp>.<body>'))"
