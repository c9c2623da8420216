"""gpnn.evaluate.remote against a fake of the service's job API (httpx.MockTransport).

The fake follows service/routes/jobs.py: POST /v1/jobs (multipart), GET
/v1/jobs/{id}, GET /v1/jobs/{id}/outputs/{n}.
"""

import json
import re

import httpx
import numpy as np
import pytest

from gpnn.core import GenerateParams, encode_png, write_image
from gpnn.evaluate import find_images, run_dataset
from gpnn.evaluate.remote import remote_generator


def _image(value: float) -> np.ndarray:
    yy, xx = np.mgrid[0:24, 0:30].astype(np.float32)
    return np.clip(np.stack([xx / 30, yy / 24, np.full_like(xx, value)], axis=2), 0, 1)


class FakeService:
    def __init__(self, status_after: int = 2, final: str = "succeeded") -> None:
        self.jobs: dict[str, dict] = {}
        self.reads: dict[str, int] = {}
        self.submissions: list[dict] = []
        self.status_after = status_after
        self.final = final

    def __call__(self, request: httpx.Request) -> httpx.Response:
        assert request.headers.get("X-API-Key") == "secret"
        path = request.url.path
        if request.method == "POST" and path == "/v1/jobs":
            body = request.read().decode("latin-1")
            fields = dict(re.findall(r'name="(\w+)"\r\n\r\n([^\r]*)\r\n', body))
            assert 'name="source"; filename="' in body
            self.submissions.append(fields)
            job_id = f"{len(self.jobs):032x}"
            samples = int(fields["samples"])
            self.jobs[job_id] = {"id": job_id, "status": "queued", "samples": samples}
            self.reads[job_id] = 0
            return httpx.Response(202, json=self.jobs[job_id])
        match = re.fullmatch(r"/v1/jobs/(\w+)(?:/outputs/(\d+))?", path)
        job = self.jobs[match.group(1)]
        if match.group(2) is not None:
            return httpx.Response(200, content=encode_png(_image(int(match.group(2)) / 4)))
        self.reads[job["id"]] += 1
        if self.reads[job["id"]] >= self.status_after:
            outputs = [f"/v1/jobs/{job['id']}/outputs/{n}" for n in range(job["samples"])]
            job.update(status=self.final, timings={"engine_s": 2.5, "total_s": 3.0})
            job["outputs"] = outputs if self.final == "succeeded" else []
            if self.final == "failed":
                job["error"] = "worker lost"
        else:
            job["status"] = "running"
        return httpx.Response(200, json=job)


@pytest.fixture
def dataset(tmp_path):
    for i in range(2):
        write_image(tmp_path / f"{i + 1}.png", _image(0.5))
    return tmp_path


def test_remote_generator_runs_one_job_per_image(dataset):
    fake = FakeService()
    generator = remote_generator(
        "http://gpnn.test", api_key="secret", poll_interval_s=0, transport=httpx.MockTransport(fake)
    )
    params = GenerateParams(sigma=1.25, mode="exact")
    entries = list(run_dataset(find_images(dataset), params, samples=3, generator=generator))
    assert len(entries) == 2 and len(fake.jobs) == 2
    first = fake.submissions[0]
    assert first["task"] == "generate" and first["samples"] == "3"
    assert json.loads(first["params"]) == {"sigma": 1.25, "mode": "exact"}  # alpha=inf omitted
    e = entries[0].evaluation
    assert e.samples == 3 and e.runtime_s == 2.5
    assert e.diversity is not None and e.diversity > 0  # the three outputs differ


def test_remote_generator_failed_job_is_one_line(dataset):
    fake = FakeService(final="failed")
    generator = remote_generator(
        "http://gpnn.test", api_key="secret", poll_interval_s=0, transport=httpx.MockTransport(fake)
    )
    with pytest.raises(ValueError, match="failed: worker lost"):
        list(run_dataset(find_images(dataset), GenerateParams(), samples=1, generator=generator))


def test_remote_generator_refused_request(dataset):
    def refuse(request):
        return httpx.Response(422, json={"detail": "`params`: `sigma`: too large"})

    generator = remote_generator(
        "http://gpnn.test", poll_interval_s=0, transport=httpx.MockTransport(refuse)
    )
    with pytest.raises(ValueError, match="answered 422: `params`"):
        list(run_dataset(find_images(dataset), GenerateParams(), samples=1, generator=generator))


def test_remote_generator_needs_http_url():
    with pytest.raises(ValueError, match="http"):
        remote_generator("localhost:8000")
