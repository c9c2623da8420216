"""Every store key the service writes, and what parts of the store a batch may read.

The key layout lives here and only here: `jobs/<id>/inputs/<name><ext>`,
`jobs/<id>/outputs/<n>.png`, `jobs/<id>/previews/<sample>-<level>.png`,
`batches/<id>/inputs/...`, `batches/<id>/outputs/<nnnn>-<name>[-p<k>]/<n>.png`,
`batches/<id>/manifest.json`, `batches/<id>/report/<file>`.

The service writes under its own top-level folders; everything else in the store
is shared input that batches may read by prefix. A tenant must never reach the
service's folders through a prefix (which would show another tenant's private
inputs and outputs), so the decision is made here, on the listed keys
themselves: a prefix is a string prefix, and "j" or "jobs" (no slash) match
"jobs/..." as well as "jobs/" does.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath

JOBS_FOLDER = "jobs"
BATCHES_FOLDER = "batches"
# Top-level folders written by the service (each job's and batch's own files).
SERVICE_FOLDERS = (JOBS_FOLDER, BATCHES_FOLDER)
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


# Level previews go into this folder under the job's own (so they expire with it).
PREVIEW_FOLDER = "previews"
# A batch's evaluation report goes into this folder beside its manifest.
REPORT_FOLDER = "report"
MANIFEST_NAME = "manifest.json"


def safe_name(name: str) -> str:
    """The last part of `name` with only `[A-Za-z0-9._-]` (others -> `_`), at most 100."""
    stem = PurePosixPath(name).name
    return re.sub(r"[^A-Za-z0-9._-]+", "_", stem)[-100:] or "input"


def job_prefix(job_id: str) -> str:
    """The folder of a job submitted on its own."""
    return f"{JOBS_FOLDER}/{job_id}"


def job_input(job_id: str, name: str, ext: str) -> str:
    """An uploaded input of a job (`name`: `source`, `mask`, `sources-0`...; `ext`: `.png`)."""
    return f"{job_prefix(job_id)}/inputs/{name}{ext}"


def job_outputs(job_id: str) -> str:
    """The output prefix of a job submitted on its own (its record's `output_prefix`)."""
    return f"{job_prefix(job_id)}/outputs"


def output(output_prefix: str, n: int) -> str:
    """Output (sample) `n` of a job whose record's `output_prefix` is `output_prefix`."""
    return f"{output_prefix}/{n}.png"


def job_preview(job_id: str, sample: int, level: int) -> str:
    """The preview of `level` of sample `sample` (under the job's folder)."""
    return f"{job_prefix(job_id)}/{PREVIEW_FOLDER}/{sample}-{level}.png"


def batch_prefix(batch_id: str) -> str:
    """The folder of a batch (its record's `output_prefix`)."""
    return f"{BATCHES_FOLDER}/{batch_id}"


def batch_shared_input(batch_id: str, name: str, ext: str) -> str:
    """An input uploaded once for all of a batch's jobs (`structure`, `mask`, `edited`)."""
    return f"{batch_prefix(batch_id)}/inputs/_shared/{name}{ext}"


def batch_input(batch_id: str, index: int, filename: str) -> str:
    """Source `index` of a batch, taken from an archive member named `filename`."""
    return f"{batch_prefix(batch_id)}/inputs/{index:04d}-{safe_name(filename)}"


def batch_outputs(batch_id: str, index: int, input_name: str, param_set: int | None) -> str:
    """The output prefix of the job of input `index` (named `input_name`) and parameter
    set `param_set` (None when the batch has one set)."""
    suffix = f"-p{param_set}" if param_set is not None else ""
    return f"{batch_prefix(batch_id)}/outputs/{index:04d}-{safe_name(input_name)}{suffix}"


def batch_manifest(folder: str) -> str:
    """The manifest of the batch whose folder (`output_prefix`) is `folder`."""
    return f"{folder}/{MANIFEST_NAME}"


def batch_report(folder: str, name: str) -> str:
    """File `name` of the report of the batch whose folder (`output_prefix`) is `folder`."""
    return f"{folder}/{REPORT_FOLDER}/{name}"
