"""`gpnn` sub-commands: evaluate."""

from gpnn.cli.app import app  # noqa: F401
