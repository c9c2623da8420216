"""gpnn.client: the batch service's REST API from Python.

>>> from gpnn.client import Client
>>> with Client("http://127.0.0.1:8000", api_key=None) as api:
...     job = api.wait(api.submit("generate", {"source": Path("photo.jpg")}, samples=2))
...     pngs = api.outputs(job)

Every failure (the service unreachable, a submission refused, a job failed or too
slow) raises `ServiceError`, a `ValueError` with one readable line that carries the
service's own `detail`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx

from gpnn.core.params import CommonParams

TERMINAL = frozenset({"succeeded", "failed", "canceled"})
# A client's pace: seconds between two reads of an unfinished job or batch.
POLL_INTERVAL_S = 0.5
JOB_TIMEOUT_S = 3600.0
# Seconds for one HTTP request (an upload or a download of one image).
REQUEST_TIMEOUT_S = 60.0

Upload = Path | bytes


class ServiceError(ValueError):
    """The service refused a request or a job did not succeed (one readable line)."""


class Client:
    """Submit jobs and batches, wait for them, download what they made."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        timeout_s: float = REQUEST_TIMEOUT_S,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"the service URL must be http(s), got `{base_url}`")
        self.base_url = base_url.rstrip("/")
        self.http = httpx.Client(
            base_url=self.base_url,
            headers={"X-API-Key": api_key} if api_key else {},
            timeout=timeout_s,
            follow_redirects=True,
            transport=transport,
        )

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()

    # --- jobs -----------------------------------------------------------------------------

    def submit(
        self,
        task: str,
        inputs: Mapping[str, Upload | Sequence[Upload]],
        *,
        params: CommonParams | Mapping[str, Any] | None = None,
        samples: int = 1,
        **form: str,
    ) -> dict[str, Any]:
        """`POST /v1/jobs`; `inputs` maps input names to files (a list for `sources`).
        A parameters model sends only the fields that differ from its defaults."""
        files = []
        for name, value in inputs.items():
            for one in value if isinstance(value, list | tuple) else [value]:
                files.append((name, _upload(one, name)))
        data = {"task": task, "samples": str(samples), "params": _params_json(params), **form}
        return self._json("POST", "/v1/jobs", f"submitting a `{task}` job", data=data, files=files)

    def job(self, job_id: str) -> dict[str, Any]:
        return self._json("GET", f"/v1/jobs/{job_id}", f"reading job `{job_id}`")

    def cancel(self, job_id: str) -> dict[str, Any]:
        return self._json("POST", f"/v1/jobs/{job_id}/cancel", f"canceling job `{job_id}`")

    def wait(
        self,
        job: Mapping[str, Any],
        *,
        timeout_s: float = JOB_TIMEOUT_S,
        poll_s: float = POLL_INTERVAL_S,
        on_read: Callable[[dict[str, Any]], None] | None = None,
    ) -> dict[str, Any]:
        """Read `job` until it is terminal; `ServiceError` unless it succeeded.
        `on_read` sees every record read (for progress)."""
        finished = self._wait(self.job, job, timeout_s, poll_s, on_read)
        if finished["status"] != "succeeded":
            reason = finished.get("error") or "no reason given"
            raise ServiceError(f"job `{finished['id']}` {finished['status']}: {reason}")
        return finished

    def outputs(self, job: Mapping[str, Any]) -> list[bytes]:
        """The PNG bytes of every output of a finished job, in sample order."""
        return [self._get(url, f"downloading {url}").content for url in job["outputs"]]

    # --- batches --------------------------------------------------------------------------

    def submit_batch(
        self,
        task: str,
        archive: Upload,
        *,
        params: CommonParams | Mapping[str, Any] | Sequence[Any] | None = None,
        samples: int = 1,
        **form: str,
    ) -> dict[str, Any]:
        """`POST /v1/batches` with a zip of inputs; `params` may be a list of sets."""
        sets = params if isinstance(params, list | tuple) else [params]
        body = json.dumps([json.loads(_params_json(p)) for p in sets])
        data = {"task": task, "samples": str(samples), "params": body, **form}
        files = {"archive": _upload(archive, "archive")}
        return self._json("POST", "/v1/batches", "submitting a batch", data=data, files=files)

    def batch(self, batch_id: str) -> dict[str, Any]:
        return self._json("GET", f"/v1/batches/{batch_id}", f"reading batch `{batch_id}`")

    def wait_batch(
        self,
        batch: Mapping[str, Any],
        *,
        timeout_s: float = JOB_TIMEOUT_S,
        poll_s: float = POLL_INTERVAL_S,
        on_read: Callable[[dict[str, Any]], None] | None = None,
    ) -> dict[str, Any]:
        """Read `batch` until it is terminal (some of its jobs may have failed)."""
        return self._wait(self.batch, batch, timeout_s, poll_s, on_read)

    def manifest(self, batch: Mapping[str, Any]) -> dict[str, Any]:
        return self._json("GET", f"/v1/batches/{batch['id']}/manifest", "reading a manifest")

    # --- plumbing -------------------------------------------------------------------------

    def _wait(self, read, record, timeout_s, poll_s, on_read) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        record = dict(record)
        while True:
            if on_read is not None:
                on_read(record)
            if record["status"] in TERMINAL:
                return record
            if time.monotonic() > deadline:
                raise ServiceError(f"`{record['id']}` did not finish in {timeout_s:.0f} s")
            time.sleep(poll_s)
            record = read(record["id"])

    def _json(self, method: str, url: str, what: str, **kwargs: Any) -> dict[str, Any]:
        return self._request(method, url, what, **kwargs).json()

    def _get(self, url: str, what: str) -> httpx.Response:
        return self._request("GET", url, what)

    def _request(self, method: str, url: str, what: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self.http.request(method, url, **kwargs)
        except httpx.HTTPError as error:
            raise ServiceError(
                f"{what}: the service at `{self.base_url}` failed: {error}"
            ) from None
        if not response.is_success:
            detail = _detail(response)
            raise ServiceError(f"{what}: the service answered {response.status_code}: {detail}")
        return response


def _params_json(params: CommonParams | Mapping[str, Any] | None) -> str:
    if params is None:
        return "{}"
    if isinstance(params, CommonParams):
        # The service fills in every default (and its own default mode).
        return json.dumps({k: v for k, v in params.changed().items() if k != "task"})
    return json.dumps(dict(params))


def _upload(value: Upload, name: str) -> tuple[str, bytes]:
    if isinstance(value, Path):
        return value.name, value.read_bytes()
    return f"{name}.png", value


def _detail(response: httpx.Response) -> str:
    try:
        detail = response.json().get("detail")
    except ValueError:
        detail = None
    if not isinstance(detail, str):
        detail = response.text[:200] or response.reason_phrase
    return detail
