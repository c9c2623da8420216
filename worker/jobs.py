"""The job functions that RQ workers run (importable, referenced by name).

`run_job(job_id)` loads the job record, its inputs from the store, runs the
engine once for all samples (so pyramids and key indices are built once),
writes the outputs atomically and only then marks the job succeeded.
"""

from __future__ import annotations

import logging
import mimetypes
import time
from typing import Any

from rq import get_current_job
from rq.exceptions import AbandonedJobError
from rq.timeouts import JobTimeoutException

from gpnn.config import get_settings
from gpnn.store import StoreError, TransientStoreError
from gpnn.store import keys as store_keys
from gpnn.worker import defaults
from gpnn.worker.exceptions import AttemptSuperseded, JobCanceled, UnknownJob
from gpnn.worker.imagecheck import check_image
from gpnn.worker.ledger import Ledger
from gpnn.worker.manifests import build_manifest

logger = logging.getLogger(__name__)


class _Reporter:
    """The engine's progress callback: writes progress, stops on cancel and, for a job
    that asked for them (`previews`), writes each finished level of each sample as a
    small PNG to the store (at most one per level and sample)."""

    def __init__(self, ledger: Ledger, job_id: str, lease: str, previews: bool = False) -> None:
        self.ledger = ledger
        self.job_id = job_id
        self.lease = lease
        self.last_write = 0.0
        self.last_level: tuple[int, int] | None = None
        self.previews: list[dict[str, int]] | None = [] if previews else None

    def _preview(self, p: Any) -> None:
        from gpnn.core import encode_png

        if any(q["sample"] == p.sample and q["level"] == p.level for q in self.previews):
            return
        data = encode_png(_shrink(p.image, defaults.PREVIEW_MAX_SIDE))
        key = store_keys.job_preview(self.job_id, p.sample, p.level)
        self.ledger.store.put(key, data, "image/png")
        self.previews.append({"sample": p.sample, "level": p.level, "levels": p.levels})
        self.ledger.add_preview(self.job_id, self.previews)

    def __call__(self, p: Any) -> None:
        if self.previews is not None and getattr(p, "image", None) is not None:
            self._preview(p)
        now = time.monotonic()
        within = p.sample_share()
        last = p.iteration + 1 == p.iterations
        if (
            (p.sample, p.level) != self.last_level
            or last
            or (now - self.last_write >= defaults.PROGRESS_MIN_INTERVAL_S)
        ):
            self.ledger.report_progress(
                self.job_id,
                {
                    "sample": p.sample,
                    "samples": p.samples,
                    "samples_done": p.sample + (1 if p.sample_finished else 0),
                    "level": p.level,
                    "levels": p.levels,
                    "iteration": p.iteration,
                    "iterations": p.iterations,
                    "fraction": round((p.sample + within) / max(p.samples, 1), 4),
                },
            )
            self.last_write = now
            self.last_level = (p.sample, p.level)
        self.ledger.check_attempt(self.job_id, self.lease)


def _shrink(image: Any, max_side: int) -> Any:
    """`image` scaled down (area average) so that its longest side is at most `max_side`."""
    import cv2

    height, width = image.shape[:2]
    scale = max_side / max(height, width)
    if scale >= 1:
        return image
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def _load_inputs(ledger: Ledger, inputs: dict[str, Any]) -> dict[str, Any]:
    from gpnn.core import decode_image, decode_mask

    settings = ledger.settings

    def fetch(key: str) -> bytes:
        data = ledger.store.get(key)
        name = key.rsplit("/", 1)[-1]
        check_image(data, max_pixels=settings.max_pixels, max_side=settings.max_side, name=name)
        return data

    loaded: dict[str, Any] = {}
    for name, value in inputs.items():
        if name == "sources":
            loaded[name] = [decode_image(fetch(k), name=k.rsplit("/", 1)[-1]) for k in value]
        elif name == "mask":
            loaded[name] = decode_mask(fetch(value), name="mask")
        else:
            loaded[name] = decode_image(fetch(value), name=name)
    return loaded


def _check_work(params: Any, inputs: dict[str, Any], samples: int, limit: float) -> None:
    from gpnn.core.cost import work

    source = inputs["source"] if "source" in inputs else inputs["sources"][0]
    units = work(params, source.shape[:2], samples)
    if units > limit:
        raise ValueError(
            f"the job is estimated at {units:.0f} megapixel-iterations, over the limit of "
            f"{limit:g} (GPNN_MAX_JOB_WORK)"
        )


