"""gpnn.worker: RQ job functions, job records and worker processes of the batch service."""

from gpnn.worker.exceptions import JobCanceled, UnknownJob
from gpnn.worker.ledger import Ledger
from gpnn.worker.records import BatchRecord, JobRecord
from gpnn.worker.status import JobStatus

__all__ = ["BatchRecord", "JobCanceled", "JobRecord", "JobStatus", "Ledger", "UnknownJob"]
