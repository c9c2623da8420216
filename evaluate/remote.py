"""Generation through the gpnn batch service (`gpnn eval-dataset --server URL`).

One job per source image: ``POST /v1/jobs`` (multipart: ``task=generate``,
``params`` as JSON, ``samples``, the ``source`` file), then ``GET /v1/jobs/{id}``
until the job is terminal, then ``GET /v1/jobs/{id}/outputs/{n}`` for every
sample (redirects to the store are followed). The runtime reported is the
job's ``timings.engine_s``: the engine's time on the worker, comparable with a
local run's, without the queueing and the transfers.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import httpx
import numpy as np

from gpnn.core import GenerateParams, decode_image
from gpnn.evaluate.runner import Generator

logger = logging.getLogger(__name__)

# Seconds between two reads of a running job, and the longest wait for one job.
POLL_INTERVAL_S = 0.5
JOB_TIMEOUT_S = 3600.0
# Seconds for one HTTP request (uploads and downloads of one image).
REQUEST_TIMEOUT_S = 60.0
TERMINAL = frozenset({"succeeded", "failed", "canceled"})


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
    with one readable line.
    """
    if not server.startswith(("http://", "https://")):
        raise ValueError(f"`--server` must be an http(s) URL, got `{server}`")
    headers = {"X-API-Key": api_key} if api_key else {}
    client = httpx.Client(
        base_url=server.rstrip("/"),
        headers=headers,
        timeout=REQUEST_TIMEOUT_S,
        follow_redirects=True,
        transport=transport,
    )

    def run(
        source: np.ndarray, path: Path, params: GenerateParams, samples: int
    ) -> tuple[list[np.ndarray], float]:
        try:
            job = _submit(client, path, params, samples)
            job = _wait(client, job, job_timeout_s, poll_interval_s)
            outputs = [
                decode_image(_get(client, f"/v1/jobs/{job['id']}/outputs/{n}").content)
                for n in range(samples)
            ]
        except httpx.HTTPError as error:
            raise ValueError(f"the service at `{server}` failed: {error}") from None
        timings = job.get("timings") or {}
        return outputs, float(timings.get("engine_s") or 0.0)

    return run


def _submit(client: httpx.Client, path: Path, params: GenerateParams, samples: int) -> dict:
    # Only the fields that differ from the defaults: the service fills in the rest.
    body = json.dumps(params.changed())
    response = client.post(
        "/v1/jobs",
        data={"task": "generate", "params": body, "samples": str(samples)},
        files={"source": (path.name, path.read_bytes())},
    )
    _check(response, f"submitting `{path.name}`")
    job = response.json()
    logger.info("%s: job %s", path.name, job["id"])
    return job


def _wait(client: httpx.Client, job: dict, timeout_s: float, every_s: float) -> dict:
    deadline = time.monotonic() + timeout_s
    while job["status"] not in TERMINAL:
        if time.monotonic() > deadline:
            raise ValueError(f"job `{job['id']}` did not finish in {timeout_s:.0f} s")
        time.sleep(every_s)
        job = _get(client, f"/v1/jobs/{job['id']}").json()
    if job["status"] != "succeeded":
        raise ValueError(f"job `{job['id']}` {job['status']}: {job.get('error') or 'no reason'}")
    return job


def _get(client: httpx.Client, url: str) -> httpx.Response:
    response = client.get(url)
    _check(response, f"GET {url}")
    return response


def _check(response: httpx.Response, what: str) -> None:
    if response.is_success:
        return
    try:
        detail = response.json().get("detail")
    except ValueError:
        detail = None
    if not isinstance(detail, str):
        detail = response.text[:200] or response.reason_phrase
    raise ValueError(f"{what}: the service answered {response.status_code}: {detail}")
