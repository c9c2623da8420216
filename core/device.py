"""Where the engine runs: the `Device` a user asks for and the backends that run it.

A device is "cpu", "cuda" (GPU 0), "cuda:N" (GPU N) or "auto" (`Device.parse`).
Each backend declares in `BACKENDS` what it supports, and `select` picks one
from that table alone:

| backend | devices | modes | arrays | ``mode="fast"`` |
|---|---|---|---|---|
| ``cpu`` | cpu, auto | exact, fast | host | inverted-file candidates, then propagation |
| ``faiss-gpu`` | cuda[:N], auto | exact, fast | host | exact search, early stop |
| ``torch-cuda`` | cuda[:N], auto | exact, fast | device | one exact search, then propagation |

(each entry's `BackendSpec.fast` says it in full).

- "cpu": the CPU backend.
- "cuda" / "cuda:N": the first GPU backend, in `GPU_BACKENDS` order (faiss-gpu,
  then PyTorch), that sees GPU N and supports the mode; else a `ValueError`
  naming what each backend lacks. Never a silent switch to the CPU or to
  another mode, but for the few-hundred-patch levels of a generation's start and
  layout (`pnn.SourceLevel` with `min_shift`), which are exact on the host on
  every device.
- "auto": as "cuda" (GPU 0) when a GPU backend can run the mode, else "cpu".

``mode="exact"`` is the same search everywhere (every query against every key,
exact alpha normalisation); "fast" is each backend's own choice, stated in
its `BackendSpec.fast` and docs/performance.md. A mode or device the table does not allow is a
`ValueError` raised before any index is built.

PyTorch is imported only when a GPU is asked for, so a CPU-only install never
needs it. ``faiss.get_num_gpus()`` is checked before any GPU function is
called: calling one without a GPU aborts the process.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

import faiss
import numpy as np

from gpnn.core.params import SearchMode
from gpnn.core.patches import HostArrays, ValuePatches

logger = logging.getLogger(__name__)

DEVICE_KINDS = ("cpu", "cuda", "auto")
DEVICE_FORMS = "cpu, cuda, cuda:N (GPU number N) or auto"
# The PyTorch device type of the torch backend (the tests run it on "cpu").
TORCH_DEVICE = "cuda"


@dataclass(frozen=True)
class Device:
    """What a user asks the engine to run on.

    Parameters
    ----------
    kind : "cpu", "cuda" or "auto"
    gpu : the GPU number of a "cuda" device (None: GPU 0); None for the others

    Examples
    --------
    >>> Device.parse("cuda:1")
    Device(kind='cuda', gpu=1)
    >>> str(Device.parse("cuda"))
    'cuda'
    """

    kind: str = "cpu"
    gpu: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in DEVICE_KINDS:
            raise ValueError(f"`device` must be {DEVICE_FORMS}; got {self.kind!r}")
        if self.gpu is not None and (self.kind != "cuda" or self.gpu < 0):
            raise ValueError(f"`device` must be {DEVICE_FORMS}; got {str(self)!r}")

    @classmethod
    def parse(cls, value: str | Device) -> Device:
        """The device written as `value` ("cpu", "cuda", "cuda:1", "auto")."""
        if isinstance(value, Device):
            return value
        text = str(value)
        kind, colon, number = text.partition(":")
        if kind not in DEVICE_KINDS or (colon and (kind != "cuda" or not number.isdigit())):
            raise ValueError(f"`device` must be {DEVICE_FORMS}; got {text!r}")
        return cls(kind, int(number) if colon else None)

    @property
    def index(self) -> int:
        """The GPU number (0 unless given)."""
        return self.gpu or 0

    def __str__(self) -> str:
        return self.kind if self.gpu is None else f"{self.kind}:{self.gpu}"


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

    def extract(self, image: Any, guide: Any = None) -> Any: ...

    def fold(self, chosen: Any, shape: tuple[int, int]) -> Any: ...

    def neighbour_candidates(self, chosen: Any, grid: tuple[int, int]) -> Any: ...

    def keep(self, image: Any, free: Any, known: Any) -> Any: ...


def faiss_gpus() -> int:
    """Number of GPUs FAISS can use (0 for the CPU-only build)."""
    get = getattr(faiss, "get_num_gpus", None)
    return int(get()) if get is not None else 0


def torch_gpus() -> int:
    """Number of CUDA devices PyTorch sees (0 without PyTorch; imports torch only then)."""
    if importlib.util.find_spec("torch") is None:
        return 0
    import torch

    return int(torch.cuda.device_count()) if torch.cuda.is_available() else 0


def torch_device(gpu: int) -> str:
    """The PyTorch device of GPU `gpu` ("cuda:N"; "cpu" where the tests route it)."""
    return TORCH_DEVICE if TORCH_DEVICE == "cpu" else f"{TORCH_DEVICE}:{gpu}"


def _cpu_index(keys: np.ndarray, mode: SearchMode, gpu: int) -> KeyIndex:
    if mode == SearchMode.fast:
        from gpnn.core.fast_search import FastKeys

        return FastKeys(keys)
    from gpnn.core.search import ExactKeys

    return ExactKeys(keys)


def _faiss_gpu_index(keys: np.ndarray, mode: SearchMode, gpu: int) -> KeyIndex:
    from gpnn.core.gpu_search import FaissGpuKeys

    return FaissGpuKeys(keys, gpu=gpu)


def _torch_index(keys: np.ndarray, mode: SearchMode, gpu: int) -> KeyIndex:
    from gpnn.core.torch_backend import TorchKeys

    return TorchKeys(keys, device=torch_device(gpu))


def _host_arrays(values: ValuePatches, gpu: int) -> StageArrays:
    return HostArrays(values)


def _torch_arrays(values: ValuePatches, gpu: int) -> StageArrays:
    from gpnn.core.torch_backend import TorchArrays

    return TorchArrays(values, device=torch_device(gpu))


@dataclass(frozen=True)
class BackendSpec:
    """What one backend supports and how it builds a level.

    `gpus` counts the GPUs it can use (None: it runs on the host). `propagation`:
    in fast mode its search takes each iteration's matches and the neighbours'
    as candidates; `stage_candidates`: a stage's first search takes the previous
    stage's matches. `arrays` is "host" (NumPy) or "device" (a stage's image,
    patches and fold stay on the GPU).
    """

    name: Backend
    modes: frozenset[SearchMode]
    arrays: str
    fast: str
    propagation: bool
    stage_candidates: bool
    gpus: Callable[[], int] | None
    index: Callable[[np.ndarray, SearchMode, int], KeyIndex]
    stage_arrays: Callable[[ValuePatches, int], StageArrays]


BOTH_MODES = frozenset(SearchMode)
BACKENDS: dict[Backend, BackendSpec] = {
    Backend.cpu: BackendSpec(
        Backend.cpu,
        BOTH_MODES,
        arrays="host",
        fast="PCA + inverted-file candidates (FAISS IndexIVFFlat) on a level's first "
        "iteration, the previous stage's and iteration's matches and the neighbours' "
        "after, every candidate re-scored exactly; a level stops once its matches settle",
        propagation=True,
        stage_candidates=True,
        gpus=None,
        index=_cpu_index,
        stage_arrays=_host_arrays,
    ),
    Backend.faiss_gpu: BackendSpec(
        Backend.faiss_gpu,
        BOTH_MODES,
        arrays="host",
        fast="the exact search on every iteration (a brute-force GPU search costs less "
        "than candidates scored on the host); a level stops once its matches settle",
        propagation=False,
        stage_candidates=False,
        gpus=lambda: faiss_gpus(),
        index=_faiss_gpu_index,
        stage_arrays=_host_arrays,
    ),
    Backend.torch_cuda: BackendSpec(
        Backend.torch_cuda,
        BOTH_MODES,
        arrays="device",
        fast="the exact search on a level's first iteration, then each query's "
        "propagation candidates scored exactly on the GPU; a level stops once its "
        "matches settle",
        propagation=True,
        stage_candidates=False,
        gpus=lambda: torch_gpus(),
        index=_torch_index,
        stage_arrays=_torch_arrays,
    ),
}
# Tried in this order for "cuda" and "auto".
GPU_BACKENDS = (Backend.faiss_gpu, Backend.torch_cuda)
WHY_NOT = {
    Backend.faiss_gpu: "FAISS sees {count} GPU(s) (install faiss-gpu on a CUDA machine)",
    Backend.torch_cuda: "PyTorch sees {count} CUDA device(s) (or is not installed)",
}


@dataclass(frozen=True)
class Placement:
    """The backend chosen for a device and mode, and its GPU number (None on the host)."""

    backend: Backend
    gpu: int | None = None

    @property
    def spec(self) -> BackendSpec:
        return BACKENDS[self.backend]


def search_mode(mode: str | SearchMode) -> SearchMode:
    """`mode` as a `SearchMode`; a `ValueError` naming `mode` otherwise."""
    try:
        return SearchMode(str(mode))
    except ValueError:
        raise ValueError(f"`mode` must be 'exact' or 'fast', got {mode!r}") from None


def select(device: str | Device, mode: str | SearchMode = SearchMode.exact) -> Placement:
    """The backend that runs `mode` on `device` (see the module notes).

    Raises `ValueError` for a malformed device or mode, a GPU no backend sees,
    and a mode the device's backends do not support. Looks at the GPUs only for
    "cuda" and "auto" (PyTorch is never imported for "cpu").
    """
    device, mode = Device.parse(device), search_mode(mode)
    if device.kind == "cpu":
        return _on_host(device, mode)
    reasons = []
    for name in GPU_BACKENDS:
        spec = BACKENDS[name]
        count = spec.gpus() if spec.gpus is not None else 0
        if count <= device.index:
            reasons.append(f"{name}: " + WHY_NOT[name].format(count=count))
        elif mode not in spec.modes:
            reasons.append(f"{name}: no mode `{mode}` (it runs {_modes(spec)})")
        else:
            return Placement(name, device.index)
    if device.kind == "auto":
        return _on_host(device, mode)
    what = "no GPU is available" if device.gpu is None else f"no backend sees GPU {device.gpu}"
    raise ValueError(
        f"device `{device}` with mode `{mode}` requested but {what}: {'; '.join(reasons)}; "
        "use device 'cpu' or 'auto'"
    )


def _on_host(device: Device, mode: SearchMode) -> Placement:
    spec = BACKENDS[Backend.cpu]
    if mode not in spec.modes:
        raise ValueError(f"device `{device}` does not run mode `{mode}` (only {_modes(spec)})")
    return Placement(Backend.cpu)


def _modes(spec: BackendSpec) -> str:
    return ", ".join(sorted(spec.modes))


def resolve_device(device: str | Device, mode: str | SearchMode = SearchMode.exact) -> Backend:
    """The backend for `device` and `mode` (`select`'s choice)."""
    return select(device, mode).backend


def build_index(keys: np.ndarray, *, mode: str, placement: Placement) -> KeyIndex:
    """The searchable keys of one level, built by `placement`'s backend."""
    return placement.spec.index(keys, search_mode(mode), placement.gpu or 0)


def build_arrays(values: ValuePatches, *, placement: Placement) -> StageArrays:
    """Where a stage's image, patches and fold live for `placement`'s backend
    (`HostArrays` or `gpnn.core.torch_backend.TorchArrays`)."""
    return placement.spec.stage_arrays(values, placement.gpu or 0)
