"""Fault runs: the service's processes are killed under load; does every job still end once?

Each scenario gets processes of its own on loopback: a redis-server with append-only
persistence (`appendfsync everysec`, as in docker/compose.yaml), the `gpnn worker`
supervisor (N job workers and a webhook worker) and the API in this process (FastAPI
TestClient, two API keys), with a file store. Jobs are tiny (a 48x48 random texture,
default generation parameters, 1 sample) and submitted before and during the fault.

Scenarios:

- `horse-kill`: SIGKILL the work-horse running a job, `--kills` times;
- `supervisor-term`: SIGTERM the `gpnn worker` supervisor mid-job and start a new
  one, `--restarts` times (the old one drains within GPNN_DRAIN_GRACE_S, else hands
  the job back);
- `redis-kill`: kill -9 redis-server mid-run, hold it down `--outage-s`, start it
  again from its append-only file (submissions meanwhile are refused with 503);
- `tenant-prefixes`: a second API key tries batches from prefixes shaped like the
  first tenant's folders and ids, and reads the first tenant's jobs and batches.

Columns (per scenario, over the jobs accepted, 202):

- succeeded: its outputs all in the store; failed: with the reason in the record;
- lost: never terminal by the deadline, or its record gone, or a success whose outputs
  are missing, or a failure without a reason; stuck: those of `lost` whose record
  still says queued/running;
- duplicated: a job whose function returned "succeeded" (outputs written) in more
  than one execution (RQ's result records), or with more output objects than samples;
- retries: attempts beyond the first (how hard the fault hit); superseded: attempts
  that stopped because a newer one held the lease;
- refused: submissions not accepted (503 while Redis is down; 4xx for the tenant's
  probes); leaks: the second tenant read something of the first's;
- recovery s: from the end of the fault until every accepted job was terminal
  (goal: 0 lost, 0 duplicated, 0 stuck, recovery < 120 s, no person stepping in).

Synchronisation is by polling state (records in Redis, /proc, the supervisor's health
file) with deadlines.

    .venv/bin/python bench/faults.py --jobs 40 --workers 2
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from redis import Redis
from redis.exceptions import RedisError

from gpnn.config import Settings
from gpnn.service.embedded import find_redis_server, free_port
from gpnn.store import open_store
from gpnn.store.keys import is_shared_input
from gpnn.worker.exceptions import UnknownJob
from gpnn.worker.ledger import Ledger

GPNN = Path(sys.executable).parent / "gpnn"
TERMINAL = {"succeeded", "failed", "canceled"}
KEYS = ("tenant-a-key", "tenant-b-key")
# Prefix shapes of the first tenant's data that the second tries ({job}, {batch}: its ids).
PROBES = (
    "jobs", "jobs/", "j", "jo", "b", "ba", "batches", "batches/", "../", "..", "./jobs",
    "/jobs", "jobs/..", "datasets/../jobs", "JOBS", "%6aobs", "jobs\x00", ".", "./", "*",
    "{job}", "jobs/{job}", "jobs/{job}/", "jobs/{job}/outputs/", "{batch}",
    "batches/{batch}/", "batches/{batch}/inputs/", "batches/{batch}/outputs",
)  # fmt: skip


def wait_until(check: Callable[[], object], timeout_s: float, what: str, every_s: float = 0.02):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(RedisError, OSError, ValueError):
            if value := check():
                return value
        time.sleep(every_s)
    raise TimeoutError(f"timed out after {timeout_s}s waiting for {what}")


def process_tree() -> dict[int, list[int]]:
    """Parent pid -> child pids, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            if fields[0] != "Z":
                children.setdefault(int(fields[1]), []).append(int(entry.name))
    return children


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def texture(seed: int) -> bytes:
    image = np.random.default_rng(seed).integers(0, 256, (48, 48, 3), dtype=np.uint8)
    image = cv2.GaussianBlur(image, (3, 3), 0)
    return cv2.imencode(".png", image)[1].tobytes()


