"""gpnn.worker: RQ job functions, job records and worker processes of the batch service."""

from gpnn.worker.exceptions import JobCanceled, UnknownJob
from gpnn.worker.ledger import Ledger, public_batch, public_job
from gpnn.worker.status import JobStatus

__all__ = ["JobCanceled", "JobStatus", "Ledger", "UnknownJob", "public_batch", "public_job"]
