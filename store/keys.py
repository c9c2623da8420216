"""What parts of the store the service writes, and what a batch may read.

The service writes under its own top-level folders; everything else in the store
is shared input that batches may read by prefix. A tenant must never reach the
service's folders through a prefix (which would show another tenant's private
inputs and outputs), so the decision is made here, on the listed keys
themselves: a prefix is a string prefix, and "j" or "jobs" (no slash) match
"jobs/..." as well as "jobs/" does.
"""

from __future__ import annotations

from pathlib import PurePosixPath

# Top-level folders written by the service (each job's and batch's own files).
SERVICE_FOLDERS = ("jobs", "batches")
# The same as key prefixes (the results that expire).
SERVICE_PREFIXES = tuple(f"{folder}/" for folder in SERVICE_FOLDERS)


def check_input_prefix(prefix: str) -> str:
    """`prefix` if a batch may list it; ValueError naming what is wrong otherwise."""
    parts = prefix.split("/")
    if (
        not prefix
        or prefix.startswith("/")
        or "\x00" in prefix
        or ".." in parts
        or "" in parts[:-1]
        or any(folder.startswith(parts[0]) for folder in SERVICE_FOLDERS)
    ):
        raise ValueError(
            "must be a relative store prefix without '..', '//' or NUL, outside the "
            f"service's folders ({', '.join(SERVICE_PREFIXES)})"
        )
    return prefix


def is_shared_input(key: str) -> bool:
    """Whether `key` lies outside the service's folders (readable by any batch)."""
    return PurePosixPath(key).parts[:1] not in [(folder,) for folder in SERVICE_FOLDERS]
