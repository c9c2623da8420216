"""Batches: a zip (or a store prefix) of inputs x parameter sets x samples, with a manifest."""

from __future__ import annotations

import io
import json
import zipfile

import pytest

from gpnn.store import keys, open_store

from .conftest import CHEAP, drain, make_zip, png, strict_json, synthetic


def test_batch_with_one_bad_input(client, settings, webhook_receiver):
    archive = make_zip(
        {
            "a.png": png(synthetic(seed=1)),
            "dir/b.png": png(synthetic(seed=2)),
            "broken.png": b"this is no image",
            "notes.txt": b"ignored: not an image extension",
            "c.png": png(synthetic(seed=3)),
        }
    )
    params = [{**CHEAP, "seed": 10}, {**CHEAP, "seed": 20, "patch_size": 7}]
    answer = client.post(
        "/v1/batches",
        data={
            "task": "generate",
            "params": json.dumps(params),
            "samples": "2",
            "webhook_url": webhook_receiver.url,
        },
        files={"archive": ("inputs.zip", archive, "application/zip")},
    )
    assert answer.status_code == 202, answer.text
    batch = answer.json()
    assert batch["total"] == 8 and batch["status"] == "queued" and batch["progress"] == 0.0
    assert answer.headers["location"] == f"/v1/batches/{batch['id']}"

    drain(settings)

    batch = client.get(f"/v1/batches/{batch['id']}").json()
    assert batch["status"] == "succeeded" and batch["progress"] == 1.0
    assert (batch["done"], batch["succeeded"], batch["failed"]) == (8, 6, 2)
    manifest = client.get(batch["manifest"]).json()
    store = open_store(settings.store_url)
    assert store.exists(batch["manifest_key"])
    assert manifest == json.loads(store.get(batch["manifest_key"]))
    by_input = {}
    for entry in manifest["jobs"]:
        by_input.setdefault(entry["input"], []).append(entry)
    assert sorted(by_input) == ["a.png", "broken.png", "c.png", "dir/b.png"]
    # Each job says which input it is of (the studio's gallery captions them so).
    for url in batch["jobs"]:
        job = client.get(url).json()
        assert job["id"] in {e["job_id"] for e in by_input[job["input_name"]]}
    for entry in by_input["broken.png"]:
        assert entry["status"] == "failed" and "readable" in entry["error"]
    for entry in by_input["a.png"]:
        assert entry["status"] == "succeeded" and entry["error"] is None
        assert len(entry["outputs"]) == 2 and entry["timings"]["engine_s"] > 0
        for key in entry["outputs"]:
            assert key.startswith(f"batches/{batch['id']}/outputs/")
            assert store.get(key).startswith(b"\x89PNG")
    seeds = sorted(tuple(e["seeds"]) for e in by_input["a.png"])
    assert seeds == [(10, 11), (20, 21)]
    # The batch webhook (and only it: the batch's jobs have none).
    events = [json.loads(body) for _, body in webhook_receiver.requests]
    assert [e["type"] for e in events] == ["batch.succeeded"]
    assert events[0]["data"]["failed"] == 2


def test_batch_from_store_prefix(client, settings):
    store = open_store(settings.store_url)
    for n in range(3):
        store.put(f"datasets/tiny/{n}.png", png(synthetic(seed=n)))
    store.put("datasets/tiny/readme.md", b"not an input")
    answer = client.post(
        "/v1/batches",
        data={
            "task": "retarget",
            "prefix": "datasets/tiny/",
            "params": json.dumps({**CHEAP, "height": 24, "width": 24}),
        },
    )
    assert answer.status_code == 202, answer.text
    drain(settings)
    batch = client.get(f"/v1/batches/{answer.json()['id']}").json()
    assert (batch["total"], batch["succeeded"]) == (3, 3)
    manifest = client.get(batch["manifest"]).json()
    assert [e["input"] for e in manifest["jobs"]] == [f"datasets/tiny/{n}.png" for n in range(3)]


