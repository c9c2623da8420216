"""Jobs end to end through HTTP: submit, run (real Redis, RQ worker), poll, download."""

from __future__ import annotations

import json
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from gpnn.core import decode_image

from .conftest import drain, png, strict_json, submit, synthetic


def finished(client, job_id: str) -> dict:
    answer = client.get(f"/v1/jobs/{job_id}")
    assert answer.status_code == 200
    return answer.json()


def image_of(client, url: str) -> np.ndarray:
    answer = client.get(url)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "image/png"
    return decode_image(answer.content)


SOURCE = synthetic()
MASK = np.zeros_like(SOURCE)
MASK[10:20, 15:30] = 255

TASKS = [
    ("generate", {"source": SOURCE}, {}, (32, 48)),
    ("retarget", {"source": SOURCE}, {"height": 24, "width": 40}, (24, 40)),
    ("analogy", {"source": SOURCE, "structure": synthetic(seed=3)[:, ::-1]}, {}, (32, 48)),
    ("inpaint", {"source": SOURCE, "mask": MASK}, {}, (32, 48)),
    ("collage", {"sources": [SOURCE, synthetic(seed=5)]}, {}, (32, 96)),
    ("edit", {"source": SOURCE, "edited": SOURCE[::-1]}, {}, (32, 48)),
]


@pytest.mark.parametrize(("task", "images", "params", "shape"), TASKS, ids=[t[0] for t in TASKS])
def test_each_task_end_to_end(client, settings, task, images, params, shape):
    files = []
    for name, image in images.items():
        for one in image if isinstance(image, list) else [image]:
            files.append((name, (f"{name}.png", png(np.ascontiguousarray(one)), "image/png")))
    samples = 2 if task == "generate" else 1  # the other tasks add no noise by default
    answer = submit(client, task, files, params, samples=str(samples), seed="7")
    assert answer.status_code == 202, answer.text
    job = answer.json()
    assert answer.headers["location"] == f"/v1/jobs/{job['id']}"
    assert job["status"] == "queued" and job["params"]["seed"] == 7 and job["samples"] == samples

    drain(settings)

    job = finished(client, job["id"])
    assert job["status"] == "succeeded", job["error"]
    assert len(job["outputs"]) == samples
    assert job["progress"]["fraction"] == 1.0
    assert job["started_at"] and job["finished_at"] and job["timings"]["engine_s"] > 0
    images = [image_of(client, url) for url in job["outputs"]]
    assert images[0].shape == (*shape, 3)
    assert images[0].min() >= 0.0 and images[0].max() <= 1.0
    if task == "generate":
        assert not np.array_equal(*images)  # seeds 7 and 8 differ
    assert client.get(f"/v1/jobs/{job['id']}/outputs/{samples}").status_code == 404


def test_idempotent_resubmission(client, settings):
    files = {"source": ("s.png", png(SOURCE), "image/png")}
    headers = {"Idempotency-Key": "key-123"}
    first = submit(client, "generate", files, headers=headers)
    again = submit(client, "generate", files, headers=headers)
    other = submit(client, "generate", files, headers={"Idempotency-Key": "key-456"})
    assert first.status_code == again.status_code == 202
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["idempotent-replayed"] == "true"
    assert other.json()["id"] != first.json()["id"]
    changed = submit(client, "generate", files, {"seed": 3}, headers=headers)
    assert changed.status_code == 409 and "Idempotency-Key" in changed.json()["detail"]
    from redis import Redis
    from rq import Queue

    queue = Queue(settings.queue_name, connection=Redis.from_url(settings.redis_url))
    assert queue.count == 2


def test_a_replay_waits_for_the_first_request_by_its_announcement(client):
    """The claim writes id and digest at once; a replay that finds no record yet waits
    for the first request's announcement (stored, or failed and freed), not a poll."""
    from gpnn.service.errors import Conflict
    from gpnn.service.routes import jobs as routes
    from gpnn.worker import keys
    from gpnn.worker.exceptions import UnknownJob

    ledger = client.app.state.ledger
    stored = ledger.get_job(
        submit(client, "generate", {"source": ("s.png", png(SOURCE))}).json()["id"]
    )
    assert routes._claim_idempotency_key(ledger, "o", "k", "later", "d") is None
    assert routes._claim_idempotency_key(ledger, "o", "k", "other", "d") == "later"
    with pytest.raises(Conflict):
        routes._claim_idempotency_key(ledger, "o", "k", "other", "changed")
    with ThreadPoolExecutor(2) as pool:
        replay = pool.submit(routes._wait_for_record, ledger, "o", "k", "later")
        ledger.create_job(stored.model_copy(update={"id": "later"}))
        ledger.redis.publish(keys.idempotency_channel("o", "k"), "later")
        assert replay.result(timeout=routes.REPLAY_WAIT_S).id == "later"

        assert routes._claim_idempotency_key(ledger, "o", "k2", "never", "d") is None
        failed = pool.submit(routes._wait_for_record, ledger, "o", "k2", "never")
        ledger.redis.delete(keys.idempotency_key("o", "k2"))
        ledger.redis.publish(keys.idempotency_channel("o", "k2"), "")
        with pytest.raises(UnknownJob):
            failed.result(timeout=routes.REPLAY_WAIT_S / 2)


def test_cancel_queued_job(client, settings):
    job = submit(client, "generate", {"source": ("s.png", png(SOURCE), "image/png")}).json()
    answer = client.post(f"/v1/jobs/{job['id']}/cancel")
    assert answer.status_code == 202 and answer.json()["status"] == "canceled"
    drain(settings)
    job = finished(client, job["id"])
    assert job["status"] == "canceled" and job["outputs"] == [] and job["started_at"] is None
    assert client.get(f"/v1/jobs/{job['id']}/outputs/0").status_code == 409
    again = client.post(f"/v1/jobs/{job['id']}/cancel")
    assert again.status_code == 202 and again.json()["status"] == "canceled"


