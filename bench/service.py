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
import statistics
import tempfile
import time
import zipfile
from pathlib import Path

from gpnn.client import Client
from gpnn.config import Settings
from gpnn.core import params_for, read_image, run_task
from gpnn.service.embedded import run_embedded

DATASET = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "sigd16"


def engine_rate(paths: list[Path], samples: int, mode: str) -> float:
    params = params_for("generate", mode=mode)
    start = time.perf_counter()
    for path in paths:
        run_task(params, {"source": read_image(path)}, samples=samples)
    return len(paths) * samples / (time.perf_counter() - start)


def service_numbers(paths: list[Path], samples: int, mode: str, workers: int) -> dict:
    folder = tempfile.mkdtemp(prefix="gpnn-bench-")
    settings = Settings(
        redis_url=None,
        store_url=f"file://{folder}/store",
        workers=workers,
        embedded_redis_dir=None,
    )
    params = {"mode": mode}
    source = {"source": paths[0]}
    with run_embedded(settings) as base, Client(base) as api:
        latencies = []
        for _ in range(20):
            start = time.perf_counter()
            job = api.submit("generate", source, params=params)
            latencies.append(time.perf_counter() - start)
            api.cancel(job["id"])

        start = time.perf_counter()
        job = api.wait(api.submit("generate", source, params=params), poll_s=0.05)
        api.outputs(job)
        one = time.perf_counter() - start

        archive = io.BytesIO()
        with zipfile.ZipFile(archive, "w") as zipped:
            for path in paths:
                zipped.writestr(path.name, path.read_bytes())
        start = time.perf_counter()
        batch = api.submit_batch("generate", archive.getvalue(), params=params, samples=samples)
        batch = api.wait_batch(batch, poll_s=0.05)
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