def test_batch_cancel_and_bad_requests(client, settings):
    archive = make_zip({"a.png": png(synthetic()), "b.png": png(synthetic(seed=1))})
    files = {"archive": ("in.zip", archive, "application/zip")}
    batch = client.post("/v1/batches", data={"task": "generate"}, files=files).json()
    answer = client.post(f"/v1/batches/{batch['id']}/cancel")
    assert answer.status_code == 202
    assert client.get(f"/v1/batches/{batch['id']}").json()["status"] == "canceled"
    assert client.get(batch["jobs"][0]).json()["status"] == "canceled"

    def post(data, files=None):
        return client.post("/v1/batches", data=data, files=files)

    assert post({"task": "generate"}).status_code == 422  # neither archive nor prefix
    assert post({"task": "collage", "prefix": "x/"}).status_code == 422
    assert post({"task": "generate", "prefix": "jobs/"}).status_code == 422
    assert post({"task": "generate", "prefix": "../etc"}).status_code == 422
    assert post({"task": "generate", "prefix": "nothing-here/"}).status_code == 422
    bad_zip = {"archive": ("in.zip", b"PK not really", "application/zip")}
    answer = post({"task": "generate"}, bad_zip)
    assert answer.status_code == 422 and "archive" in answer.json()["detail"]
    answer = post({"task": "analogy"}, files)
    assert answer.status_code == 422 and "structure" in answer.json()["detail"]
    answer = post({"task": "generate", "params": json.dumps([{"alpha": -1}])}, files)
    assert answer.status_code == 422 and "alpha" in answer.json()["detail"]


def test_batch_report_is_written_beside_the_manifest(client, settings):
    archive = make_zip({"a.png": png(synthetic(seed=1)), "b.png": png(synthetic(seed=2))})
    answer = client.post(
        "/v1/batches",
        data={"task": "generate", "params": json.dumps(CHEAP), "samples": "2", "report": "true"},
        files={"archive": ("inputs.zip", archive, "application/zip")},
    )
    assert answer.status_code == 202, answer.text
    batch_id = answer.json()["id"]
    assert answer.json()["report"] == "requested"
    early = client.get(f"/v1/batches/{batch_id}/report/index.html")
    assert early.status_code == 409 and "requested" in early.json()["detail"]

    drain(settings)  # runs the jobs, then the report job that the last one queued

    batch = client.get(f"/v1/batches/{batch_id}").json()
    assert batch["report"] == "written", batch["report_error"]
    assert batch["report_progress"] == 1.0
    page = client.get(batch["report_url"])
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "a.png" in page.text and "b.png" in page.text
    metrics = client.get(f"/v1/batches/{batch_id}/report/metrics.json").json()
    names = [image["name"] for image in metrics["images"]]
    assert sorted(names) == ["a.png", "b.png"]
    assert all(image["diversity"] is not None for image in metrics["images"])
    assert metrics["settings"]["metric_stride"] == settings.report_metric_stride == 8
    store = open_store(settings.store_url)
    assert store.exists(f"batches/{batch_id}/report/contact_sheet.png")
    for odd in ("../manifest.json", "a//b.png", "a%00.png", "%00", "x/"):
        answer = client.get(f"/v1/batches/{batch_id}/report/{odd}")
        assert answer.status_code == 404, (odd, answer.status_code, answer.text)


@pytest.mark.parametrize(
    "prefix",
    ["jobs", "job", "j", "batches", "batch", "b", "jobs//x", "/jobs/", "jobs/../", "a\x00"],
)
def test_a_batch_prefix_never_reaches_the_service_folders(client, settings, prefix):
    # Another tenant's private input and output, where the service keeps them.
    store = open_store(settings.store_url)
    store.put("jobs/someone/inputs/source.png", png(synthetic()))
    store.put("batches/someone/outputs/0000-a/0.png", png(synthetic(seed=1)))
    answer = client.post("/v1/batches", data={"task": "generate", "prefix": prefix})
    assert answer.status_code == 422, answer.text
    assert "prefix" in answer.json()["detail"]


