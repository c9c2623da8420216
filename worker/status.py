"""The states of a job (and of a batch)."""

from enum import StrEnum


class JobStatus(StrEnum):
    """Where a job stands; stored in Redis as its plain string."""

    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    canceled = "canceled"

    def is_terminal(self) -> bool:
        """Whether the job is finished (no further change will happen)."""
        return self in TERMINAL


TERMINAL = frozenset({JobStatus.succeeded, JobStatus.failed, JobStatus.canceled})


class ReportStatus(StrEnum):
    """Where a batch's evaluation report stands (`POST /v1/batches` with `report`)."""

    requested = "requested"
    running = "running"
    written = "written"
    failed = "failed"
