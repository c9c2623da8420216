"""`Device` and the backend table: every device and mode either runs on a backend
that declares it, or is a `ValueError` before anything is built."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from gpnn.core import device as device_module
from gpnn.core import tasks
from gpnn.core.device import BACKENDS, Backend, Device, Placement, resolve_device, select
from gpnn.core.params import SearchMode
from gpnn.core.patches import ValuePatches
from gpnn.core.pnn import SourceLevel


def gpus(monkeypatch, *, faiss: int, torch: int) -> None:
    monkeypatch.setattr(device_module, "faiss_gpus", lambda: faiss)
    monkeypatch.setattr(device_module, "torch_gpus", lambda: torch)


@pytest.mark.parametrize(
    "text, device",
    [
        ("cpu", Device("cpu")),
        ("auto", Device("auto")),
        ("cuda", Device("cuda")),
        ("cuda:0", Device("cuda", 0)),
        ("cuda:12", Device("cuda", 12)),
    ],
)
def test_devices_parse_and_print_back(text, device):
    assert Device.parse(text) == device
    assert str(Device.parse(text)) == text
    assert Device.parse(device) is device


@pytest.mark.parametrize(
    "text", ["gpu", "", "CUDA", "cuda:", "cuda:-1", "cuda:x", "cpu:0", "auto:1"]
)
def test_malformed_devices_are_refused_naming_the_forms(text):
    with pytest.raises(ValueError, match=r"`device` must be cpu, cuda, cuda:N .* got"):
        Device.parse(text)


def test_a_gpu_number_belongs_to_cuda_only():
    with pytest.raises(ValueError, match="`device`"):
        Device("cpu", 0)
    with pytest.raises(ValueError, match="`device`"):
        Device("cuda", -1)


def test_every_backend_declares_both_modes_and_what_fast_means():
    for name, spec in BACKENDS.items():
        assert spec.name == name
        assert spec.modes == frozenset(SearchMode)
        assert spec.arrays in ("host", "device") and spec.fast
    assert BACKENDS[Backend.torch_cuda].arrays == "device"


def test_resolution_without_a_gpu(monkeypatch):
    gpus(monkeypatch, faiss=0, torch=0)
    assert resolve_device("cpu") == Backend.cpu
    assert resolve_device("auto", "fast") == Backend.cpu
    with pytest.raises(ValueError, match="device `cuda` with mode `exact` requested but no GPU"):
        resolve_device("cuda")
    with pytest.raises(ValueError, match="`mode`"):
        resolve_device("cpu", "fastest")


def test_resolution_with_gpus(monkeypatch):
    gpus(monkeypatch, faiss=0, torch=2)
    assert select("cuda") == Placement(Backend.torch_cuda, 0)
    assert select("cuda:1", "fast") == Placement(Backend.torch_cuda, 1)
    assert select("auto") == Placement(Backend.torch_cuda, 0)
    with pytest.raises(ValueError, match=r"no backend sees GPU 2: .*PyTorch sees 2 CUDA"):
        select("cuda:2")
    gpus(monkeypatch, faiss=1, torch=2)
    assert select("cuda", "fast") == Placement(Backend.faiss_gpu, 0)
    assert select("cuda:1") == Placement(Backend.torch_cuda, 1)


def test_a_mode_a_backend_lacks_is_an_error_not_a_switch(monkeypatch):
    """A backend that declares exact only is never handed fast, and nothing falls
    back to the CPU for "cuda"."""
    gpus(monkeypatch, faiss=1, torch=0)
    exact_only = replace(BACKENDS[Backend.faiss_gpu], modes=frozenset({SearchMode.exact}))
    monkeypatch.setitem(BACKENDS, Backend.faiss_gpu, exact_only)
    assert select("cuda", "exact").backend == Backend.faiss_gpu
    with pytest.raises(ValueError, match="faiss-gpu: no mode `fast` \\(it runs exact\\)"):
        select("cuda", "fast")
    assert select("auto", "fast").backend == Backend.cpu


def test_cpu_resolution_never_looks_for_a_gpu(monkeypatch):
    def no_gpu_lookup() -> int:
        raise AssertionError("GPUs looked up for a CPU device")

    monkeypatch.setattr(device_module, "torch_gpus", no_gpu_lookup)
    monkeypatch.setattr(device_module, "faiss_gpus", no_gpu_lookup)
    assert resolve_device("cpu", "fast") == Backend.cpu


def test_a_level_refuses_its_device_before_building_anything(monkeypatch):
    gpus(monkeypatch, faiss=0, torch=0)

    def never(*args, **kwargs):
        raise AssertionError("an index was built")

    monkeypatch.setattr(device_module, "_cpu_index", never)
    values = ValuePatches.of_images([np.zeros((8, 8, 3), np.float32)], 3)
    keys = np.zeros((36, 27), np.float32)
    with pytest.raises(ValueError, match="device `cuda:1`"):
        SourceLevel(keys, values, device="cuda:1")
    with pytest.raises(ValueError, match="`device` must be"):
        SourceLevel(keys, values, device="gpu")


def test_faiss_gpu_fast_stops_early_without_propagating(monkeypatch):
    """faiss-gpu's fast mode: the exact search (no hint reaches it) and early stops."""
    gpus(monkeypatch, faiss=1, torch=0)
    seen = []

    class Recorder:
        def nearest(self, queries, alpha, hint=None):
            seen.append(hint)
            return np.zeros(len(queries), np.int64)

    recording = replace(BACKENDS[Backend.faiss_gpu], index=lambda keys, mode, gpu: Recorder())
    monkeypatch.setitem(BACKENDS, Backend.faiss_gpu, recording)
    values = ValuePatches.of_images([np.zeros((8, 8, 3), np.float32)], 3)
    level = SourceLevel(np.zeros((36, 27), np.float32), values, mode="fast", device="cuda")
    assert level.backend == Backend.faiss_gpu and level.mode == "fast"
    level.nearest(np.zeros((36, 27), np.float32), 1.0, np.zeros(36, np.int64), (6, 6))
    assert seen == [None]
    same = np.zeros(36, np.int64)
    assert level.converged(same, same)


@pytest.mark.parametrize("task", ["generate", "collage"])
def test_an_application_refuses_a_device_before_any_work(task, monkeypatch):
    def no_pyramid(*args, **kwargs):
        raise AssertionError("a pyramid was built before the device was checked")

    monkeypatch.setattr(tasks, "_pyramid", no_pyramid)
    image = np.random.default_rng(0).random((40, 40, 3), dtype=np.float32)
    inputs = {"source": image} if task == "generate" else {"sources": [image, image]}
    with pytest.raises(ValueError, match="no backend sees GPU 7"):
        tasks.run_task(tasks.params_for(task), inputs, device="cuda:7")
