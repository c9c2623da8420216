"""`--device`: one option on every command that runs the engine, checked before any
work, one error line naming it."""

import pytest
import typer

from gpnn.cli.app import app
from gpnn.core import device as device_module

from .conftest import run

ENGINE_COMMANDS = [
    "generate",
    "retarget",
    "analogy",
    "inpaint",
    "collage",
    "edit",
    "eval-dataset",
    "worker",
    "serve",
    "demo",
]


def test_every_engine_command_takes_device_and_none_takes_gpu():
    commands = typer.main.get_command(app).commands
    for name in ENGINE_COMMANDS:
        options = {o for p in commands[name].params for o in p.opts}
        assert "--device" in options, name
        assert "--gpu" not in options, name


@pytest.mark.parametrize("command", ["generate", "worker", "serve", "demo"])
def test_a_malformed_device_is_one_line_naming_the_option(capsys, image_file, tmp_path, command):
    argv = [command, "--device", "gpu"]
    if command in ("generate", "demo"):
        argv += [str(image_file), "-o", str(tmp_path / "o")]
    code, _, err = run(capsys, argv)
    [line] = err.strip().splitlines()
    assert code == 2
    assert line == (
        "gpnn: error: `--device` must be cpu, cuda, cuda:N (GPU number N) or auto; got 'gpu'"
    )
    assert not (tmp_path / "o").exists()


def test_a_gpu_no_backend_sees_stops_a_run_before_any_work(
    monkeypatch, capsys, image_file, tmp_path
):
    monkeypatch.setattr(device_module, "faiss_gpus", lambda: 0)
    monkeypatch.setattr(device_module, "torch_gpus", lambda: 1)
    argv = ["generate", str(image_file), "--device", "cuda:1", "-o", str(tmp_path / "o")]
    code, out, err = run(capsys, argv)
    [line] = err.strip().splitlines()
    assert code == 2 and out == ""
    assert line.startswith(
        "gpnn: error: `--device`: device `cuda:1` with mode `fast` requested but no backend "
        "sees GPU 1: faiss-gpu: FAISS sees 0 GPU(s)"
    )
    assert not (tmp_path / "o").exists()


def test_serve_refuses_a_device_for_workers_it_does_not_run(monkeypatch, capsys):
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:9/0")  # never reached
    code, _, err = run(capsys, ["serve", "--device", "cpu"])
    [line] = err.strip().splitlines()
    assert code == 2 and "with REDIS_URL set, give it to `gpnn worker`" in line


def test_eval_dataset_device_is_for_local_runs(capsys, image_file, tmp_path):
    argv = ["eval-dataset", str(tmp_path), "--server", "http://127.0.0.1:9", "--device", "cuda"]
    code, _, err = run(capsys, argv)
    [line] = err.strip().splitlines()
    assert code == 2 and "`--device` is for local runs" in line
