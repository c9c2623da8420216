"""`python -m gpnn.config`: print the settings table of docs/architecture.md."""

from gpnn.config.settings import settings_table

print(settings_table(), end="")
