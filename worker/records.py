"""Job and batch records: the one contract of a job from the API to the worker to the store.

A record is a pydantic model. The API builds it, `Ledger` writes it to Redis and changes
its state, the worker reads it back, and its `public()` shape is what the API answers,
what webhooks carry and what a batch manifest lists of a job.

How a record is stored
----------------------
A record is one Redis hash (`gpnn.worker.keys.job_key`, `batch_key`). A field of a plain
type (str, int, float, bool and the status enums) is stored as its string; any other
field (parameters, inputs, outputs, progress, ...) as its JSON form, so `alpha = inf` is
"Infinity" everywhere (`gpnn.core.params.CommonParams`). Unset (None) fields are not
stored. Which fields are JSON follows from their types: nothing lists them by hand.

Timestamps are ISO 8601 strings as `now_iso()` writes them
(``2026-12-07T02:27:29.123+00:00``), kept as strings so that webhook bodies and
manifests carry them exactly as written.
"""

from __future__ import annotations

import json
import types
import typing
from datetime import UTC, datetime
from functools import cache
from typing import Annotated, Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter
from redis import Redis

from gpnn.core.params import (
    AnalogyParams,
    CollageParams,
    EditParams,
    GenerateParams,
    InpaintParams,
    RetargetParams,
    Task,
)
from gpnn.worker import keys
from gpnn.worker.exceptions import UnknownJob
from gpnn.worker.status import JobStatus, ReportStatus

# The owner of jobs submitted while no API keys are configured.
ANONYMOUS = "anonymous"

# The parameters of any application, told apart by their `task` field.
TaskParams = Annotated[
    GenerateParams | RetargetParams | AnalogyParams | InpaintParams | CollageParams | EditParams,
    Field(discriminator="task"),
]

# Types stored in a hash as their string (anything else is stored as JSON).
_PLAIN = (str, int, float, bool)


