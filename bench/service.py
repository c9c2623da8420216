"""Service throughput: a bulk run through the queue against the engine alone.

Runs the same generations twice on this machine, in one run:

1. the engine in this process (`gpnn.core.run_task`, one call per image with all
   its samples, the machine's default thread pools);
2. the whole service (`run_embedded`: redis-server, worker processes, the API and a
   local store), one batch of the same images and samples uploaded as a zip.

It prints images per second of both and their ratio (target: at least 0.9), the
submit latency and the time from submit to result of one generation.

    .venv/bin/python bench/service.py --images 8 --samples 2 --workers 2
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import tempfile
import time
import zipfile
from pathlib import Path

import httpx

from gpnn.config import Settings
from gpnn.core import params_for, read_image, run_task
from gpnn.service.embedded import run_embedded

DATASET = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "sigd16"
TERMINAL = ("succeeded", "failed", "canceled")


def wait_for(client: httpx.Client, url: str) -> dict:
    while True:
        record = client.get(url).json()
        if record["status"] in TERMINAL:
            return record
        time.sleep(0.05)  # a client's polling interval


def engine_rate(paths: list[Path], samples: int, mode: str) -> float:
    params = params_for("generate", mode=mode)
    start = time.perf_counter()
    for path in paths:
        run_task(params, {"source": read_image(path)}, samples=samples)
    return len(paths) * samples / (time.perf_counter() - start)


def service_numbers(paths: list[Path], samples: int, mode: str, workers: int) -> dict:
    folder = tempfile.mkdtemp(prefix="gpnn-bench-")
    settings = Settings(redis_url=None, store_url=f"file://{folder}/store", workers=workers)
    params = json.dumps({"mode": mode})
    source = paths[0].read_bytes()
    with run_embedded(settings) as base, httpx.Client(base_url=base, timeout=60) as client:
        latencies = []
        for _ in range(20):
            start = time.perf_counter()
            answer = client.post(
                "/v1/jobs",
                data={"task": "generate", "params": params},
                files={"source": (paths[0].name, source)},
            )
            latencies.append(time.perf_counter() - start)
            client.post(answer.headers["location"] + "/cancel")

        start = time.perf_counter()
        answer = client.post(
            "/v1/jobs",
            data={"task": "generate", "params": params},
            files={"source": (paths[0].name, source)},
        )
        job = wait_for(client, answer.headers["location"])
        client.get(job["outputs"][0]).raise_for_status()
        one = time.perf_counter() - start

        archive = io.BytesIO()
        with zipfile.ZipFile(archive, "w") as zipped:
            for path in paths:
                zipped.writestr(path.name, path.read_bytes())
        start = time.perf_counter()
        answer = client.post(
            "/v1/batches",
            data={"task": "generate", "params": params, "samples": str(samples)},
            files={"archive": ("inputs.zip", archive.getvalue())},
        )
        answer.raise_for_status()
        batch = wait_for(client, answer.headers["location"])
        elapsed = time.perf_counter() - start
    return {
        "latency_ms": 1000 * statistics.median(latencies),
        "one_s": one,
        "rate": len(paths) * samples / elapsed,
        "batch_status": batch["status"],
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", type=Path, default=DATASET)
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--samples", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--mode", choices=["fast", "exact"], default="fast")
    args = parser.parse_args(argv)
    paths = sorted(args.dataset.glob("*.jpg"), key=lambda p: int(p.stem))[: args.images]

    engine = engine_rate(paths, args.samples, args.mode)
    service = service_numbers(paths, args.samples, args.mode, args.workers)
    images = len(paths) * args.samples
    print(f"{images} generations ({len(paths)} images x {args.samples} samples), mode {args.mode}")
    print(f"{'measure':<34} {'value':>10}")
    print(f"{'engine alone, images/s':<34} {engine:>10.3f}")
    print(f"{'service, ' + str(args.workers) + ' workers, images/s':<34} {service['rate']:>10.3f}")
    print(f"{'service / engine':<34} {service['rate'] / engine:>10.2f}")
    print(f"{'submit latency, median ms':<34} {service['latency_ms']:>10.1f}")
    print(f"{'one generation, submit->result s':<34} {service['one_s']:>10.2f}")
    print(f"batch status: {service['batch_status']}")


if __name__ == "__main__":
    main()
