"""The `gpnn` command as a user meets it: one error line, the option as typed, samples
kept as they finish, an estimate, --version and --json."""

import io
import json
import os
import signal
import subprocess
import sys
import time
from importlib.metadata import version
from pathlib import Path

import cv2
import numpy as np
import pytest

from gpnn.cli.progress import ProgressBar
from gpnn.core import Progress, collage, generate, retarget

from .conftest import run

GPNN = [sys.executable, "-c", "from gpnn.cli import main; main()"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--mode", "slow"], "'--mode': 'slow' is not one of"),
        (["--samples", "0"], "'--samples'"),
        (["--sigma", "much"], "'--sigma'"),
        (["--no-such-option"], "--no-such-option"),
        (["--sigma", "-1"], "`--sigma`: Input should be greater than or equal to 0"),
    ],
)
def test_every_error_is_one_line_naming_the_option_typed(
    capsys, image_file, tmp_path, args, message
):
    code, out, err = run(capsys, ["generate", str(image_file), *args, "-o", str(tmp_path / "o")])
    lines = err.strip().splitlines()
    assert code == 2 and out == ""
    assert len(lines) == 1 and lines[0].startswith("gpnn: error: ") and message in lines[0]
    assert not (tmp_path / "o").exists()


def test_unknown_command_is_one_line(capsys):
    code, _, err = run(capsys, ["generat"])
    [line] = err.strip().splitlines()
    assert code == 2 and line.startswith("gpnn: error: No such command 'generat'.")


def test_version(capsys):
    code, out, _ = run(capsys, ["--version"])
    assert code == 0 and out.strip() == f"gpnn {version('gpnn')}"


def test_json_lists_the_outputs_and_the_estimate(capsys, image_file, tmp_path):
    argv = ["generate", str(image_file), "--depth", "1", "--samples", "2", "--json"]
    code, out, _ = run(capsys, [*argv, "-o", str(tmp_path / "o")])
    assert code == 0
    document = json.loads(out)
    assert [Path(p).name for p in document["outputs"]] == [
        "scene-generate-0.png",
        "scene-generate-1.png",
    ]
    assert all(Path(p).is_file() for p in document["outputs"])
    assert document["estimate"]["seconds"] > 0 and document["estimate"]["mode"] == "fast"
    assert document["params"]["depth"] == 1


def test_a_run_over_the_work_ceiling_is_refused_before_it_starts(
    capsys, image_file, tmp_path, monkeypatch
):
    from gpnn.config import get_settings

    monkeypatch.setenv("GPNN_MAX_JOB_WORK", "0.001")
    get_settings.cache_clear()
    try:
        code, _, err = run(capsys, ["generate", str(image_file), "-o", str(tmp_path / "o")])
    finally:
        get_settings.cache_clear()
    assert code == 2
    assert "over the limit of 0.001 (GPNN_MAX_JOB_WORK)" in err and "MB" in err
    assert not list((tmp_path / "o").glob("*.png"))


def test_ctrl_c_keeps_the_samples_already_finished(image_file, tmp_path):
    out = tmp_path / "o"
    # Enough samples that the run is still going when the first file appears.
    command = [*GPNN, "generate", str(image_file), "--samples", "200", "-o", str(out)]
    child = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ},
        text=True,
        # A test run started in the background of a non-interactive shell (`make test &`)
        # inherits SIGINT ignored, and Python then installs no KeyboardInterrupt handler:
        # give the child the disposition of a terminal's foreground command.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    first = out / "scene-generate-0.png"
    deadline = time.monotonic() + 120
    while not first.exists() and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)  # polling for the file, bounded by the deadline
    assert first.exists(), child.communicate()
    child.send_signal(signal.SIGINT)
    stdout, stderr = child.communicate(timeout=60)
    assert child.returncode == 130, stderr
    assert stderr.strip().splitlines()[-1] == "gpnn: error: interrupted"
    kept = sorted(out.glob("*.png"))
    assert 1 <= len(kept) < 200
    assert stdout.split() == [
        str(p) for p in sorted(kept, key=lambda p: int(p.stem.split("-")[-1]))
    ]
    assert cv2.imread(str(first)) is not None


