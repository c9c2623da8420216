"""Which search backend runs where.

``device`` is what a user asks for; the backend is what runs:

- "cpu" (the default): `gpnn.core.search.ExactKeys` (``mode="exact"``) or
  `gpnn.core.fast_search.FastKeys` (``mode="fast"``).
- "cuda": FAISS's GPU build when it sees a GPU (`gpnn.core.gpu_search`), else
  PyTorch when ``torch.cuda.is_available()`` (`gpnn.core.torch_backend`), else a
  `ValueError`. Both do the exact alpha-normalised search on the device.
- "auto": "cuda" when either GPU backend is usable, else "cpu".

PyTorch is imported only when a GPU is asked for and FAISS has none, so a
CPU-only install never needs it. ``faiss.get_num_gpus()`` is checked before
any GPU function is called: calling one without a GPU aborts the process.
"""

from __future__ import annotations

import importlib.util
import logging
from enum import StrEnum
from typing import Any, Protocol

import faiss
import numpy as np

from gpnn.core.patches import HostArrays, ValuePatches

logger = logging.getLogger(__name__)

DEVICES = ("cpu", "cuda", "auto")
# The PyTorch device of the torch backend (the tests run it on "cpu").
TORCH_DEVICE = "cuda"


class Backend(StrEnum):
    cpu = "cpu"
    faiss_gpu = "faiss-gpu"
    torch_cuda = "torch-cuda"


class KeyIndex(Protocol):
    """What a `SourceLevel` needs of a backend's search: queries and matches are
    in the backend's arrays (NumPy, or tensors on the device for PyTorch)."""

    def nearest(self, queries: Any, alpha: float, hint: Any = None) -> Any: ...


class StageArrays(Protocol):
    """Where a PNN stage's running image, its patches and the fold live."""

    def upload(self, image: np.ndarray) -> Any: ...

    def download(self, image: Any) -> np.ndarray: ...

    def extract(self, image: Any) -> Any: ...

    def fold(self, chosen: Any, shape: tuple[int, int]) -> Any: ...

    def neighbour_candidates(self, chosen: Any, grid: tuple[int, int]) -> Any: ...

    def keep(self, image: Any, free: Any, known: Any) -> Any: ...


def faiss_gpus() -> int:
    """Number of GPUs FAISS can use (0 for the CPU-only build)."""
    get = getattr(faiss, "get_num_gpus", None)
    return int(get()) if get is not None else 0


def torch_cuda_available() -> bool:
    """True when PyTorch is installed and sees a CUDA device (imports torch only then)."""
    if importlib.util.find_spec("torch") is None:
        return False
    import torch

    return bool(torch.cuda.is_available())


def resolve_device(device: str) -> Backend:
    """The backend for `device` ("cpu", "cuda" or "auto"); see the module notes."""
    device = str(device)
    if device not in DEVICES:
        raise ValueError(f"`device` must be one of {', '.join(DEVICES)}; got {device!r}")
    if device == "cpu":
        return Backend.cpu
    if faiss_gpus() > 0:
        return Backend.faiss_gpu
    if torch_cuda_available():
        return Backend.torch_cuda
    if device == "auto":
        return Backend.cpu
    raise ValueError(
        "device `cuda` requested but no GPU is available: FAISS sees no GPU "
        "(install faiss-gpu on a CUDA machine) and PyTorch is missing or has no CUDA "
        "device; use device 'cpu' or 'auto'"
    )


def build_index(keys: np.ndarray, *, mode: str, backend: Backend) -> KeyIndex:
    """The searchable keys of one level for `backend` (GPU backends are always exact)."""
    if backend == Backend.faiss_gpu:
        from gpnn.core.gpu_search import FaissGpuKeys

        return FaissGpuKeys(keys)
    if backend == Backend.torch_cuda:
        from gpnn.core.torch_backend import TorchKeys

        return TorchKeys(keys, device=TORCH_DEVICE)
    if mode == "fast":
        from gpnn.core.fast_search import FastKeys

        return FastKeys(keys)
    from gpnn.core.search import ExactKeys

    return ExactKeys(keys)


def build_arrays(values: ValuePatches, *, backend: Backend) -> StageArrays:
    """Where a stage's image, patches and fold live for `backend` (`HostArrays`
    or `gpnn.core.torch_backend.TorchArrays`)."""
    if backend == Backend.torch_cuda:
        from gpnn.core.torch_backend import TorchArrays

        return TorchArrays(values, device=TORCH_DEVICE)
    return HostArrays(values)
