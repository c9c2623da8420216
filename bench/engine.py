"""Engine benchmark (issues #3 and #6): random generation on SIGD16.

Prints one row per image and mode: wall time, peak resident memory during the
generation (above the process's resting size), the arithmetic of the exact
search (2 n m d per query-key pair set, twice for finite alpha) and, in exact
mode, the achieved rate as a fraction of the machine's own float32
matrix-product rate measured in the same run (best of a few 4096^3 sgemm).
Every row also prints the patch metrics (coherence, completeness, patch SWD;
`gpnn.core.metrics`) beside each sample's change from its input, its copied
share and the number of samples that are copies (`gpnn.core.metrics.is_copy`):
a copy scores perfect patch metrics and converges at once, so no speed or
quality row may be read without them. With ``--mode both`` it also prints
fast / exact ratios.

Examples
--------
    .venv/bin/python bench/engine.py --mode exact --images 2
    .venv/bin/python bench/engine.py --mode both --images 16 --out /tmp/engine
    .venv/bin/python bench/engine.py --mode fast --images 16 --samples 2

Outputs are cached by (image, mode, seed) under ``--out`` when given, so a
second run can compare against exact outputs without recomputing them
(``--reuse``).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import threading
import time
from pathlib import Path

import numpy as np
import psutil

from gpnn.core import metrics, pnn
from gpnn.core.imageio import read_image
from gpnn.core.tasks import generate

DATASET = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "sigd16"
SGEMM_SIZE = 4096


def sgemm_rate(repeats: int = 3) -> float:
    """Best float32 matrix-product rate of this machine, in flop/s."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((SGEMM_SIZE, SGEMM_SIZE), dtype=np.float32)
    b = rng.standard_normal((SGEMM_SIZE, SGEMM_SIZE), dtype=np.float32)
    out = np.empty_like(a)
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        np.matmul(a, b, out=out)
        best = min(best, time.perf_counter() - start)
    return 2.0 * SGEMM_SIZE**3 / best


class PeakMemory:
    """Peak resident set size of this process while the context is open (sampled)."""

    def __init__(self, interval: float = 0.005) -> None:
        self.interval = interval
        self.process = psutil.Process()
        self.peak = 0
        self.base = 0
        self._stop = threading.Event()

    def __enter__(self) -> PeakMemory:
        self.base = self.process.memory_info().rss
        self.peak = self.base
        self._stop.clear()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(self.interval)


class FlopCounter:
    """Counts the arithmetic an exact search of every `SourceLevel.nearest` call costs."""

    def __init__(self) -> None:
        self.flops = 0.0
        self._original = pnn.SourceLevel.nearest

    def __enter__(self) -> FlopCounter:
        original = self._original
        counter = self

        def counted(level, queries, alpha, *args, **kwargs):
            n, d = queries.shape
            passes = 1 if math.isinf(alpha) else 2
            counter.flops += 2.0 * passes * n * len(level.values) * d
            return original(level, queries, alpha, *args, **kwargs)

        pnn.SourceLevel.nearest = counted
        return self

    def __exit__(self, *exc: object) -> None:
        pnn.SourceLevel.nearest = self._original


