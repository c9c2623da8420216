"""GPU benchmark (issue #6, target 4): latency, throughput and quality on the GPU.

On a machine where ``device="cuda"`` resolves to a GPU backend (faiss-gpu, else
PyTorch), for SIGD16 images at the paper's settings:

- latency: one 250x188-class generation, median of ``--repeats`` after a warm-up
  (the levels are rebuilt every time, as for a new job);
- throughput: ``--samples`` samples of each image in one call (levels built once
  per image), images per second over all images;
- quality: coherence, completeness and patch SWD of the GPU samples next to the
  CPU exact engine's (sample 0 of the same seed), and the fraction of identical
  pixels.

``--mode fast`` (the default, as for the service) searches every key on a level's
first iteration and only the propagation candidates after it; ``--mode exact``
searches every key on every iteration.

``--tf32`` lets PyTorch use TF32 for its float32 matrix products (the default is
full float32); the table says which precision ran.

``--torch-device cpu`` runs the PyTorch backend on the CPU instead (the GPU code
path with the device switched): a dry run of this script where no GPU is lent.

    .venv/bin/python bench/gpu.py --images 16 --samples 20
    .venv/bin/python bench/gpu.py --images 16 --samples 20 --mode exact
    .venv/bin/python bench/gpu.py --images 2 --samples 2 --repeats 1 --torch-device cpu
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
from engine import DATASET

from gpnn.core import device as device_module
from gpnn.core import metrics
from gpnn.core.imageio import read_image
from gpnn.core.tasks import generate


def synchronize() -> None:
    """Wait for queued GPU work (PyTorch's), so wall times cover it."""
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def timed_generate(
    source: np.ndarray, mode: str, samples: int, seed: int
) -> tuple[list[np.ndarray], float]:
    synchronize()
    start = time.perf_counter()
    outputs = generate(source, device="cuda", mode=mode, samples=samples, seed=seed)
    synchronize()
    return outputs, time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=16, help="first N images of the set")
    parser.add_argument("--samples", type=int, default=20, help="samples per image (throughput)")
    parser.add_argument("--repeats", type=int, default=5, help="single generations (latency)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--mode", choices=["exact", "fast"], default="fast")
    parser.add_argument("--tf32", action="store_true", help="TF32 matrix products (PyTorch)")
    parser.add_argument("--torch-device", default=None, help="run the PyTorch backend here")
    parser.add_argument("--dataset", type=Path, default=DATASET)
    args = parser.parse_args(argv)

    if args.torch_device is not None:
        device_module.TORCH_DEVICE = args.torch_device
        device_module.faiss_gpus = lambda: 0
        device_module.torch_gpus = lambda: 1
    backend = device_module.resolve_device("cuda", args.mode)
    precision = "float32"
    if backend == device_module.Backend.torch_cuda:
        import torch

        torch.backends.cuda.matmul.allow_tf32 = args.tf32
        precision = "tf32" if args.tf32 else "float32"
        where = args.torch_device or torch.cuda.get_device_name()
    else:
        where = f"{device_module.faiss_gpus()} GPU(s) seen by FAISS"
    print(f"backend {backend} on {where}, mode {args.mode}, matrix products in {precision}")

    names = sorted(args.dataset.glob("*.jpg"), key=lambda p: int(p.stem))[: args.images]
    print(
        f"{'image':>6} {'size':>8} {'latency s':>10} {'img/s':>7} {'same px':>8} "
        f"{'coher gpu/cpu':>19} {'compl gpu/cpu':>19} {'swd gpu/cpu':>17}"
    )
    latencies, total_images, total_seconds, ratios = [], 0, 0.0, []
    for path in names:
        source = read_image(path)
        timed_generate(source, args.mode, 1, args.seed)  # warm-up: kernels, memory pools
        single = [timed_generate(source, args.mode, 1, args.seed)[1] for _ in range(args.repeats)]
        outputs, seconds = timed_generate(source, args.mode, args.samples, args.seed)
        latencies.append(statistics.median(single))
        total_images += args.samples
        total_seconds += seconds
        reference = generate(source, device="cpu", mode="exact", seed=args.seed)[0]
        gpu = metrics.sample_metrics(outputs[0], source)
        cpu = metrics.sample_metrics(reference, source)
        same = float(np.mean(np.abs(outputs[0] - reference) < 1e-3))
        ratios.append((gpu.coherence / cpu.coherence, gpu.completeness / cpu.completeness))
        print(
            f"{path.stem:>6} {source.shape[1]:>4}x{source.shape[0]:<3} {latencies[-1]:10.3f} "
            f"{args.samples / seconds:7.1f} {same:8.3f} "
            f"{gpu.coherence:9.2e}/{cpu.coherence:9.2e} "
            f"{gpu.completeness:9.2e}/{cpu.completeness:9.2e} {gpu.swd:8.5f}/{cpu.swd:8.5f}",
            flush=True,
        )
    print(
        f"\nmedian latency {statistics.median(latencies):.3f} s (target 0.050), throughput "
        f"{total_images / total_seconds:.1f} images/s (target 30), gpu / cpu coherence "
        f"{statistics.mean(r[0] for r in ratios):.3f}, completeness "
        f"{statistics.mean(r[1] for r in ratios):.3f} (mean of per-image ratios)"
    )


if __name__ == "__main__":
    main()
