"""Every bad input gets its 4xx (never a 5xx), with the field named; API keys isolate owners."""

from __future__ import annotations

import io
import json
import re
import struct
import zlib
from pathlib import Path

import pytest

from .conftest import derive, drain, png, submit, synthetic

SOURCE = png(synthetic())


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header declares a huge image (a decompression bomb's opening)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return (
        b"\x89PNG\r\n\x1a\n"
        + struct.pack(">I", len(ihdr))
        + chunk
        + struct.pack(">I", zlib.crc32(chunk))
        + b"\x00" * 64
    )


@pytest.mark.parametrize(
    ("task", "params", "form", "files", "status", "field"),
    [
        ("paint", {}, {}, {"source": SOURCE}, 422, "task"),
        ("generate", {"patch_size": 99}, {}, {"source": SOURCE}, 422, "patch_size"),
        ("generate", {"patch_size": 6}, {}, {"source": SOURCE}, 422, "patch_size"),
        ("generate", {"bogus": 1}, {}, {"source": SOURCE}, 422, "bogus"),
        ("retarget", {}, {}, {"source": SOURCE}, 422, "height"),
        ("generate", {}, {"samples": "0"}, {"source": SOURCE}, 422, "samples"),
        ("generate", {}, {"samples": "999"}, {"source": SOURCE}, 422, "samples"),
        ("generate", {}, {"seed": "-1"}, {"source": SOURCE}, 422, "seed"),
        ("generate", {}, {}, {}, 422, "source"),
        ("generate", {}, {}, {"source": b"not an image at all"}, 422, "source"),
        ("generate", {}, {}, {"source": SOURCE[:40]}, 422, "source"),
        ("generate", {}, {}, {"source": SOURCE[:-30]}, 422, "source"),
        ("generate", {}, {}, {"source": b""}, 422, "source"),
        ("generate", {}, {}, {"source": png_header_only(100000, 100000)}, 413, "source"),
        ("generate", {}, {}, {"source": png_header_only(3000, 3000)}, 413, "source"),
        ("generate", {}, {}, {"source": SOURCE, "mask": SOURCE}, 422, "mask"),
        ("inpaint", {}, {}, {"source": SOURCE}, 422, "mask"),
        ("inpaint", {}, {}, {"source": SOURCE, "mask": png(synthetic(8, 9))}, 422, "is 9x8"),
        (
            "inpaint",
            {"color": [0, 255, 0]},
            {},
            {"source": SOURCE, "mask": SOURCE},
            422,
            "given by `color` too",
        ),
        ("collage", {}, {}, {"sources": SOURCE}, 422, "at least two images"),
        ("edit", {}, {}, {"source": SOURCE, "edited": png(synthetic(8, 9))}, 422, "`edited`"),
        ("inpaint", {"color": [123, 45, 200]}, {}, {"source": SOURCE}, 422, "marks no pixel"),
        ("generate", {}, {"webhook_url": "ftp://x"}, {"source": SOURCE}, 422, "webhook_url"),
    ],
)
def test_bad_submissions_get_4xx_naming_the_field(client, task, params, form, files, status, field):
    upload = {name: (f"{name}.png", data, "image/png") for name, data in files.items()}
    answer = submit(client, task, upload or None, params, **form)
    assert answer.status_code == status, answer.text
    assert field in answer.text
    detail = answer.json()["detail"]
    if isinstance(detail, str):  # ours (FastAPI's own form errors are lists)
        assert_names_each_field_once(detail)


def assert_names_each_field_once(detail: str) -> None:
    named = re.findall(r"`([^`]+)`", detail)
    assert len(named) == len(set(named)), f"a name repeated: {detail}"
    assert "`parameters`" not in detail, f"says `parameters` after `params`: {detail}"


def test_batch_errors_name_each_field_once(client):
    archive = {"archive": ("in.zip", b"PK", "application/zip")}
    for params in ({}, [{"patch_size": 4}], [{}, {"height": 0}]):
        data = {"task": "retarget", "params": json.dumps(params)}
        answer = client.post("/v1/batches", data=data, files=archive)
        assert answer.status_code == 422, answer.text
        assert_names_each_field_once(answer.json()["detail"])
    broken = {"mask": ("m.png", SOURCE[:-30], "image/png"), **archive}
    answer = client.post("/v1/batches", data={"task": "inpaint"}, files=broken)
    assert answer.status_code == 422 and "`mask`" in answer.json()["detail"], answer.text
    assert_names_each_field_once(answer.json()["detail"])