def run_one(source: np.ndarray, mode: str, samples: int, seed: int) -> dict:
    with PeakMemory() as memory, FlopCounter() as counter:
        start = time.perf_counter()
        outputs = generate(source, mode=mode, samples=samples, seed=seed)
        seconds = time.perf_counter() - start
    return {
        "outputs": outputs,
        "seconds": seconds,
        "peak_mb": (memory.peak - memory.base) / 2**20,
        "rss_mb": memory.peak / 2**20,
        "flops": counter.flops,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", choices=["exact", "fast", "both"], default="exact")
    parser.add_argument("--images", type=int, default=16, help="first N images of the set")
    parser.add_argument("--only", type=str, default=None, help="comma-separated image names")
    parser.add_argument("--samples", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dataset", type=Path, default=DATASET)
    parser.add_argument("--out", type=Path, default=None, help="save outputs and results here")
    parser.add_argument("--reuse", action="store_true", help="reuse cached outputs in --out")
    args = parser.parse_args(argv)

    names = sorted(args.dataset.glob("*.jpg"), key=lambda p: int(p.stem))[: args.images]
    if args.only:
        names = [args.dataset / f"{n}.jpg" for n in args.only.split(",")]
    modes = ["exact", "fast"] if args.mode == "both" else [args.mode]
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)

    rate = sgemm_rate()
    print(f"machine sgemm rate: {rate / 1e9:.1f} GFLOP/s ({SGEMM_SIZE}^3 float32, best of 3)")
    header = (
        f"{'image':>6} {'size':>8} {'mode':>5} {'time s':>8} {'peak MB':>8} "
        f"{'GFLOP':>8} {'GFLOP/s':>8} {'/sgemm':>7} {'coher':>9} {'compl':>9} {'swd':>8} "
        f"{'change':>6} {'copied':>6} {'copies':>6}"
    )
    print(header)
    rows = []
    for path in names:
        source = read_image(path)
        for mode in modes:
            cache = args.out / f"{path.stem}_{mode}_{args.seed}.npz" if args.out else None
            if args.reuse and cache is not None and cache.exists():
                stored = np.load(cache)
                result = json.loads(str(stored["meta"]))
                result["outputs"] = [stored[f"s{i}"] for i in range(args.samples)]
            else:
                result = run_one(source, mode, args.samples, args.seed)
                if cache is not None:
                    meta = {k: v for k, v in result.items() if k != "outputs"}
                    arrays = {f"s{i}": o for i, o in enumerate(result["outputs"])}
                    np.savez(cache, meta=json.dumps(meta), **arrays)
            quality = [metrics.sample_metrics(o, source) for o in result["outputs"]]
            row = {
                "image": path.stem,
                "mode": mode,
                "seconds": result["seconds"],
                "peak_mb": result["peak_mb"],
                "flops": result["flops"],
                "coherence": statistics.mean(q.coherence for q in quality),
                "completeness": statistics.mean(q.completeness for q in quality),
                "swd": statistics.mean(q.swd for q in quality),
                "change": statistics.mean(q.change for q in quality),
                "copied": statistics.mean(q.copied for q in quality),
                "copies": sum(q.copy for q in quality),
            }
            achieved = row["flops"] / row["seconds"]
            fraction = f"{achieved / rate:7.2f}" if mode == "exact" else f"{'-':>7}"
            print(
                f"{path.stem:>6} {source.shape[1]:>4}x{source.shape[0]:<3} {mode:>5} "
                f"{row['seconds']:8.2f} {row['peak_mb']:8.0f} {row['flops'] / 1e9:8.0f} "
                f"{achieved / 1e9:8.1f} {fraction} {row['coherence']:9.6f} "
                f"{row['completeness']:9.6f} {row['swd']:8.5f} {row['change']:6.3f} "
                f"{row['copied']:6.3f} {row['copies']:6d}",
                flush=True,
            )
            rows.append(row)

    print()
    for mode in modes:
        mine = [r for r in rows if r["mode"] == mode]
        seconds = sum(r["seconds"] for r in mine)
        flops = sum(r["flops"] for r in mine)
        print(
            f"{mode:>5}: mean time {seconds / len(mine):.2f} s, max peak "
            f"{max(r['peak_mb'] for r in mine):.0f} MB, mean coherence "
            f"{statistics.mean(r['coherence'] for r in mine):.6f}, completeness "
            f"{statistics.mean(r['completeness'] for r in mine):.6f}, swd "
            f"{statistics.mean(r['swd'] for r in mine):.5f}, mean change "
            f"{statistics.mean(r['change'] for r in mine):.3f}, copied "
            f"{statistics.mean(r['copied'] for r in mine):.3f}, copies "
            f"{sum(r['copies'] for r in mine)} of {len(mine) * args.samples}"
            + (f", achieved / sgemm {flops / seconds / rate:.2f}" if mode == "exact" else "")
        )
    if len(modes) == 2:
        print("fast / exact (mean over images of the per-image ratio):")
        for key in ("seconds", "coherence", "completeness", "swd", "change"):
            ratios = [
                f[key] / e[key] for e, f in zip(rows[0::2], rows[1::2], strict=True) if e[key] > 0
            ]
            print(f"  {key:>12}: {statistics.mean(ratios):.3f}")
    if args.out:
        (args.out / "results.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
