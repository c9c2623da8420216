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
            == "gpnn: error: invalid setting: `device`: must be one of cpu, cuda, auto; got 'gpu'"
        )
