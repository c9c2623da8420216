"""Shared by the CLI tests: an image on disk and the `gpnn` command run in-process."""

from pathlib import Path

import cv2
import numpy as np
import pytest

from gpnn.cli import main


@pytest.fixture
def image_file(tmp_path, scene) -> Path:
    path = tmp_path / "scene.png"
    cv2.imwrite(str(path), (scene[:, :, ::-1] * 255).astype(np.uint8))
    return path


def run(capsys, argv: list[str]) -> tuple[int, str, str]:
    """`gpnn argv` in this process: its exit code, stdout and stderr."""
    with pytest.raises(SystemExit) as ended:
        main(argv)
    captured = capsys.readouterr()
    return ended.value.code, captured.out, captured.err
