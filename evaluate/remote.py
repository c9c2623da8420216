"""Generation through the gpnn batch service (`gpnn eval-dataset --server URL`).

One job per source image through `gpnn.client` (``POST /v1/jobs`` with
``task=generate``, the parameters that differ from the defaults, ``samples`` and the
``source`` file; then reads of the job until it is terminal; then its outputs). The
runtime reported is the job's ``timings.engine_s``: the engine's time on the worker,
comparable with a local run's, without the queueing and the transfers.
"""

from __future__ import annotations

import logging
from pathlib import Path

import httpx
import numpy as np

from gpnn.client import JOB_TIMEOUT_S, POLL_INTERVAL_S, Client
from gpnn.core import GenerateParams, decode_image
from gpnn.evaluate.runner import Generator

logger = logging.getLogger(__name__)


def remote_generator(
    server: str,
    *,
    api_key: str | None = None,
    job_timeout_s: float = JOB_TIMEOUT_S,
    poll_interval_s: float = POLL_INTERVAL_S,
    transport: httpx.BaseTransport | None = None,
) -> Generator:
    """A `Generator` that runs every source's samples as one job on the service.

    Parameters
    ----------
    server : str, base URL of the API (e.g. ``http://127.0.0.1:8000``)
    api_key : str or None, sent as ``X-API-Key`` when the service needs keys
    job_timeout_s : float, the longest wait for one job
    poll_interval_s : float, seconds between two reads of a job
    transport : httpx transport (tests)

    Failures (service unreachable, a job refused or failed) raise `ValueError`
    (`gpnn.client.ServiceError`) with one readable line.
    """
    if not server.startswith(("http://", "https://")):
        raise ValueError(f"`--server` must be an http(s) URL, got `{server}`")
    client = Client(server, api_key=api_key, transport=transport)

    def run(
        source: np.ndarray, path: Path, params: GenerateParams, samples: int
    ) -> tuple[list[np.ndarray], float]:
        job = client.submit("generate", {"source": path}, params=params, samples=samples)
        logger.info("%s: job %s", path.name, job["id"])
        job = client.wait(job, timeout_s=job_timeout_s, poll_s=poll_interval_s)
        outputs = [decode_image(data) for data in client.outputs(job)]
        timings = job.get("timings") or {}
        return outputs, float(timings.get("engine_s") or 0.0)

    return run