def test_progress_reaches_one_and_never_goes_back(scene):
    events: list[Progress] = []
    [output] = generate(scene, samples=1, depth=2, progress=events.append)
    fractions = [e.sample_share() for e in events]
    assert fractions == sorted(fractions) and fractions[-1] == pytest.approx(1.0)
    assert fractions[0] < 0.5
    finished = [e for e in events if e.image is not None]
    assert [e.level for e in finished] == list(range(events[0].levels))
    assert np.array_equal(finished[-1].image, output)


def test_a_collages_progress_runs_through_its_candidates_then_the_kept_one(scene):
    events: list[Progress] = []
    [output] = collage([scene, scene[:, ::-1]], depth=3, candidates=3, progress=events.append)
    fractions = [e.sample_share() for e in events]
    assert fractions == sorted(fractions) and fractions[-1] == pytest.approx(1.0)
    # The three candidates' shared levels are more than a run's, less than all of it.
    compared = [f for e, f in zip(events, fractions, strict=True) if e.level <= e.compared_at]
    assert 1 / 3 < compared[-1] < 1
    finished = [e for e in events if e.image is not None]
    assert [e.level for e in finished] == list(range(events[0].compared_at + 1, events[0].levels))
    assert np.array_equal(finished[-1].image, output)


def test_several_samples_without_noise_name_the_option_that_adds_it(capsys, image_file, tmp_path):
    argv = ["edit", str(image_file), str(image_file), "--samples", "3", "-o", str(tmp_path / "o")]
    code, _, err = run(capsys, argv)
    [line] = err.strip().splitlines()
    assert code == 2 and "all 3 samples would be the same image" in line
    assert "set `--sigma` above 0" in line


@pytest.mark.parametrize("command", ["generate", "eval-dataset", "demo"])
def test_an_out_that_is_a_file_is_refused_before_any_work(capsys, image_file, tmp_path, command):
    taken = tmp_path / "taken.png"
    taken.write_bytes(b"not a folder")
    data = image_file if command == "generate" else image_file.parent
    argv = (
        [command, str(data), "-o", str(taken)] if command != "demo" else [command, "-o", str(taken)]
    )
    code, out, err = run(capsys, argv)
    [line] = err.strip().splitlines()
    assert code == 2 and out == ""
    assert line.startswith("gpnn: error: `--out`") and "not a folder" in line
    assert taken.read_bytes() == b"not a folder"


def test_a_flag_on_by_default_can_be_turned_off(capsys, tmp_path, scene):
    texture = tmp_path / "texture.png"
    cv2.imwrite(str(texture), (scene[:, :, ::-1] * 255).astype(np.uint8))
    argv = ["analogy", str(texture), str(texture), "--no-refine", "--depth", "1", "--json"]
    code, out, err = run(capsys, [*argv, "-o", str(tmp_path / "o")])
    assert code == 0, err
    assert json.loads(out)["params"]["refine"] is False


class _Terminal(io.StringIO):
    """stdout and stderr of one terminal: both streams land in one screen."""

    def isatty(self) -> bool:
        return True


def test_an_output_line_starts_on_its_own_line_under_the_bar(monkeypatch):
    screen = _Terminal()
    monkeypatch.setattr(sys, "stdout", screen)
    monkeypatch.setattr(sys, "stderr", screen)
    bar = ProgressBar(2)
    bar(Progress(0, 2, 0, 3, 0, 10))
    bar.print("gpnn-out/scene-generate-0.png")
    bar.close()
    before = screen.getvalue().split("gpnn-out/scene-generate-0.png")[0]
    assert "level 1/3" in before and before.endswith(("\r", "\n"))


def test_progress_follows_the_work_of_a_gradual_retarget(scene):
    """A retarget to three times the width runs many small coarse stages, then the
    large levels: the share done after each stage is its work so far (pixels times
    iterations), not its count."""
    events: list[Progress] = []
    retarget(scene, width=3 * scene.shape[1], depth=2, progress=events.append)
    ends = [e for e in events if e.image is not None]
    work = np.cumsum([e.image.shape[0] * e.image.shape[1] * e.iterations for e in ends])
    assert len(ends) > 3  # the gradual stages and the finer levels
    shares = [e.sample_share() for e in ends]
    np.testing.assert_allclose(shares, work / work[-1], rtol=1e-6)
