"""`gpnn generate|retarget|analogy|inpaint|collage|edit`: the engine, no server.

The options of each sub-command are built from the task's parameter model in
`gpnn.core.params`, so the CLI cannot drift from the library: a new field
there is a new option here, with the same default, range and help.
"""

from __future__ import annotations

import inspect
import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic.fields import FieldInfo

from gpnn.cli.app import app, check_out, fail, parse_device
from gpnn.cli.progress import ProgressBar
from gpnn.config import get_settings
from gpnn.core import (
    PARAMS_BY_TASK,
    TASK_INPUTS,
    Progress,
    Task,
    cost,
    params_for,
    read_image,
    read_mask,
    run_task,
    write_image,
)
from gpnn.core.params import check_samples

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
    "sources": (
        "Two or more source images, joined left to right in this order: neighbouring "
        "edges that show alike things (one sky, one field) merge without a seam, and of "
        "--candidates runs the one where they meet best is kept."
    ),
    "mask": "Mask image, white (> 50%) = hole, same size as SOURCE.",
}


def keyword(name: str, default: Any, annotation: Any) -> inspect.Parameter:
    """A keyword-only parameter of a command whose signature is built at run time
    (Typer reads the option from its `Annotated` annotation)."""
    return inspect.Parameter(
        name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation
    )


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
        if field.annotation is bool:  # a flag can be on by default: --x/--no-x
            option = f"{option}/--no-{option[2:]}"
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
        annotation=Annotated[str, typer.Option(help="cpu, cuda, cuda:N (GPU N) or auto.")],
    ),
    keyword(
        "as_json",
        False,
        annotation=Annotated[
            bool,
            typer.Option("--json", help="Print one JSON document (outputs, estimate, time)."),
        ],
    ),
]


def as_options(message: str, task: Task) -> str:
    """A validation or input message with the task's fields and options named as
    typed (`patch_size` -> `--patch-size`); a model-wide error is named by its
    options alone, not as the library's `parameters`."""
    message = message.removeprefix("`parameters`: ")
    for name in [*PARAMS_BY_TASK[task].model_fields, "samples", "mask"]:
        message = message.replace(f"`{name}`", f"`--{name.replace('_', '-')}`")
    return message


def _make_command(task: Task):
    def command(**arguments: Any) -> None:
        samples = arguments.pop("samples")
        out = arguments.pop("out")
        device = arguments.pop("device")
        as_json = arguments.pop("as_json")
        paths = {name: arguments.pop(name) for name in TASK_INPUTS[task]}
        values = {k: v for k, v in arguments.items() if v is not None}
        try:
            params = params_for(task, **values)
            check_samples(params, samples)
        except ValueError as error:
            fail(as_options(str(error), task))
        device = parse_device(device, mode=params.mode)
        try:
            inputs = _load_inputs(paths)
        except ValueError as error:
            fail(as_options(str(error), task))
        first = paths.get("source") or paths["sources"][0]
        shape = cost.input_shape(task, cost.shapes_of(inputs))
        estimate = cost.estimate(params, shape, samples)
        limit = get_settings().max_job_work
        if estimate["work_mpi"] > limit:
            fail(
                f"the run is estimated at {estimate['work_mpi']:.0f} megapixel-iterations, "
                f"{cost.describe(estimate)}, over the limit of {limit:g} "
                "(GPNN_MAX_JOB_WORK); use fewer samples or iterations, or a smaller image"
            )
        check_out(out)
        bar = ProgressBar(samples)
        bar.write(f"gpnn {task.value}: {samples} sample(s), {cost.describe(estimate)}")
        written: list[str] = []

        def keep_finished_sample(event: Progress) -> None:
            # Each sample is written as soon as it is finished: Ctrl-C keeps them.
            bar(event)
            if event.level == event.levels - 1 and event.image is not None:
                target = out / f"{Path(first).stem}-{task.value}-{params.seed + event.sample}.png"
                out.mkdir(parents=True, exist_ok=True)
                write_image(target, event.image)
                written.append(str(target))
                if not as_json:
                    bar.print(str(target))

        started = time.perf_counter()
        try:
            run_task(params, inputs, samples=samples, progress=keep_finished_sample, device=device)
        except ValueError as error:
            fail(as_options(str(error), task))
        finally:
            bar.close()
        if as_json:
            typer.echo(
                json.dumps(
                    {
                        "task": task.value,
                        "params": params.model_dump(mode="json"),
                        "samples": samples,
                        "outputs": written,
                        "estimate": estimate,
                        "seconds": round(time.perf_counter() - started, 3),
                    }
                )
            )

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


for _task in Task:
    app.command(_task.value, help=SUMMARIES[_task])(_make_command(_task))
