"""The settings table of docs/architecture.md is the one `config/settings.py` prints."""

from pathlib import Path

from gpnn.config.settings import Settings, settings_table

ARCHITECTURE = Path(__file__).resolve().parents[2] / "docs" / "architecture.md"


def test_the_documented_settings_are_the_settings():
    table = settings_table()
    assert table in ARCHITECTURE.read_text(), "run `python -m gpnn.config` and paste the table"
    for name in Settings.model_fields:
        assert f"`GPNN_{name.upper()}`" in table
