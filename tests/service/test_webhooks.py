"""Webhooks: inward addresses refused at submit and at delivery, one secret per owner,
Standard Webhooks signatures checked with that package's own verifier."""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from rq import Queue
from rq.registry import FailedJobRegistry, StartedJobRegistry
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from gpnn.worker.queueing import webhooks_queue_name

from .conftest import derive, drain, png, stop_process, submit, synthetic, wait_until

SOURCE = {"source": ("s.png", png(synthetic()), "image/png")}

INWARD = [
    "http://127.0.0.1:6379/",  # the Redis port on loopback
    "http://localhost/hook",
    "http://169.254.169.254/latest/meta-data/",  # cloud metadata
    "http://10.1.2.3/hook",
    "http://192.168.0.10/hook",
    "http://172.16.5.5/hook",
    "http://[::1]/hook",
    "http://[::ffff:127.0.0.1]/hook",  # IPv4-mapped loopback
    "http://[fd00::1]/hook",  # unique local
    "http://0.0.0.0/hook",
    "http://224.0.0.1/hook",  # multicast
    "http://no-such-host.invalid/hook",
    "ftp://example.com/hook",
]


@pytest.mark.parametrize("url", INWARD)
def test_inward_webhook_urls_are_refused_at_submit(make_client, settings, url):
    client = make_client(derive(settings, webhook_allow_networks=[]))
    answer = submit(client, "generate", SOURCE, webhook_url=url)
    assert answer.status_code == 422, answer.text
    assert "webhook_url" in answer.json()["detail"]
    batch = client.post(
        "/v1/batches",
        data={"task": "generate", "prefix": "inputs/", "webhook_url": url},
    )
    assert batch.status_code == 422 and "webhook_url" in batch.json()["detail"]


def test_allow_list_admits_a_named_network(make_client, settings, webhook_receiver):
    client = make_client(derive(settings, webhook_allow_networks=["127.0.0.1/32"]))
    answer = submit(client, "generate", SOURCE, webhook_url=webhook_receiver.url)
    assert answer.status_code == 202, answer.text


def test_delivery_checks_the_target_again(configure, make_client, settings, webhook_receiver):
    client = make_client(settings)  # loopback allowed at submit...
    answer = submit(client, "generate", SOURCE, webhook_url=webhook_receiver.url)
    assert answer.status_code == 202
    workers = configure(derive(settings, webhook_allow_networks=[]))  # ...not at delivery
    drain(workers)
    assert webhook_receiver.requests == []
    redis = client.app.state.ledger.redis
    failed = FailedJobRegistry(webhooks_queue_name(settings), connection=redis)
    assert len(failed.get_job_ids()) == 1
    assert Queue(webhooks_queue_name(settings), connection=redis).count == 0


def test_each_owner_signs_with_its_own_secret(make_client, settings, webhook_receiver):
    client = make_client(derive(settings, api_keys="key-a,key-b"))
    a, b = {"X-API-Key": "key-a"}, {"X-API-Key": "key-b"}
    secret_a = client.get("/v1/webhooks/secret", headers=a).json()["secret"]
    secret_b = client.get("/v1/webhooks/secret", headers=b).json()["secret"]
    assert secret_a != secret_b and secret_a.startswith("whsec_")
    assert client.get("/v1/webhooks/secret", headers=a).json()["secret"] == secret_a
    job = submit(client, "generate", SOURCE, headers=a, webhook_url=webhook_receiver.url).json()
    drain(settings)
    (headers, body), *_ = webhook_receiver.requests
    event = Webhook(secret_a).verify(body, headers)  # the Standard Webhooks verifier
    assert event["type"] == "job.succeeded" and event["data"]["id"] == job["id"]
    with pytest.raises(WebhookVerificationError):
        Webhook(secret_b).verify(body, headers)
    assert json.loads(body)["data"]["params"]["seed"] == 0


def test_a_receiver_that_never_answers_delays_no_job(make_client, settings, tmp_path):
    """Deliveries run on the webhook worker: a job submitted after one whose receiver
    hangs finishes while that delivery is still waiting."""
    release = threading.Event()
    hanging = threading.Event()

    class Hang(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            hanging.set()
            release.wait(60)
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hang)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    slow_receiver = derive(settings, webhook_timeout_s=60, webhook_retries=0)
    client = make_client(slow_receiver)
    supervisor = subprocess.Popen(  # 1 job worker + 1 webhook worker
        [str(Path(sys.executable).parent / "gpnn"), "worker", "-n", "1"],
        env={**os.environ, **slow_receiver.as_env()},
        stdout=open(tmp_path / "supervisor.log", "wb"),  # noqa: SIM115
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )

    def status(job_id: str) -> str:
        return client.get(f"/v1/jobs/{job_id}").json()["status"]

    try:
        first = submit(client, "generate", SOURCE, webhook_url=url).json()["id"]
        wait_until(hanging.is_set, 60, "the delivery of the first job's webhook")
        second = submit(client, "generate", SOURCE).json()["id"]
        wait_until(lambda: status(second) == "succeeded", 30, "the second job")
        assert status(first) == "succeeded"
        deliveries = StartedJobRegistry(
            webhooks_queue_name(slow_receiver), connection=client.app.state.ledger.redis
        )
        assert deliveries.count == 1  # the first job's delivery was waiting all along
    finally:
        release.set()
        stop_process(supervisor)
        server.shutdown()
        server.server_close()