def now_iso() -> str:
    """The current UTC time, ISO 8601 with milliseconds (the records' timestamps)."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def time_score(stamp: str) -> int:
    """Milliseconds since the epoch of an ISO 8601 stamp (the score of the owner indexes)."""
    return round(datetime.fromisoformat(stamp).timestamp() * 1000)


def output_url(job_id: str, n: int) -> str:
    """Where the API serves output `n` of a job (relative to the API's base URL)."""
    return f"/v1/jobs/{job_id}/outputs/{n}"


def preview_url(job_id: str, sample: int, level: int) -> str:
    """Where the API serves that preview (relative to the API's base URL)."""
    return f"/v1/jobs/{job_id}/previews/{sample}/{level}"


def _is_plain(annotation: Any) -> bool:
    """Whether a field of this type is stored as its string (`X | None` as `X`)."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        members = [a for a in typing.get_args(annotation) if a is not type(None)]
        return len(members) == 1 and _is_plain(members[0])
    return isinstance(annotation, type) and issubclass(annotation, _PLAIN)


class _HashRecord(BaseModel):
    """A model stored as one Redis hash (see the module's notes)."""

    # Fields a newer version added are ignored by an older reader, not an error.
    model_config = ConfigDict(extra="ignore")

    @classmethod
    @cache
    def _adapter(cls, name: str) -> TypeAdapter:
        return TypeAdapter(cls.model_fields[name].annotation)

    @classmethod
    @cache
    def _json_fields(cls) -> frozenset[str]:
        return frozenset(
            name for name, field in cls.model_fields.items() if not _is_plain(field.annotation)
        )

    @classmethod
    def redis_fields(cls, **values: Any) -> dict[str, str]:
        """`values` of some fields as the hash stores them (None values left out); a
        name that is no field of the record raises `KeyError`."""
        stored = {}
        for name, value in values.items():
            if value is None:
                continue
            if name not in cls.model_fields:
                raise KeyError(f"`{name}` is no field of {cls.__name__}")
            data = cls._adapter(name).dump_python(value, mode="json")
            if name in cls._json_fields():
                stored[name] = json.dumps(data)
            elif isinstance(data, bool):
                stored[name] = "1" if data else "0"
            else:
                stored[name] = str(data)
        return stored

    def to_redis(self) -> dict[str, str]:
        """The whole record as the hash stores it."""
        return self.redis_fields(**{name: getattr(self, name) for name in self._stored()})

    @classmethod
    def _stored(cls) -> tuple[str, ...]:
        """The fields kept in the hash (all, unless a record keeps some elsewhere)."""
        return tuple(cls.model_fields)

    @classmethod
    def decode_field(cls, name: str, raw: bytes) -> Any:
        """One field as read alone (HGET, HMGET), validated."""
        text = raw.decode()
        value = json.loads(text) if name in cls._json_fields() else text
        return cls._adapter(name).validate_python(value)

    @classmethod
    def from_redis(cls, raw: dict[bytes, bytes], **extra: Any) -> Self:
        """The record of a hash read with HGETALL (`extra`: fields kept elsewhere)."""
        values: dict[str, Any] = {k.decode(): v.decode() for k, v in raw.items()}
        for name in cls._json_fields() & values.keys():
            values[name] = json.loads(values[name])
        return cls.model_validate({**values, **extra})


class JobRecord(_HashRecord):
    """One job: one application on one set of inputs, all its samples.

    Written by the API (`Ledger.create_job`), changed only by `Ledger`'s state changes.
    """

    kind: ClassVar[str] = "job"  # in event names: `job.succeeded`

    id: str
    task: Task
    params: TaskParams
    samples: int = 1
    owner: str = ANONYMOUS
    inputs: dict[str, str | list[str]] = Field(
        default_factory=dict, description="Input name -> store key(s) (`sources`: a list)."
    )
    output_prefix: str = Field(description="Store prefix of the outputs (`store.keys`).")
    webhook_url: str | None = None
    estimate: dict[str, Any] | None = Field(None, description="`gpnn.core.cost.estimate`.")
    # Stored as "1": the record's field name predates the bool.
    preview_levels: bool = Field(False, description="Whether level previews were asked for.")
    batch_id: str | None = None
    batch_index: int | None = Field(None, description="Place in the batch's manifest.")
    input_name: str | None = Field(None, description="A batch input's name in its archive.")
    status: JobStatus = JobStatus.queued
    created_at: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    stopped_at: str | None = Field(None, description="When a worker stopped it after a cancel.")
    attempts: int = 0
    lease: str | None = Field(None, description="The current attempt's lease (`Ledger.start`).")
    worker_host: str | None = Field(None, description="The host of the last attempt.")
    error: str | None = None
    progress: dict[str, Any] | None = None
    previews: list[dict[str, int]] = Field(default_factory=list)
    outputs: list[str] = Field(default_factory=list, description="Store keys, one per sample.")
    timings: dict[str, float] | None = None

    @classmethod
    def load(cls, redis: Redis, job_id: str) -> JobRecord:
        """The job's record; `UnknownJob` when missing or expired."""
        raw = redis.hgetall(keys.job_key(job_id))
        if not raw:
            raise UnknownJob(job_id)
        return cls.from_redis(raw)

    @property
    def seeds(self) -> list[int]:
        """The seed of each sample (sample i uses seed + i)."""
        return [self.params.seed + i for i in range(self.samples)]

    def public(self) -> dict[str, Any]:
        """The job as users see it, in JSON form (API answers, webhooks)."""
        return {
            "id": self.id,
            "task": self.task.value,
            "params": self.params.model_dump(mode="json"),
            "samples": self.samples,
            "status": self.status.value,
            "progress": self.progress,
            "created_at": self.created_at,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "stopped_at": self.stopped_at,
            "attempts": self.attempts,
            "error": self.error if self.status != JobStatus.succeeded else None,
            "batch_id": self.batch_id,
            "input_name": self.input_name,
            "outputs": [output_url(self.id, n) for n in range(len(self.outputs))],
            "previews": [
                {**p, "url": preview_url(self.id, p["sample"], p["level"])} for p in self.previews
            ],
            "timings": self.timings,
            "estimate": self.estimate,
        }


class BatchRecord(_HashRecord):
    """A batch: inputs x parameter sets, one job each, and its counters.

    The counters `succeeded`, `failed` and `canceled` are named by the job status they
    count (`Ledger` adds to them with HINCRBY as each job ends).
    """

    kind: ClassVar[str] = "batch"  # in event names: `batch.succeeded`

    id: str
    task: Task
    params: list[TaskParams]
    samples: int = 1
    owner: str = ANONYMOUS
    output_prefix: str = Field(description="Store prefix of the batch (`store.keys`).")
    webhook_url: str | None = None
    origin: str | None = Field(None, description='"archive" or "prefix:<the prefix>".')
    skipped: list[dict[str, str]] = Field(
        default_factory=list, description="Archive members left out and why (some)."
    )
    skipped_total: int = 0
    status: JobStatus = JobStatus.queued
    created_at: str | None = None
    finished_at: str | None = None
    total: int = 0
    done: int = 0
    started: int = Field(0, description="Jobs whose first attempt started.")
    succeeded: int = 0
    failed: int = 0
    canceled: int = 0
    manifest: str | None = Field(None, description="Store key of the manifest, once written.")
    report: ReportStatus | None = None
    report_done: int = 0
    report_total: int = 0
    report_error: str | None = None
    job_ids: list[str] = Field(
        default_factory=list, description="Kept in their own list (`keys.batch_jobs_key`)."
    )

    @classmethod
    def _stored(cls) -> tuple[str, ...]:
        return tuple(name for name in cls.model_fields if name != "job_ids")

    @classmethod
    def load(cls, redis: Redis, batch_id: str) -> BatchRecord:
        """The batch's record with its job ids; `UnknownJob` when missing or expired."""
        raw = redis.hgetall(keys.batch_key(batch_id))
        if not raw:
            raise UnknownJob(batch_id)
        job_ids = [j.decode() for j in redis.lrange(keys.batch_jobs_key(batch_id), 0, -1)]
        return cls.from_redis(raw, job_ids=job_ids)

    def public(self, fraction: float | None = None) -> dict[str, Any]:
        """The batch as users see it, in JSON form (API answers, webhooks); `fraction`:
        its jobs' mean progress (`Ledger.batch_progress`), else done / total."""
        status = self.status
        if not status.is_terminal():
            status = JobStatus.running if self.started or self.done else JobStatus.queued
        return {
            "id": self.id,
            "task": self.task.value,
            "params": [p.model_dump(mode="json") for p in self.params],
            "samples": self.samples,
            "status": status.value,
            "total": self.total,
            "done": self.done,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "canceled": self.canceled,
            "progress": fraction
            if fraction is not None
            else (self.done / self.total if self.total else 1.0),
            "created_at": self.created_at,
            "finished_at": self.finished_at,
            "jobs": [f"/v1/jobs/{j}" for j in self.job_ids],
            "manifest": f"/v1/batches/{self.id}/manifest" if self.manifest else None,
            "manifest_key": self.manifest,
            "report": self.report.value if self.report else None,
            "report_url": f"/v1/batches/{self.id}/report/index.html"
            if self.report == ReportStatus.written
            else None,
            "report_error": self.report_error,
            "report_progress": self.report_done / self.report_total if self.report_total else None,
            "skipped": self.skipped,
            "skipped_total": self.skipped_total,
        }
