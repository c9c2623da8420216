"""The settings table of docs/architecture.md is the one `config/settings.py` prints."""

from pathlib import Path

import pytest

from gpnn.cli import main
from gpnn.config.settings import Settings, settings_table

ARCHITECTURE = Path(__file__).resolve().parents[2] / "docs" / "architecture.md"


def test_the_documented_settings_are_the_settings():
    table = settings_table()
    assert table in ARCHITECTURE.read_text(), "run `python -m gpnn.config` and paste the table"
    for name in Settings.model_fields:
        assert f"`GPNN_{name.upper()}`" in table


def test_an_unknown_device_is_refused_when_the_process_starts(monkeypatch, capsys):
    monkeypatch.setenv("GPNN_DEVICE", "gpu")
    for command in (["worker"], ["serve"]):
        with pytest.raises(SystemExit) as ended:
            main(command)
        [line] = capsys.readouterr().err.strip().splitlines()
        assert ended.value.code == 2
        assert (
            line
            == "gpnn: error: invalid setting: `device`: must be cpu, cuda, cuda:N (GPU number N) "
            "or auto; got 'gpu'"
        )


def test_a_gpu_device_no_backend_sees_is_refused_when_the_workers_start(monkeypatch, capsys):
    """`GPNN_DEVICE=cuda:1` is well formed; on a machine where no backend sees GPU 1
    the worker and the embedded service stop at start, before Redis or a worker runs."""
    from gpnn.core import device

    if device.faiss_gpus() > 1 or device.torch_gpus() > 1:
        pytest.skip("this machine has a GPU 1")
    monkeypatch.setenv("GPNN_DEVICE", "cuda:1")
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:9/0")  # never reached
    for command in (["worker"], ["serve"]):
        if command == ["serve"]:
            monkeypatch.delenv("REDIS_URL")
        with pytest.raises(SystemExit) as ended:
            main(command)
        [line] = capsys.readouterr().err.strip().splitlines()
        assert ended.value.code == 2
        assert line.startswith(
            "gpnn: error: device `cuda:1` with mode `fast` requested but no backend sees GPU 1: "
        )
