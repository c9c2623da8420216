"""Fixtures shared by every test folder."""

from pathlib import Path

import numpy as np
import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def smooth_scene(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A small synthetic photo-like image: soft blobs of colour plus fine texture."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    image = np.zeros((height, width, 3), np.float32)
    for _ in range(6):
        cy, cx = rng.uniform(0, height), rng.uniform(0, width)
        radius = rng.uniform(4, max(6, min(height, width) / 3))
        colour = rng.uniform(0, 1, 3).astype(np.float32)
        blob = np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * radius**2))
        image += blob[:, :, None] * colour
    image += 0.05 * rng.standard_normal((height, width, 3)).astype(np.float32)
    return np.clip(image / max(image.max(), 1e-6), 0, 1).astype(np.float32)


@pytest.fixture
def scene() -> np.ndarray:
    return smooth_scene(40, 52)


@pytest.fixture
def make_scene():
    return smooth_scene


@pytest.fixture
def torch_backend_on_cpu(monkeypatch) -> str:
    """Route ``device="cuda"`` to the PyTorch backend running on the CPU: the
    GPU code path, device switched (skips where PyTorch is not installed).
    Returns the device to pass."""
    pytest.importorskip("torch")
    from gpnn.core import device

    monkeypatch.setattr(device, "faiss_gpus", lambda: 0)
    monkeypatch.setattr(device, "torch_gpus", lambda: 1)
    monkeypatch.setattr(device, "TORCH_DEVICE", "cpu")
    return "cuda"
