"""Named errors of the worker side."""


class JobCanceled(Exception):
    """Raised from the engine's progress callback to stop a job whose cancel was requested."""


class UnknownJob(KeyError):
    """No job (or batch) record under that id (never created, or expired)."""


class AttemptSuperseded(Exception):
    """This attempt lost the job's lease (a newer attempt started, e.g. after this
    worker was taken for dead); it must write nothing."""