class RedisServer:
    """redis-server with its append-only file in `folder`, on one port across restarts."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None

    def start(self) -> RedisServer:
        command = [find_redis_server(), "--port", str(self.port), "--bind", "127.0.0.1",
                   "--dir", str(self.folder), "--appendonly", "yes",
                   "--appendfsync", "everysec", "--save", ""]  # fmt: skip
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
        client = Redis.from_url(self.url)
        wait_until(client.ping, 30, "redis-server")
        client.close()
        return self

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


class Rig:
    """Redis, a supervisor, the API and a store of one scenario, all stopped on exit."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.folder = Path(tempfile.mkdtemp(prefix="gpnn-faults-"))
        self.redis = RedisServer(self.folder).start()
        self.health_file = self.folder / "health.json"
        self.settings = Settings(
            redis_url=self.redis.url,
            store_url=f"file://{self.folder / 'store'}",
            workers=args.workers,
            api_keys=list(KEYS),
            heartbeat_interval_s=args.heartbeat_s,
            heartbeat_grace_s=args.heartbeat_s,
            maintenance_interval_s=args.heartbeat_s,
            drain_grace_s=args.drain_grace_s,
            worker_health_file=str(self.health_file),
        )
        self.env = {**os.environ, **self.settings.as_env()}
        self.supervisor: subprocess.Popen | None = None
        self.supervisors = 0
        from fastapi.testclient import TestClient

        from gpnn.service import create_app

        self.client = TestClient(create_app(self.settings))
        self.client.__enter__()
        self.connection = Redis.from_url(self.redis.url, socket_timeout=5)
        self.ledger = Ledger(self.connection, self.settings)
        self.store = open_store(self.settings.store_url)
        self.accepted: list[str] = []
        self.refused = 0
        self.seed = 0

    # --- processes --------------------------------------------------------------------

    def start_supervisor(self) -> None:
        self.supervisors += 1
        self.health_file.unlink(missing_ok=True)  # the last supervisor's
        log = open(self.folder / f"supervisor-{self.supervisors}.log", "wb")  # noqa: SIM115
        command = [str(GPNN), "worker", "-n", str(self.args.workers)]
        self.supervisor = subprocess.Popen(
            command, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        expected = self.args.workers + 1
        wait_until(lambda: self.supervisor_started() and self.health()["healthy"]
                   and self.health()["workers"] == expected, 120, "a healthy pool")  # fmt: skip

    def supervisor_started(self) -> bool:
        children = process_tree().get(self.supervisor.pid, [])
        return len(children) == self.args.workers + 1

    def health(self) -> dict:
        return json.loads(self.health_file.read_text())

    def horses(self) -> list[int]:
        """Work-horses now: children of the supervisor's workers."""
        tree = process_tree()
        return [h for w in tree.get(self.supervisor.pid, []) for h in tree.get(w, [])]

    def close(self) -> None:
        if self.supervisor is not None and self.supervisor.poll() is None:
            self.supervisor.send_signal(signal.SIGTERM)
            try:
                self.supervisor.wait(timeout=self.args.drain_grace_s + 30)
            except subprocess.TimeoutExpired:
                os.killpg(self.supervisor.pid, signal.SIGKILL)
                self.supervisor.wait()
        with contextlib.suppress(Exception):
            self.client.__exit__(None, None, None)
        self.connection.close()
        self.redis.kill()

    # --- jobs -------------------------------------------------------------------------

    def submit(self, key: str = KEYS[0]) -> str | None:
        self.seed += 1
        files = {"source": ("t.png", texture(self.seed), "image/png")}
        data = {"task": "generate", "params": json.dumps({"seed": self.seed}), "samples": "1"}
        answer = self.client.post("/v1/jobs", data=data, files=files, headers={"X-API-Key": key})
        if answer.status_code == 202:
            self.accepted.append(answer.json()["id"])
            return answer.json()["id"]
        self.refused += 1
        return None

    def statuses(self, ids: list[str]) -> list[str | None]:
        with self.connection.pipeline(transaction=False) as pipe:
            for job_id in ids:
                pipe.hget(f"gpnn:job:{job_id}", "status")
            return [s.decode() if s else None for s in pipe.execute()]

    def unfinished(self) -> int:
        return sum(s not in TERMINAL for s in self.statuses(self.accepted))

    def keep_busy(self, at_least: int = 4) -> None:
        """Submit jobs while fewer than `at_least` are unfinished (the fault needs work)."""
        while self.unfinished() < at_least:
            self.submit()

    def wait_all_terminal(self, fault_end: float) -> float | None:
        """Seconds from `fault_end` until every accepted job was terminal (None: not within
        the deadline)."""
        try:
            wait_until(lambda: self.unfinished() == 0, self.args.deadline_s, "all jobs", 0.1)
        except TimeoutError:
            return None
        return max(0.0, time.monotonic() - fault_end)

    def audit(self, recovery_s: float | None, leaks: int = 0) -> dict:
        from rq.exceptions import NoSuchJobError
        from rq.job import Job
        from rq.results import Result

        row = dict.fromkeys(("succeeded", "failed", "lost", "stuck", "duplicated"), 0)
        row.update(retries=0, superseded=0)
        for job_id in self.accepted:
            try:
                record = self.ledger.get_job(job_id)
            except UnknownJob:
                row["lost"] += 1
                continue
            status = record.status
            row["retries"] += max(0, record.attempts - 1)
            try:
                results = Result.all(Job.fetch(job_id, connection=self.connection))
            except NoSuchJobError:
                results = []
            returned = [(r.return_value or {}).get("status") for r in results if r.return_value]
            row["superseded"] += returned.count("superseded")
            stored = self.store.list(record.output_prefix + "/")
            samples = record.samples
            if returned.count("succeeded") > 1 or len(stored) > samples:
                row["duplicated"] += 1
            if status not in TERMINAL:
                row["lost"] += 1
                row["stuck"] += status in ("queued", "running")
            elif status == "succeeded":
                outputs = record.outputs
                if len(outputs) == samples and all(self.store.exists(k) for k in outputs):
                    row["succeeded"] += 1
                else:
                    row["lost"] += 1
            elif status == "failed" and record.error:
                row["failed"] += 1
            else:
                row["lost"] += 1
        row.update(accepted=len(self.accepted), refused=self.refused, leaks=leaks)
        row["recovery_s"] = recovery_s
        return row


# --- scenarios ----------------------------------------------------------------------------


def horse_kill(rig: Rig, args: argparse.Namespace) -> dict:
    rig.start_supervisor()
    for _ in range(args.jobs):
        rig.submit()
    killed: set[int] = set()
    rng = random.Random(0)
    while len(killed) < args.kills:
        rig.keep_busy()
        fresh = wait_until(lambda: [h for h in rig.horses() if h not in killed], 60, "a horse")
        victim = rng.choice(fresh)
        with contextlib.suppress(ProcessLookupError):
            os.kill(victim, signal.SIGKILL)
        killed.add(victim)
        wait_until(lambda victim=victim: not alive(victim), 10, "the horse to die")
    fault_end = time.monotonic()
    return rig.audit(rig.wait_all_terminal(fault_end))


def supervisor_term(rig: Rig, args: argparse.Namespace) -> dict:
    rig.start_supervisor()
    for _ in range(args.jobs):
        rig.submit()
    orphans = 0
    for _ in range(args.restarts):
        rig.keep_busy()
        wait_until(rig.horses, 60, "a running job")
        old = rig.supervisor
        tree = process_tree()
        family = [p for w in tree.get(old.pid, []) for p in [w, *tree.get(w, [])]]
        old.send_signal(signal.SIGTERM)  # as `docker stop` or Kubernetes does
        old.wait(timeout=args.drain_grace_s + 60)
        orphans += sum(alive(p) for p in family)
        rig.submit()  # accepted while no worker runs
        rig.start_supervisor()
    fault_end = time.monotonic()
    row = rig.audit(rig.wait_all_terminal(fault_end))
    row["note"] = f"{orphans} processes outlived their supervisor"
    return row


def redis_kill(rig: Rig, args: argparse.Namespace) -> dict:
    rig.start_supervisor()
    for _ in range(args.jobs):
        rig.submit()
    wait_until(lambda: rig.statuses(rig.accepted).count("succeeded") >= 2, 60, "first results")
    rig.keep_busy()
    wait_until(rig.horses, 60, "a running job")
    rig.redis.kill()  # SIGKILL: no shutdown, no final AOF rewrite
    wait_until(lambda: rig.health()["redis"] == "unreachable", 30, "the pool to see Redis gone")
    for _ in range(3):
        rig.submit()  # refused: 503
    outage_end = time.monotonic() + args.outage_s
    while time.monotonic() < outage_end:  # the fault's length, not a synchronisation
        time.sleep(0.1)
    rig.redis.start()  # from its append-only file
    fault_end = time.monotonic()
    for _ in range(3):
        rig.submit()
    return rig.audit(rig.wait_all_terminal(fault_end))


def tenant_prefixes(rig: Rig, args: argparse.Namespace) -> dict:
    rig.start_supervisor()
    a_jobs = [rig.submit(KEYS[0]) for _ in range(4)]
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as bundle:
        for n in range(2):
            bundle.writestr(f"private-{n}.png", texture(1000 + n))
    a = {"X-API-Key": KEYS[0]}
    b = {"X-API-Key": KEYS[1]}
    answer = rig.client.post(
        "/v1/batches",
        data={"task": "generate"},
        files={"archive": ("a.zip", archive.getvalue(), "application/zip")},
        headers=a,
    )
    assert answer.status_code == 202, answer.text
    a_batch = answer.json()["id"]
    rig.accepted += [u.rsplit("/", 1)[1] for u in answer.json()["jobs"]]
    wait_until(lambda: rig.unfinished() == 0, 120, "the first tenant's jobs")
    rig.store.put("datasets/shared/0.png", texture(2000))  # shared: any tenant may read it
    a_keys = set(rig.store.list("jobs/")) | set(rig.store.list("batches/"))

    leaks = 0
    b_batches = []
    for shape in (*PROBES, "datasets/", "d"):  # the last two: shared inputs, accepted
        prefix = shape.format(job=a_jobs[0], batch=a_batch)
        answer = rig.client.post(
            "/v1/batches", data={"task": "generate", "prefix": prefix}, headers=b
        )
        if answer.status_code == 202:
            b_batches.append(answer.json()["id"])
            rig.accepted += [u.rsplit("/", 1)[1] for u in answer.json()["jobs"]]
        elif answer.status_code < 500:
            rig.refused += 1
        else:
            leaks += 1  # a 5xx is a failure too
    for path in (f"/v1/jobs/{a_jobs[0]}", f"/v1/jobs/{a_jobs[0]}/outputs/0",
                 f"/v1/batches/{a_batch}", f"/v1/batches/{a_batch}/manifest",
                 f"/v1/batches/{a_batch}/report/index.html"):  # fmt: skip
        leaks += rig.client.get(path, headers=b).status_code != 404
        leaks += rig.client.post(f"{path}/cancel", headers=b).status_code < 400
    fault_end = time.monotonic()
    recovery = rig.wait_all_terminal(fault_end)
    for batch_id in b_batches:
        wait_until(lambda batch_id=batch_id: rig.client.get(
            f"/v1/batches/{batch_id}", headers=b).json()["manifest"], 60, "a manifest")  # fmt: skip
        manifest = rig.client.get(f"/v1/batches/{batch_id}/manifest", headers=b).json()
        for entry in manifest["jobs"]:
            source = entry["inputs"]["source"]
            leaks += source in a_keys or not is_shared_input(source)
    row = rig.audit(recovery, leaks)
    row["note"] = f"{len(PROBES)} prefix shapes; {len(b_batches)} batches from shared prefixes"
    return row


SCENARIOS = {
    "horse-kill": ("work-horse SIGKILL x{kills}", horse_kill),
    "supervisor-term": ("supervisor SIGTERM x{restarts}", supervisor_term),
    "redis-kill": ("Redis kill -9 + restart from AOF ({outage_s:g} s down)", redis_kill),
    "tenant-prefixes": ("tenant B tries tenant A's prefixes", tenant_prefixes),
}
COLUMNS = ("accepted", "succeeded", "failed", "lost", "duplicated", "stuck", "recovery_s",
           "retries", "superseded", "refused", "leaks")  # fmt: skip
HEADERS = ("accepted", "succeeded", "failed (reason)", "lost", "duplicated", "stuck",
           "recovery s", "retries", "superseded", "refused", "leaks")  # fmt: skip


def cell(name: str, value) -> str:
    if name == "recovery_s":
        return f">{ARGS.deadline_s:g}" if value is None else f"{value:.1f}"
    return str(value)


def main() -> int:
    global ARGS
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=40, help="jobs submitted at the start")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--kills", type=int, default=10, help="work-horses SIGKILLed")
    parser.add_argument("--restarts", type=int, default=5, help="supervisor SIGTERMs")
    parser.add_argument("--outage-s", type=float, default=5.0, help="Redis down this long")
    parser.add_argument("--heartbeat-s", type=int, default=2,
                        help="heartbeat interval = grace = maintenance interval")  # fmt: skip
    parser.add_argument("--drain-grace-s", type=float, default=0.2)
    parser.add_argument("--deadline-s", type=float, default=120.0,
                        help="every job terminal within this long after the fault")  # fmt: skip
    parser.add_argument("--only", choices=sorted(SCENARIOS), action="append")
    parser.add_argument("--keep", action="store_true", help="keep the logs of clean runs")
    ARGS = args = parser.parse_args()
    warnings.filterwarnings("ignore", message=".*httpx.*")  # starlette's TestClient

    rows = []
    for name in args.only or SCENARIOS:
        title, run = SCENARIOS[name]
        rig = Rig(args)
        started = time.monotonic()
        try:
            row = run(rig, args)
        finally:
            rig.close()
        row["title"] = title.format(**vars(args))
        row["wall_s"] = time.monotonic() - started
        rows.append(row)
        clean = not (row["lost"] or row["duplicated"] or row["stuck"] or row["leaks"])
        if clean and not args.keep:
            shutil.rmtree(rig.folder, ignore_errors=True)
        print(f"{row['title']}: {json.dumps({c: row[c] for c in COLUMNS})} "
              f"({row['wall_s']:.0f} s; {row.get('note', '')}; logs in {rig.folder})",
              file=sys.stderr, flush=True)  # fmt: skip

    print("| scenario | " + " | ".join(HEADERS) + " |")
    print("|---|" + "---:|" * len(HEADERS))
    for row in rows:
        print(f"| {row['title']} | " + " | ".join(cell(c, row[c]) for c in COLUMNS) + " |")
    notes = [f"{row['title']}: {row['note']}" for row in rows if row.get("note")]
    for note in notes:
        print(f"\n{note}", end="")
    print()
    bad = any(
        row["lost"] or row["duplicated"] or row["stuck"] or row["leaks"]
        or row["recovery_s"] is None or row["recovery_s"] > args.deadline_s
        for row in rows
    )  # fmt: skip
    return 1 if bad else 0


ARGS: argparse.Namespace

if __name__ == "__main__":
    sys.exit(main())
