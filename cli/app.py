"""The `gpnn` command: one Typer app that every sub-command module registers on."""

import typer

app = typer.Typer(
    name="gpnn",
    help="GPNN single-image generation: engine commands, the batch service and evaluation.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