def test_cancel_of_finished_job_conflicts(client, settings):
    job = submit(client, "generate", {"source": ("s.png", png(SOURCE), "image/png")}).json()
    drain(settings)
    assert client.post(f"/v1/jobs/{job['id']}/cancel").status_code == 409


def test_webhook_delivered_signed_and_retried(client, settings, webhook_receiver):
    from gpnn.worker.webhooks import verify

    webhook_receiver.fail_first = 1
    job = submit(
        client,
        "generate",
        {"source": ("s.png", png(SOURCE), "image/png")},
        webhook_url=webhook_receiver.url,
    ).json()
    drain(settings)
    assert len(webhook_receiver.requests) == 2  # one 500, then delivered
    headers, body = webhook_receiver.requests[-1]
    secret = client.get("/v1/webhooks/secret").json()["secret"]
    assert verify(secret, body, headers)
    assert not verify(secret, body + b" ", headers)
    event = json.loads(body)
    assert event["type"] == "job.succeeded" and event["data"]["id"] == job["id"]
    assert headers["webhook-id"] == job["id"]


def test_health_ready_metrics(client, settings):
    assert client.get("/healthz").json() == {"status": "ok", "checks": {}}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["checks"] == {"redis": "ok", "store": "ok"}
    submit(client, "generate", {"source": ("s.png", png(SOURCE), "image/png")})
    text = client.get("/metrics").text
    assert 'gpnn_queue_depth{queue="gpnn-test"} 1.0' in text
    assert 'gpnn_jobs{state="queued"} 1.0' in text
    drain(settings)
    text = client.get("/metrics").text
    assert 'gpnn_jobs{state="succeeded"} 1.0' in text
    assert 'gpnn_jobs{state="queued"} 0.0' in text
    assert "gpnn_job_duration_seconds_count 1.0" in text
    assert "gpnn_engine_seconds_per_image_count 1.0" in text


def test_readyz_reports_unreachable_store(make_client, settings):
    """The store's folder replaced by a file: the real store's probe fails, /readyz says
    so by name, and the probe leaves the file as it is."""
    client = make_client(settings)
    root = Path(settings.store_url.removeprefix("file://"))
    assert client.get("/readyz").status_code == 200
    shutil.rmtree(root)
    root.write_bytes(b"not a folder")
    answer = client.get("/readyz")
    assert answer.status_code == 503
    assert answer.json()["checks"]["store"] == "unreachable: StoreError"
    assert root.read_bytes() == b"not a folder"


def test_jobs_without_a_mode_get_the_service_default(client, settings):
    files = {"source": ("s.png", png(SOURCE), "image/png")}
    unnamed = submit(client, "generate", files)
    named = submit(client, "generate", files, {"mode": "exact"})
    assert unnamed.json()["params"]["mode"] == settings.default_mode == "fast"
    assert named.json()["params"]["mode"] == "exact"


def test_params_read_back_are_standard_json_and_accepted_again(client, settings):
    files = {"source": ("s.png", png(SOURCE), "image/png")}
    first = submit(client, "generate", files)
    assert first.status_code == 202, first.text
    params = strict_json(client.get(f"/v1/jobs/{first.json()['id']}").text)["params"]
    assert params["alpha"] == "Infinity"
    again = client.post(
        "/v1/jobs", data={"task": "generate", "params": json.dumps(params)}, files=files
    )
    assert again.status_code == 202, again.text
    assert again.json()["params"] == params
    drain(settings)
    assert strict_json(client.get(f"/v1/jobs/{again.json()['id']}").text)["status"] == "succeeded"


def test_a_job_answers_with_its_estimate_from_the_sizes(client, settings):
    small = submit(client, "generate", {"source": ("s.png", png(synthetic(32, 48)), "image/png")})
    large = submit(client, "generate", {"source": ("l.png", png(synthetic(64, 96)), "image/png")})
    assert small.status_code == large.status_code == 202, small.text
    first, second = small.json()["estimate"], large.json()["estimate"]
    assert first["mode"] == "fast" and 0 < first["seconds"] < second["seconds"]
    assert second["work_mpi"] == pytest.approx(4 * first["work_mpi"], rel=0.01)
    assert client.get(f"/v1/jobs/{small.json()['id']}").json()["estimate"] == first


def test_several_samples_of_a_task_without_noise_are_422(client, settings):
    files = {
        "source": ("s.png", png(SOURCE), "image/png"),
        "mask": ("m.png", png(MASK), "image/png"),
    }
    answer = submit(client, "inpaint", files, samples="3")
    assert answer.status_code == 422
    assert answer.json()["detail"].startswith("`samples`: `inpaint` adds no noise")


def test_a_jobs_outputs_as_one_zip(client, settings):
    import io
    import zipfile

    answer = submit(
        client, "generate", {"source": ("s.png", png(SOURCE), "image/png")}, samples="2"
    )
    job_id = answer.json()["id"]
    assert client.get(f"/v1/jobs/{job_id}/outputs.zip").status_code == 409  # not finished
    drain(settings)
    bundle = client.get(f"/v1/jobs/{job_id}/outputs.zip")
    assert bundle.status_code == 200 and bundle.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(bundle.content)) as opened:
        assert opened.namelist() == [f"{job_id}-0.png", f"{job_id}-1.png"]
        for n in range(2):
            assert (
                opened.read(f"{job_id}-{n}.png")
                == client.get(f"/v1/jobs/{job_id}/outputs/{n}").content
            )
