"""One contract of a job: the API's answer, the webhook body and the manifest entry all
say what the record's public shape says, and parameters read back are accepted again."""

from __future__ import annotations

import json
import math
from datetime import datetime

from .conftest import drain, png, submit, submit_batch, synthetic

SOURCE = {"source": ("s.png", png(synthetic()), "image/png")}


def same_moments(shape: dict) -> dict:
    """`shape` with its timestamps as datetimes: the API writes them through its
    datetime fields (`...Z`), webhooks and manifests as the record stored them."""
    return {
        name: datetime.fromisoformat(value) if name.endswith("_at") and value else value
        for name, value in shape.items()
    }


def test_api_answer_and_webhook_body_are_the_records_public_shape(
    client, settings, webhook_receiver
):
    answer = submit(client, "generate", SOURCE, samples="2", webhook_url=webhook_receiver.url)
    assert answer.status_code == 202, answer.text
    job_id = answer.json()["id"]
    drain(settings)

    public = client.app.state.ledger.get_job(job_id).public()
    assert public["status"] == "succeeded" and len(public["outputs"]) == 2
    api = client.get(f"/v1/jobs/{job_id}").json()
    assert same_moments(api) == same_moments(public)
    (delivery,) = [json.loads(body) for _, body in webhook_receiver.requests]
    assert delivery["type"] == "job.succeeded"
    assert delivery["data"] == public


def test_a_manifest_entry_says_what_the_job_says(client, settings):
    members = {"a.png": png(synthetic(seed=1))}
    answer = submit_batch(client, "generate", members, {"seed": 5}, samples="2")
    assert answer.status_code == 202, answer.text
    drain(settings)

    batch = client.get(f"/v1/batches/{answer.json()['id']}").json()
    (entry,) = client.get(batch["manifest"]).json()["jobs"]
    job = client.get(f"/v1/jobs/{entry['job_id']}").json()
    assert same_moments(job) == same_moments(
        client.app.state.ledger.get_job(entry["job_id"]).public()
    )
    assert entry["output_urls"] == job["outputs"]
    assert entry["seeds"] == [5, 6]
    for name in ("params", "status", "created_at", "started_at", "finished_at", "timings"):
        assert same_moments(entry)[name] == same_moments(job)[name], name


def test_params_read_back_post_again_into_the_same_job(client, settings):
    first = submit(client, "generate", SOURCE)
    assert first.status_code == 202, first.text
    params = client.get(f"/v1/jobs/{first.json()['id']}").json()["params"]
    again = client.post(
        "/v1/jobs", data={"task": "generate", "params": json.dumps(params)}, files=SOURCE
    )
    assert again.status_code == 202, again.text

    ledger = client.app.state.ledger
    original = ledger.get_job(first.json()["id"])
    repeated = ledger.get_job(again.json()["id"])
    assert repeated.params == original.params
    assert repeated.params.alpha == math.inf
