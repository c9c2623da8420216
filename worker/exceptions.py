"""Named errors of the worker side."""


class JobCanceled(Exception):
    """Raised from the engine's progress callback to stop a job whose cancel was requested."""


class UnknownJob(KeyError):
    """No job (or batch) record under that id (never created, or expired)."""