@pytest.mark.parametrize("path", ["/v1/jobs", "/v1/batches"])
def test_broken_multipart_is_a_documented_400(client, path):
    bodies = [
        ("multipart/form-data", b"x"),  # no boundary
        ("multipart/form-data; boundary=xx", b"--xx\r\nbroken\r\n\r\n--xx--"),
        ("multipart/form-data; boundary=xx", b"--xx\r\nContent-Disposition: form-data\r\n\r\n"),
    ]
    for content_type, body in bodies:
        answer = client.post(path, content=body, headers={"content-type": content_type})
        assert answer.status_code == 400, answer.text
        assert isinstance(answer.json()["detail"], str)
    responses = client.get("/openapi.json").json()["paths"][path]["post"]["responses"]
    assert "400" in responses
    assert responses["400"]["content"]["application/json"]["schema"]["$ref"].endswith("ErrorBody")


def test_params_not_json(client):
    answer = client.post(
        "/v1/jobs",
        data={"task": "generate", "params": "{nope"},
        files={"source": ("s.png", SOURCE, "image/png")},
    )
    assert answer.status_code == 422 and "`params`" in answer.json()["detail"]


@pytest.mark.parametrize("depth", [2000, 100000])
def test_deeply_nested_params_are_422(client, depth):
    answer = client.post(
        "/v1/jobs",
        data={"task": "generate", "params": "[" * depth + "]" * depth},
        files={"source": ("s.png", SOURCE, "image/png")},
    )
    assert answer.status_code == 422 and "`params`" in answer.json()["detail"]


def test_an_output_missing_from_the_store_is_404(client, settings):
    job = submit(client, "generate", {"source": ("s.png", SOURCE, "image/png")}).json()
    drain(settings)
    (Path(settings.store_url.removeprefix("file://")) / f"jobs/{job['id']}/outputs/0.png").unlink()
    answer = client.get(f"/v1/jobs/{job['id']}/outputs/0")
    assert answer.status_code == 404 and "expired" in answer.json()["detail"]


def test_upload_over_the_limit_is_413(make_client, settings):
    client = make_client(derive(settings, max_upload_bytes=4096))
    big = io.BytesIO(b"\x89PNG" + b"\x00" * 10000)
    answer = client.post("/v1/jobs", data={"task": "generate"}, files={"source": ("s.png", big)})
    assert answer.status_code == 413 and "limit" in answer.json()["detail"]


def test_unknown_job_is_404(client):
    missing = "0" * 32
    assert client.get(f"/v1/jobs/{missing}").status_code == 404
    assert client.post(f"/v1/jobs/{missing}/cancel").status_code == 404
    assert client.get(f"/v1/jobs/{missing}/outputs/0").status_code == 404
    assert client.get(f"/v1/batches/{missing}").status_code == 404
    assert client.get("/v1/jobs/not-an-id").status_code == 404  # names nothing either


def test_api_keys_isolate_owners(make_client, settings):
    client = make_client(derive(settings, api_keys="alice-key,bob-key"))
    files = {"source": ("s.png", SOURCE, "image/png")}
    assert submit(client, "generate", files).status_code == 401
    assert submit(client, "generate", files, headers={"X-API-Key": "mallory"}).status_code == 403
    alice = {"X-API-Key": "alice-key"}
    bob = {"Authorization": "Bearer bob-key"}
    job = submit(client, "generate", files, headers=alice).json()
    assert client.get(f"/v1/jobs/{job['id']}", headers=alice).status_code == 200
    assert client.get(f"/v1/jobs/{job['id']}", headers=bob).status_code == 404
    assert client.post(f"/v1/jobs/{job['id']}/cancel", headers=bob).status_code == 404
    assert client.get(f"/v1/jobs/{job['id']}").status_code == 401
    drain(settings)
    assert client.get(f"/v1/jobs/{job['id']}/outputs/0", headers=bob).status_code == 404
    answer = client.get(f"/v1/jobs/{job['id']}/outputs/0", headers=alice)
    assert answer.status_code == 200 and answer.content.startswith(b"\x89PNG")
    # Idempotency keys are per owner too.
    first = submit(client, "generate", files, headers={**alice, "Idempotency-Key": "same"})
    other = submit(client, "generate", files, headers={**bob, "Idempotency-Key": "same"})
    assert first.json()["id"] != other.json()["id"]


def test_every_refusal_is_one_string_naming_the_field(client):
    """FastAPI's own checks (a form field's type, a query's range) answer like ours: a
    string, not a list of objects; a malformed id is a 404 like an unknown one."""
    upload = {"source": ("s.png", SOURCE, "image/png")}
    answers = {
        "samples": client.post("/v1/jobs", data={"task": "generate", "samples": "x"}, files=upload),
        "limit": client.get("/v1/jobs", params={"limit": "0"}),
    }
    for field, answer in answers.items():
        assert answer.status_code == 422, answer.text
        detail = answer.json()["detail"]
        assert isinstance(detail, str) and detail.startswith(f"`{field}`: "), detail
    for path in ("/v1/jobs/nope", "/v1/batches/nope"):
        answer = client.get(path)
        assert answer.status_code == 404 and "`nope`" in answer.json()["detail"], answer.text
