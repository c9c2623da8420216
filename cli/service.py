"""`gpnn serve` and `gpnn worker`: the batch service from the command line."""

from __future__ import annotations

import importlib.resources
import json
import logging
import signal
import time
from pathlib import Path
from typing import Annotated

import typer

from gpnn.cli.app import app, check_out, fail, parse_device
from gpnn.config import configure_logging


def _settings(**overrides):
    from pydantic import ValidationError

    from gpnn.config import Settings
    from gpnn.core.params import describe_validation_error

    try:
        base = Settings()
        return Settings(**{**base.model_dump(), **{k: v for k, v in overrides.items() if v}})
    except ValidationError as error:
        fail(f"invalid setting: {describe_validation_error(error)}")


DEVICE_HELP = "Engine device of the workers: cpu, cuda, cuda:N (GPU N) or auto (GPNN_DEVICE)."


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Listen address (GPNN_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Listen port (GPNN_PORT).")] = None,
    workers: Annotated[
        int | None, typer.Option(help="Embedded mode: worker processes (GPNN_WORKERS).")
    ] = None,
    device: Annotated[
        str | None, typer.Option(help="Embedded mode: " + DEVICE_HELP, show_default=False)
    ] = None,
) -> None:
    """Run the service. With no REDIS_URL: embedded Redis, workers and the API on one machine.

    With REDIS_URL (and a shared GPNN_STORE_URL) set, only the API runs; `gpnn worker`
    on other machines does the work. Ctrl-C or SIGTERM stops everything.
    """
    from gpnn.service.embedded import serve as run

    settings = _settings(host=host, port=port, workers=workers, device=parse_device(device))
    configure_logging(settings)
    if device is not None and settings.redis_url:
        fail(
            "`--device` chooses the embedded workers' device; with REDIS_URL set, "
            "give it to `gpnn worker`"
        )
    try:
        run(settings, workers=workers)
    except (FileNotFoundError, ConnectionError, ValueError, RuntimeError) as error:
        fail(str(error))


@app.command()
def worker(
    count: Annotated[
        int | None, typer.Option("--count", "-n", help="Job worker processes (GPNN_WORKERS).")
    ] = None,
    device: Annotated[str | None, typer.Option(help=DEVICE_HELP, show_default=False)] = None,
    burst: Annotated[
        bool, typer.Option(help="One worker in this process; exit when the queue is empty.")
    ] = False,
    check: Annotated[
        bool,
        typer.Option(
            "--check",
            help="Only read GPNN_WORKER_HEALTH_FILE and exit 0 when the pool is healthy, "
            "1 when not (a container health check).",
        ),
    ] = False,
) -> None:
    """Run a supervised pool of RQ workers against REDIS_URL and GPNN_STORE_URL.

    The supervisor restarts a worker that exits (with backoff), waits for Redis when it
    is gone, and on SIGTERM lets each worker finish its job within GPNN_DRAIN_GRACE_S
    or hand it back to the queue. Webhook deliveries run on a worker of their own.
    """

    from gpnn.worker.runner import WorkerPool, check_device, read_health, run_worker

    settings = _settings(workers=count, device=parse_device(device))
    if check:
        if not settings.worker_health_file:
            fail("`--check` needs GPNN_WORKER_HEALTH_FILE")
        health = read_health(Path(settings.worker_health_file))
        typer.echo(json.dumps(health))
        raise typer.Exit(0 if health["healthy"] else 1)
    configure_logging(settings)
    if not settings.redis_url:
        fail("`gpnn worker` needs REDIS_URL (the Redis the API uses)")
    try:
        backend = check_device(settings)
    except ValueError as error:
        fail(str(error))
    logging.getLogger(__name__).info("engine on %s (%s)", settings.device, backend)
    if burst:
        run_worker(settings, burst=True)
        return
    pool = WorkerPool(settings.workers, env=settings.as_env(), settings=settings).start()
    signal.signal(signal.SIGTERM, lambda signum, frame: pool.stopping.set())
    signal.signal(signal.SIGINT, lambda signum, frame: pool.stopping.set())
    try:
        pool.supervise()
    finally:
        pool.stop()


@app.command()
def demo(
    source: Annotated[
        Path | None,
        typer.Argument(help="Image to generate samples of (default: the bundled demo photo)."),
    ] = None,
    samples: Annotated[int, typer.Option(min=1, help="Number of samples.")] = 3,
    mode: Annotated[str, typer.Option(help="Search mode: fast or exact.")] = "fast",
    device: Annotated[str | None, typer.Option(help=DEVICE_HELP, show_default=False)] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Where the samples go.")] = Path(
        "gpnn-out"
    ),
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the finished job and its files as JSON.")
    ] = False,
) -> None:
    """Start the whole service on this machine, run one generation job through its REST
    API, save the samples and stop everything again."""
    from gpnn.client import Client
    from gpnn.service.embedded import run_embedded

    if source is None:
        source = DEMO_IMAGE
    if not source.is_file():
        fail(f"`{source}` is not a file")
    say = (lambda _line: None) if as_json else typer.echo
    # Only warnings from the service, so that the REST calls below stand out.
    settings = _settings(device=parse_device(device), log_level="WARNING")
    check_out(out)
    started = time.monotonic()
    written = []

    def show_progress(record: dict) -> None:
        progress = record.get("progress") or {}
        state = (record["status"], progress.get("samples_done"))
        if state != shown[-1]:
            say(f"GET /v1/jobs/{record['id']} -> {record['status']} {progress}")
            shown.append(state)

    shown: list[tuple] = [()]
    try:
        with run_embedded(settings, workers=1) as base_url, Client(base_url) as api:
            say(f"service up at {base_url} (store {settings.store_url})")
            job = api.submit("generate", {"source": source}, params={"mode": mode}, samples=samples)
            say(f"POST /v1/jobs -> 202, job {job['id']} {job['status']}")
            job = api.wait(job, on_read=show_progress)
            out.mkdir(parents=True, exist_ok=True)
            for n, data in enumerate(api.outputs(job)):
                target = out / f"{source.stem}-generate-{job['params']['seed'] + n}.png"
                target.write_bytes(data)
                written.append(str(target))
                say(f"GET {job['outputs'][n]} -> {target}")
    except (FileNotFoundError, ConnectionError, RuntimeError, ValueError) as error:
        fail(str(error))
    say(f"done in {time.monotonic() - started:.1f} s; the service has stopped")
    say(
        f"`gpnn serve` keeps it running, with the studio at http://{settings.host}:{settings.port}/"
    )
    if as_json:
        typer.echo(json.dumps({"job": job, "outputs": written}))


# SIGD16 image 12 (hot-air balloons, 250x167) from Granot et al.'s benchmark, shipped
# with the package so that `gpnn demo` works from a bare clone or a wheel.
DEMO_IMAGE = Path(str(importlib.resources.files("gpnn.core") / "data" / "demo.jpg"))
