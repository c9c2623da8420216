"""The service on a real S3 endpoint (SeaweedFS), and a property-based run of its schema."""

from __future__ import annotations

import httpx
import pytest
import schemathesis

from gpnn.core import decode_image

from .conftest import S3_BUCKET, drain, make_settings, png, submit, synthetic, unique


@pytest.fixture
def s3_settings(configure, redis_url, s3_endpoint):
    return configure(
        make_settings(
            redis_url,
            f"s3://{S3_BUCKET}/service-{unique()}",
            s3_endpoint_url=s3_endpoint,
            s3_access_key_id="test",
            s3_secret_access_key="test",
        )
    )


def test_job_on_s3_store_redirects_to_a_signed_url(make_client, s3_settings):
    client = make_client(s3_settings)
    assert client.get("/readyz").status_code == 200
    files = {"source": ("s.png", png(synthetic()), "image/png")}
    job = submit(client, "generate", files, samples="2").json()
    drain(s3_settings)
    job = client.get(f"/v1/jobs/{job['id']}").json()
    assert job["status"] == "succeeded", job["error"]
    answer = client.get(job["outputs"][1], follow_redirects=False)
    assert answer.status_code == 307
    location = answer.headers["location"]
    assert location.startswith(s3_settings.s3_endpoint_url) and "Signature" in location
    image = decode_image(httpx.get(location).content)
    assert image.shape == (32, 48, 3)


def test_batch_manifest_on_s3(make_client, s3_settings):
    import io
    import zipfile

    client = make_client(s3_settings)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        bundle.writestr("x.png", png(synthetic()))
        bundle.writestr("y.png", b"garbage")
    batch = client.post(
        "/v1/batches",
        data={"task": "generate", "params": '{"patch_size": 5, "depth": 1, "iterations": 1}'},
        files={"archive": ("in.zip", buffer.getvalue())},
    ).json()
    drain(s3_settings)
    batch = client.get(f"/v1/batches/{batch['id']}").json()
    assert (batch["succeeded"], batch["failed"]) == (1, 1)
    manifest = client.get(batch["manifest"]).json()
    assert {e["input"]: e["status"] for e in manifest["jobs"]} == {
        "x.png": "succeeded",
        "y.png": "failed",
    }


def test_openapi_schema_fuzzing_finds_no_server_error(client):
    from hypothesis import HealthCheck, given, settings

    schema = schemathesis.openapi.from_asgi("/openapi.json", client.app)
    failures = []
    seen: set[tuple[str, int]] = set()

    def fuzz(operation) -> None:
        @settings(
            max_examples=25,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
        )
        @given(case=operation.as_strategy())
        def check(case):
            response = case.call()
            seen.add((operation.label, response.status_code))
            if response.status_code >= 500:
                failures.append((operation.label, response.status_code, response.text[:200]))

        check()

    for result in schema.get_all_operations():
        fuzz(result.ok())
    assert failures == []
    assert ("POST /v1/jobs", 202) in seen or ("POST /v1/jobs", 422) in seen
    assert len(list(schema.get_all_operations())) >= 10
