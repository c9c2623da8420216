"""`gpnn` sub-commands: service."""

from gpnn.cli.app import app  # noqa: F401