def test_shared_input_keys_exclude_the_service_folders():
    assert not keys.is_shared_input("jobs/1/inputs/source.png")
    assert not keys.is_shared_input("batches/1/manifest.json")
    assert keys.is_shared_input("jobsite/1.png") and keys.is_shared_input("datasets/a.png")


def test_archive_members_left_out_are_listed_with_the_reason(client, settings):
    image = png(synthetic(seed=4))
    archive = make_zip(
        {
            "a.png": image,
            ".hidden.png": image,
            "dir/.also-hidden.jpg": image,
            "._a.png": b"\x00\x05\x16\x07 AppleDouble",
            "__MACOSX/._a.png": b"\x00\x05\x16\x07 AppleDouble",
            "notes.txt": b"not an image",
        }
    )
    answer = client.post(
        "/v1/batches",
        data={"task": "generate", "params": json.dumps(CHEAP)},
        files={"archive": ("in.zip", archive, "application/zip")},
    )
    assert answer.status_code == 202, answer.text
    batch = answer.json()
    assert batch["total"] == 1 and batch["skipped_total"] == 5
    reasons = {entry["name"]: entry["reason"] for entry in batch["skipped"]}
    assert sorted(reasons) == sorted(
        [".hidden.png", "._a.png", "__MACOSX/._a.png", "dir/.also-hidden.jpg", "notes.txt"]
    )
    assert "hidden" in reasons[".hidden.png"] and "hidden" in reasons["dir/.also-hidden.jpg"]
    assert "macOS" in reasons["._a.png"] and "macOS" in reasons["__MACOSX/._a.png"]
    assert "not an image" in reasons["notes.txt"]
    drain(settings)
    batch = client.get(f"/v1/batches/{batch['id']}").json()
    assert batch["status"] == "succeeded" and batch["skipped"] == answer.json()["skipped"]
    manifest = client.get(batch["manifest"]).json()
    assert [e["input"] for e in manifest["jobs"]] == ["a.png"]
    assert manifest["skipped"] == batch["skipped"] and manifest["skipped_total"] == 5


def test_batch_outputs_by_url_and_as_one_zip(client, settings):
    archive = make_zip({"a.png": png(synthetic(seed=1)), "d/b.png": png(synthetic(seed=2))})
    answer = client.post(
        "/v1/batches",
        data={"task": "generate", "params": json.dumps(CHEAP), "samples": "2"},
        files={"archive": ("inputs.zip", archive, "application/zip")},
    )
    assert answer.status_code == 202, answer.text
    drain(settings)
    batch = client.get(f"/v1/batches/{answer.json()['id']}").json()
    manifest = strict_json(client.get(batch["manifest"]).text)
    store = open_store(settings.store_url)
    keys_written = []
    for entry in manifest["jobs"]:
        assert entry["params"]["alpha"] == "Infinity"
        assert len(entry["output_urls"]) == len(entry["outputs"]) == 2
        for url, key in zip(entry["output_urls"], entry["outputs"], strict=True):
            assert client.get(url).content == store.get(key)
            keys_written.append(key)
    bundle = client.get(f"/v1/batches/{batch['id']}/outputs.zip")
    assert bundle.status_code == 200 and bundle.headers["content-type"] == "application/zip"
    prefix = keys_written[0][: keys_written[0].index("/outputs/") + 1]
    with zipfile.ZipFile(io.BytesIO(bundle.content)) as opened:
        assert sorted(opened.namelist()) == sorted(k.removeprefix(prefix) for k in keys_written)
        for key in keys_written:
            assert opened.read(key.removeprefix(prefix)) == store.get(key)
