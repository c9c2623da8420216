"""The `gpnn` command: one Typer app that every sub-command module registers on, and
the one way a command reports failure (a `gpnn: error: ...` line and exit code 2)."""

from __future__ import annotations

import os
import sys
from importlib.metadata import version
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from typer.exceptions import TyperException

app = typer.Typer(
    name="gpnn",
    help="GPNN single-image generation: engine commands, the batch service and evaluation.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    # Help texts are docstrings wrapped at 88 columns: markdown joins the lines of a
    # paragraph, so a terminal of any width wraps them anew instead of mid-sentence.
    rich_markup_mode="markdown",
)

# Exit code of a run stopped by the user (128 + SIGINT), as shells report it.
INTERRUPTED = 130


def fail(message: str) -> NoReturn:
    """End the command with one `gpnn: error:` line on stderr and exit code 2."""
    typer.echo(f"gpnn: error: {message}", err=True)
    raise typer.Exit(code=2)


def check_out(path: Path) -> None:
    """`--out` checked before any work: a file there (or in its way), or a folder that
    cannot be written, is one error line instead of a traceback after the first
    sample. The folder itself is made when the first file is written."""
    existing = path
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        fail(f"`--out` {path}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        fail(f"`--out` {path}: {existing} is not writable")


def parse_device(value: str | None, *, mode: str | None = None) -> str | None:
    """`--device` checked before any work: its form, and with `mode` (a run in this
    process) that a backend here runs it; else one error line naming the option."""
    if value is None:
        return None
    from gpnn.core.device import DEVICE_FORMS, Device, select

    try:
        device = Device.parse(value)
    except ValueError:
        fail(f"`--device` must be {DEVICE_FORMS}; got {value!r}")
    if mode is not None:
        try:
            select(device, mode)
        except ValueError as error:
            fail(f"`--device`: {error}")
    return str(device)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"gpnn {version('gpnn')}")
        raise typer.Exit()


@app.callback()
def _root(
    show_version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version."
        ),
    ] = False,
) -> None:
    """GPNN single-image generation: engine commands, the batch service and evaluation."""


def main(argv: list[str] | None = None) -> NoReturn:
    """Run `gpnn` with `argv` (default: the process's arguments).

    The command-line framework's own errors (an unknown option, a value of the wrong
    type or out of range) end like the commands' errors: one `gpnn: error:` line
    naming the option as typed, exit code 2.
    """
    try:
        # Typer turns Ctrl-C into exit code 130 (returned when not standalone).
        code = app(args=argv, prog_name="gpnn", standalone_mode=False)
    except typer.Abort:
        code = INTERRUPTED
    except TyperException as error:
        # pydantic's prefix on values a callback refused says nothing to a user.
        message = error.format_message().replace("Value error, ", "")  # type: ignore[attr-defined]
        if message:  # empty when help was printed for a bare `gpnn`
            typer.echo(f"gpnn: error: {message}", err=True)
        sys.exit(2)
    if code == INTERRUPTED:
        typer.echo("gpnn: error: interrupted", err=True)
    sys.exit(code or 0)