def run_job(job_id: str) -> dict[str, Any]:
    """Run one gpnn job (all its samples) and record the outcome."""
    from gpnn.core import encode_png, run_task

    settings = get_settings()
    ledger = Ledger(get_current_job().connection, settings)
    try:
        if ledger.cancel_requested(job_id):
            ledger.acknowledge_cancel(job_id)
            return {"status": "canceled"}
        lease = ledger.start(job_id)
        if lease is None:
            return {"status": "skipped"}
        record = ledger.get_job(job_id)
    except UnknownJob:
        logger.warning("job %s has no record (expired?); skipped", job_id)
        return {"status": "unknown"}
    started = time.perf_counter()
    samples = record.samples
    try:
        params = record.params
        inputs = _load_inputs(ledger, record.inputs)
        _check_work(params, inputs, samples, settings.max_job_work)
        engine_started = time.perf_counter()
        images = run_task(
            params,
            inputs,
            samples=samples,
            progress=_Reporter(ledger, job_id, lease, previews=record.preview_levels),
            device=settings.device,
        )
        engine_s = time.perf_counter() - engine_started
        outputs = []
        for n, image in enumerate(images):
            ledger.check_attempt(job_id, lease)
            key = store_keys.output(record.output_prefix, n)
            data = encode_png(image)
            ledger.store.put(key, data, "image/png")
            outputs.append(key)
        timings = {"engine_s": round(engine_s, 4), "total_s": time.perf_counter() - started}
        if not ledger.succeed(job_id, outputs, timings, lease=lease):
            raise AttemptSuperseded(job_id)
        return {"status": "succeeded", "outputs": outputs}
    except AttemptSuperseded:
        logger.warning("job %s: another attempt holds the lease; this one stops", job_id)
        return {"status": "superseded"}
    except JobCanceled:
        logger.info("job %s: stopped on cancel", job_id)
        ledger.acknowledge_cancel(job_id)
        return {"status": "canceled"}
    except TransientStoreError:
        raise  # RQ retries the job (on_rq_failure puts it back to queued)
    except ValueError as error:
        ledger.fail(job_id, str(error))
    except StoreError as error:
        ledger.fail(job_id, f"store error: {error}")
    except JobTimeoutException:
        ledger.fail(job_id, f"the job ran longer than {settings.job_timeout_s}s and was stopped")
    except Exception as error:
        logger.exception("job %s failed", job_id)
        ledger.fail(job_id, f"internal error: {type(error).__name__}: {error}")
    return {"status": "failed"}


def write_batch_report(batch_id: str) -> dict[str, Any]:
    """Evaluate every succeeded job of a finished batch against its source and write
    the report (`gpnn.evaluate.write_report`) under ``<batch>/report/``."""
    from gpnn.core import decode_image
    from gpnn.evaluate import build_entry, write_report

    settings = get_settings()
    ledger = Ledger(get_current_job().connection, settings)
    batch = ledger.get_batch(batch_id)
    fetch = ledger.store.get

    try:
        entries = []
        jobs = build_manifest(ledger.redis, batch)["jobs"]
        succeeded = [e for e in jobs if e["status"] == "succeeded"]
        for done, entry in enumerate(succeeded):
            ledger.report_step(batch_id, done, len(succeeded))
            source = decode_image(fetch(entry["inputs"]["source"]), name=entry["input"])
            samples = [decode_image(fetch(key), name=key) for key in entry["outputs"]]
            engine_s = (entry.get("timings") or {}).get("engine_s")
            entries.append(
                build_entry(
                    entry["input"],
                    source,
                    samples,
                    runtime_s=engine_s,
                    stride=settings.report_metric_stride,
                )
            )
        if not entries:
            raise ValueError("no job of the batch succeeded")
        ledger.report_step(batch_id, len(succeeded), len(succeeded))
        files = write_report(
            entries,
            title=f"gpnn batch {batch_id}",
            settings={
                "task": batch.task.value,
                "params": [p.model_dump(mode="json") for p in batch.params],
                "samples": batch.samples,
                "metric_stride": settings.report_metric_stride,
            },
        )
        for name, data in files.items():
            key = store_keys.batch_report(batch.output_prefix, name)
            ledger.store.put(key, data, _media_type(key))
    except (ValueError, StoreError) as error:
        ledger.finish_report(batch_id, error=str(error))
        return {"status": "failed"}
    ledger.finish_report(batch_id)
    return {"status": "written", "files": len(files)}


def _media_type(key: str) -> str:
    return mimetypes.guess_type(key)[0] or "application/octet-stream"


def on_rq_failure(job, connection, exc_type, exc_value, traceback) -> None:
    """RQ failure callback: RQ calls it when the job function raised, and when an
    abandoned job (its worker killed) is found by another worker's maintenance.
    (A work-horse's death is reported by `GpnnWorker.handle_work_horse_killed`.)"""
    settings = get_settings()
    if exc_type is not None and issubclass(exc_type, AbandonedJobError):
        reason = "the worker running this job stopped (killed or lost)"
    elif exc_type is not None and issubclass(exc_type, JobTimeoutException):
        reason = f"the job ran longer than {settings.job_timeout_s}s"
    else:
        reason = f"{exc_type.__name__ if exc_type else 'error'}: {exc_value}"
    record_lost_attempt(job, connection, reason)


def record_lost_attempt(job, connection, reason: str) -> None:
    """A lost attempt goes back to queued while RQ retries it, or the job fails for good
    (its batch advances, its webhook fires): every way an attempt ends reaches the record."""
    ledger = Ledger(connection, get_settings())
    try:
        if job.retries_left and job.retries_left > 0:
            ledger.requeue(job.id, f"attempt lost ({reason}); retrying")
        else:
            attempts = ledger.get_job(job.id).attempts
            ledger.fail(job.id, f"{reason}; gave up after {attempts} attempt(s)")
    except UnknownJob:
        pass  # not a gpnn job record (a report or a delivery), or expired
