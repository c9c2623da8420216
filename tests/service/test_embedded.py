"""`gpnn serve` with nothing configured, and `run_embedded()`: whole product, nothing left."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from gpnn.config import Settings

from .conftest import CHEAP, descendants, free_port, png, synthetic, wait_until


def run_one_job(base_url: str) -> dict:
    answer = httpx.post(
        f"{base_url}/v1/jobs",
        data={"task": "generate", "params": json.dumps(CHEAP)},
        files={"source": ("s.png", png(synthetic()), "image/png")},
    )
    assert answer.status_code == 202, answer.text
    url = f"{base_url}{answer.headers['location']}"
    job = wait_until(
        lambda: (j := httpx.get(url).json())["status"] in ("succeeded", "failed") and j,
        60,
        "the job",
        every_s=0.1,
    )
    assert job["status"] == "succeeded", job["error"]
    image = httpx.get(f"{base_url}{job['outputs'][0]}")
    assert image.status_code == 200 and image.content.startswith(b"\x89PNG")
    return job


def test_gpnn_serve_runs_everything_and_stops_cleanly(tmp_path):
    port = free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("GPNN_") and k not in ("REDIS_URL", "STORE_URL")
    }
    env.update(GPNN_PORT=str(port), GPNN_WORKERS="1", GPNN_STORE_URL=f"file://{tmp_path}/data")
    # A short drain grace: the stop below must not wait on a worker's drain (30 s by
    # default) should that worker still be starting on a loaded machine.
    env.update(GPNN_EMBEDDED_REDIS_DIR=str(tmp_path / "redis"), GPNN_DRAIN_GRACE_S="2")
    process = subprocess.Popen(
        [sys.executable, "-c", "from gpnn.cli import main; main()", "serve"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(tmp_path / "serve.log", "wb"),  # noqa: SIM115
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: httpx.get(f"{base}/readyz").status_code == 200, 90, "gpnn serve")
        children = descendants(process.pid)
        assert len(children) >= 2  # redis-server and a worker
        run_one_job(base)
        assert (tmp_path / "data" / "jobs").is_dir()
    finally:
        process.send_signal(signal.SIGTERM)
        # drain grace (2 s) + the supervisor's margin (10 s) + Redis's stop (5 s) at most
        code = process.wait(timeout=60)
    assert code == 0, (tmp_path / "serve.log").read_text()[-2000:]
    wait_until(
        lambda: not any(Path(f"/proc/{pid}").exists() for pid in children), 15, "children exit"
    )


def test_run_embedded_context(tmp_path):
    from gpnn.service.embedded import run_embedded

    settings = Settings(
        store_url=f"file://{tmp_path}/data", redis_url=None, workers=1, embedded_redis_dir=None
    )
    before = set(descendants(os.getpid()))  # session servers of other tests
    with run_embedded(settings) as base_url:
        children = set(descendants(os.getpid())) - before
        job = run_one_job(base_url)
        assert job["attempts"] == 1
    assert len(children) >= 2  # redis-server and a worker
    wait_until(
        lambda: not any(Path(f"/proc/{pid}").exists() for pid in children), 15, "children exit"
    )


def test_the_embedded_service_keeps_its_jobs_across_a_restart(tmp_path):
    from gpnn.service.embedded import run_embedded

    settings = Settings(
        store_url=f"file://{tmp_path}/data",
        redis_url=None,
        workers=1,
        embedded_redis_dir=str(tmp_path / "redis"),
    )
    with run_embedded(settings) as base_url:
        job = run_one_job(base_url)
    with run_embedded(settings) as base_url:
        again = httpx.get(f"{base_url}/v1/jobs/{job['id']}")
        assert again.status_code == 200, again.text
        assert again.json()["status"] == "succeeded"
        output = httpx.get(f"{base_url}{again.json()['outputs'][0]}")
        assert output.status_code == 200 and output.content.startswith(b"\x89PNG")


def test_gpnn_demo_runs_from_the_repository_alone(tmp_path):
    """`make demo`'s command with no image: the bundled photo, no ../shared needed."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("GPNN_") and k not in ("REDIS_URL", "STORE_URL")
    }
    env.update(GPNN_PORT=str(free_port()), GPNN_STORE_URL=f"file://{tmp_path}/data")
    env.update(GPNN_EMBEDDED_REDIS_DIR=str(tmp_path / "redis"))
    command = [sys.executable, "-c", "from gpnn.cli import main; main()", "demo"]
    result = subprocess.run(
        [*command, "--samples", "2", "--out", str(tmp_path / "out")],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stderr
    outputs = sorted((tmp_path / "out").glob("*.png"))
    assert len(outputs) == 2 and all(p.read_bytes().startswith(b"\x89PNG") for p in outputs)
    # What it prints is the REST calls it made: no worker's log lines among them.
    assert "rq.worker" not in result.stdout + result.stderr
    assert result.stdout.count("studio") == 1
