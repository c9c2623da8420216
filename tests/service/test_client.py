"""gpnn.client against the real API (ASGI transport), Redis and an RQ worker."""

from __future__ import annotations

import io
import zipfile

import pytest

from gpnn.client import Client, ServiceError
from gpnn.core import GenerateParams

from .conftest import CHEAP, drain, png, synthetic


@pytest.fixture
def api(client):
    with Client("http://testserver", transport=client._transport) as api:
        yield api


def test_submit_wait_download(api, settings):
    params = GenerateParams(**CHEAP, seed=3)
    job = api.submit("generate", {"source": png(synthetic())}, params=params, samples=2)
    assert job["status"] == "queued" and job["params"]["seed"] == 3
    assert job["params"]["alpha"] == "Infinity"  # a default the client did not send
    drain(settings)
    seen = []
    done = api.wait(job, poll_s=0, on_read=lambda record: seen.append(record["status"]))
    assert seen[-1] == "succeeded"
    images = api.outputs(done)
    assert len(images) == 2 and all(i.startswith(b"\x89PNG") for i in images)


def test_refusals_and_failures_are_one_readable_line(api, settings):
    with pytest.raises(ServiceError, match="answered 422: `samples`: `retarget` adds no noise"):
        api.submit("retarget", {"source": png(synthetic())}, params={"width": 40}, samples=2)
    with pytest.raises(ServiceError, match="answered 404"):
        api.job("0" * 32)
    with pytest.raises(ServiceError, match="answered 422: `source`: not a readable image"):
        api.submit("generate", {"source": b"not an image at all"}, params=CHEAP)
    job = api.submit("generate", {"source": png(synthetic())}, params=CHEAP)
    api.cancel(job["id"])
    with pytest.raises(ServiceError, match=rf"job `{job['id']}` canceled"):
        api.wait(job, poll_s=0)


def test_batches(api, settings):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        bundle.writestr("a.png", png(synthetic(seed=1)))
        bundle.writestr("b.png", png(synthetic(seed=2)))
    batch = api.submit_batch("generate", buffer.getvalue(), params=[CHEAP, {**CHEAP, "seed": 9}])
    assert batch["total"] == 4
    drain(settings)
    batch = api.wait_batch(batch, poll_s=0)
    assert batch["status"] == "succeeded" and batch["succeeded"] == 4
    assert len(api.manifest(batch)["jobs"]) == 4
