"""Command-line entry point: `gpnn SUBCOMMAND ...`."""

from gpnn.cli import engine, evaluate, service  # noqa: F401  (each registers its commands)
from gpnn.cli.app import app, main

__all__ = ["app", "main"]
