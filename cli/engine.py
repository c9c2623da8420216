"""`gpnn generate|retarget|analogy|inpaint|collage|edit`: the engine, no server.

The options of each sub-command are built from the task's parameter model in
`gpnn.core.params`, so the CLI cannot drift from the library: a new field
there is a new option here, with the same default, range and help.
"""

from __future__ import annotations

import inspect
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic.fields import FieldInfo
from tqdm import tqdm

from gpnn.cli.app import app
from gpnn.core import (
    PARAMS_BY_TASK,
    TASK_INPUTS,
    Progress,
    Task,
    params_for,
    read_image,
    read_mask,
    run_task,
    write_image,
)

SUMMARIES = {
    Task.generate: "Random samples with the patch distribution of SOURCE.",
    Task.retarget: "Resize SOURCE to --height x --width (an unset side keeps SOURCE's).",
    Task.analogy: "The patches of SOURCE laid out like STRUCTURE (also sketch-to-image).",
    Task.inpaint: "Fill the hole of SOURCE given by --mask (white = hole) or by --color.",
    Task.collage: "Merge several SOURCES into one coherent image.",
    Task.edit: "Make a naive edit (EDITED) of SOURCE coherent.",
}

INPUT_HELP = {
    "source": "Source image (PNG, JPEG, WebP, ...).",
    "structure": "Image whose layout the output follows.",
    "edited": "The naively edited copy of SOURCE (same size).",
    "sources": "Two or more source images.",
    "mask": "Mask image, white (> 50%) = hole, same size as SOURCE.",
}


def keyword(name: str, default: Any, annotation: Any) -> inspect.Parameter:
    """A keyword-only parameter of a command whose signature is built at run time
    (Typer reads the option from its `Annotated` annotation)."""
    return inspect.Parameter(
        name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation
    )


def _fail(message: str) -> None:
    typer.echo(f"gpnn: error: {message}", err=True)
    raise typer.Exit(code=2)


def _input_parameters(task: Task) -> list[inspect.Parameter]:
    parameters = []
    for name in TASK_INPUTS[task]:
        if name == "mask":
            annotation = Annotated[
                Path | None, typer.Option("--mask", help=INPUT_HELP[name], show_default=False)
            ]
            default: Any = None
        elif name == "sources":
            annotation = Annotated[list[Path], typer.Argument(help=INPUT_HELP[name])]
            default = inspect.Parameter.empty
        else:
            annotation = Annotated[Path, typer.Argument(help=INPUT_HELP[name])]
            default = inspect.Parameter.empty
        parameters.append(keyword(name, default, annotation=annotation))
    return parameters


def param_options(task: Task) -> list[inspect.Parameter]:
    """One keyword-only Typer option per field of the task's parameter model."""
    parameters = []
    for name, field in PARAMS_BY_TASK[task].model_fields.items():
        if name == "task":
            continue
        option = "--" + name.replace("_", "-")
        annotation = Annotated[
            _cli_type(field), typer.Option(option, help=field.description or "", show_default=True)
        ]
        default = None if field.is_required() else field.default
        parameters.append(keyword(name, default, annotation=annotation))
    return parameters


def _cli_type(field: FieldInfo) -> Any:
    annotation = field.annotation
    if field.is_required():
        return annotation | None  # validated by the model, which names the field
    return annotation


RUN_OPTIONS = [
    keyword(
        "samples",
        1,
        annotation=Annotated[int, typer.Option(min=1, help="Number of outputs (seeds seed..).")],
    ),
    keyword(
        "out",
        Path("gpnn-out"),
        annotation=Annotated[Path, typer.Option("--out", "-o", help="Output folder.")],
    ),
    keyword(
        "device",
        "cpu",
        annotation=Annotated[str, typer.Option(help="cpu, cuda or auto.")],
    ),
]


def _make_command(task: Task):
    def command(**arguments: Any) -> None:
        samples = arguments.pop("samples")
        out = arguments.pop("out")
        device = arguments.pop("device")
        input_names = TASK_INPUTS[task]
        paths = {name: arguments.pop(name) for name in input_names}
        values = {k: v for k, v in arguments.items() if v is not None}
        try:
            params = params_for(task, **values)
            inputs = _load_inputs(paths)
            outputs = _run_with_bar(params, inputs, samples, device)
        except ValueError as error:
            _fail(str(error))
        out.mkdir(parents=True, exist_ok=True)
        first = paths.get("source") or paths["sources"][0]
        for i, image in enumerate(outputs):
            target = out / f"{Path(first).stem}-{task.value}-{params.seed + i}.png"
            write_image(target, image)
            typer.echo(str(target))

    command.__name__ = task.value
    command.__doc__ = SUMMARIES[task]
    command.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        _input_parameters(task) + param_options(task) + RUN_OPTIONS
    )
    return command


def _load_inputs(paths: dict[str, Any]) -> dict[str, Any]:
    inputs: dict[str, Any] = {}
    for name, path in paths.items():
        if path is None:
            continue
        if name == "sources":
            inputs[name] = [read_image(p) for p in path]
        elif name == "mask":
            inputs[name] = read_mask(path)
        else:
            inputs[name] = read_image(path)
    return inputs


def _run_with_bar(params, inputs, samples: int, device: str):
    # tqdm's disable=None turns the bar off when stderr is not a terminal.
    with tqdm(total=samples, unit="sample", disable=None, file=sys.stderr) as bar:

        def progress(event: Progress) -> None:
            bar.set_postfix_str(
                f"level {event.level + 1}/{event.levels} "
                f"iteration {event.iteration + 1}/{event.iterations}"
            )
            if event.level == event.levels - 1 and event.iteration == event.iterations - 1:
                bar.update(1)

        return run_task(params, inputs, samples=samples, progress=progress, device=device)


for _task in Task:
    app.command(_task.value, help=SUMMARIES[_task])(_make_command(_task))
