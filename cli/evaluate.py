"""`gpnn eval` and `gpnn eval-dataset`: measure generated images, write reports.

The generation options of `eval-dataset` are built from `GenerateParams`, as
for `gpnn generate`, so the two commands cannot drift apart.
"""

from __future__ import annotations

import inspect
import json
import shlex
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from tqdm import tqdm

from gpnn.cli.app import app, check_out, fail, parse_device
from gpnn.cli.engine import as_options, keyword, param_options
from gpnn.cli.progress import ProgressBar
from gpnn.core import Task, params_for, read_image
from gpnn.core.metrics import PATCH_SIZE, diversity, sample_metrics
from gpnn.evaluate import report as report_module
from gpnn.evaluate.runner import find_images, local_generator, run_dataset, write_files

METRIC_STRIDE_HELP = (
    "Measure coherence/completeness on every N-th patch row and column "
    "(N^2 times faster; 1 = every patch)."
)


@app.command("eval")
def eval_command(
    source: Annotated[Path, typer.Argument(help="The source image the outputs were made from.")],
    outputs: Annotated[list[Path], typer.Argument(help="Generated images to measure.")],
    patch_size: Annotated[
        int, typer.Option(min=3, help="Side of the patches of the patch metrics.")
    ] = PATCH_SIZE,
    metric_stride: Annotated[int, typer.Option(min=1, help=METRIC_STRIDE_HELP)] = 1,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Print diversity, coherence, completeness, patch SWD, change and copied
    share of OUTPUTS against SOURCE, and count the copies.

    Coherence, completeness and SWD are per output (lower is better, and perfect
    for a copy of SOURCE); change (mean grey difference / grey std of SOURCE)
    and copied (share of patches where they are in SOURCE) say whether an output
    is a new picture; an output is counted a copy when change < 0.1 or when
    copied >= 0.5. Diversity, change and copied need outputs of SOURCE's size.
    """
    try:
        image = read_image(source)
        samples = [read_image(path) for path in outputs]
        rows = []
        for path, sample in tqdm(
            list(zip(outputs, samples, strict=True)), unit="image", disable=None, file=sys.stderr
        ):
            metrics = sample_metrics(sample, image, patch_size=patch_size, stride=metric_stride)
            rows.append({"output": str(path), **metrics.as_dict()})
        same_size = all(s.shape == image.shape for s in samples)
        value = diversity(samples, image) if len(samples) >= 2 and same_size else None
    except ValueError as error:
        fail(str(error))
    mean = {
        key: None if None in values else sum(values) / len(values)
        for key in ("coherence", "completeness", "swd", "change", "copied")
        for values in [[row[key] for row in rows]]
    }
    copies = sum(row["copy"] for row in rows)
    if as_json:
        document = {
            "source": str(source),
            "diversity": value,
            "copies": copies,
            "mean": mean,
            "outputs": rows,
        }
        typer.echo(json.dumps(document, indent=2))
        return
    width = max(len("mean"), *(len(row["output"]) for row in rows))
    typer.echo(
        f"{'output':<{width}}  {'coherence':>10}  {'completeness':>12}  {'patch SWD':>9}"
        f"  {'change':>6}  {'copied':>6}"
    )
    for row in [*rows, {"output": "mean", **mean, "copy": False}]:
        typer.echo(
            f"{row['output']:<{width}}  {row['coherence']:>10.5f}  "
            f"{row['completeness']:>12.5f}  {row['swd']:>9.4f}  {_fraction(row['change'])}"
            f"  {_fraction(row['copied'])}" + ("  COPY" if row["copy"] else "")
        )
    reason = "needs 2+ outputs of the source's size"
    typer.echo(f"diversity: {reason if value is None else f'{value:.4f}'}")
    checked = sum(row["change"] is not None for row in rows)
    unchecked = len(rows) - checked
    typer.echo(
        f"copies of the source: {copies} of {checked}"
        + (f" of its size ({unchecked} of another size not checked)" if unchecked else "")
    )


def _fraction(value: float | None) -> str:
    return f"{'n/a':>6}" if value is None else f"{value:>6.3f}"


DATASET_OPTIONS = [
    keyword(
        "samples",
        50,
        annotation=Annotated[
            int, typer.Option(min=1, help="Samples per image (the paper uses 50).")
        ],
    ),
    keyword(
        "out",
        Path("gpnn-eval"),
        annotation=Annotated[Path, typer.Option("--out", "-o", help="Report folder.")],
    ),
    keyword(
        "limit",
        None,
        annotation=Annotated[
            int | None, typer.Option(min=1, help="Only the first N images (natural order).")
        ],
    ),
    keyword(
        "thumbnails",
        report_module.THUMBNAILS,
        annotation=Annotated[int, typer.Option(min=0, help="Samples shown per image.")],
    ),
    keyword(
        "metric_stride",
        1,
        annotation=Annotated[int, typer.Option(min=1, help=METRIC_STRIDE_HELP)],
    ),
    keyword(
        "title",
        None,
        annotation=Annotated[str | None, typer.Option(help="Report heading (default: DIR).")],
    ),
    keyword(
        "server",
        None,
        annotation=Annotated[
            str | None,
            typer.Option(help="Base URL of a gpnn service to generate on (default: locally)."),
        ],
    ),
    keyword(
        "api_key",
        None,
        annotation=Annotated[
            str | None,
            typer.Option(envvar="GPNN_API_KEY", help="API key of the service (--server)."),
        ],
    ),
    keyword(
        "device",
        "cpu",
        annotation=Annotated[
            str, typer.Option(help="cpu, cuda, cuda:N (GPU N) or auto (local runs).")
        ],
    ),
    keyword(
        "as_json",
        False,
        annotation=Annotated[
            bool, typer.Option("--json", help="Print the averages and the report's path as JSON.")
        ],
    ),
]


def eval_dataset(directory: Path, **arguments: Any) -> None:
    samples = arguments.pop("samples")
    out = arguments.pop("out")
    limit = arguments.pop("limit")
    thumbnails = arguments.pop("thumbnails")
    stride = arguments.pop("metric_stride")
    title = arguments.pop("title") or f"GPNN evaluation of {directory}"
    server = arguments.pop("server")
    api_key = arguments.pop("api_key")
    device = arguments.pop("device")
    as_json = arguments.pop("as_json")
    values = {k: v for k, v in arguments.items() if v is not None}
    try:
        params = params_for(Task.generate, **values)
        sources = find_images(directory, limit=limit)
        if server is not None:
            from gpnn.evaluate.remote import remote_generator

            generator = remote_generator(server, api_key=api_key)
        else:
            generator = None
    except ValueError as error:
        fail(as_options(str(error), Task.generate))
    if server is None:
        device = parse_device(device, mode=params.mode)
    elif device != "cpu":
        fail("`--device` is for local runs; with `--server` the service's workers choose theirs")
    check_out(out)
    settings = {
        **params.model_dump(mode="json", exclude={"task"}),
        "samples": samples,
        "images": len(sources),
        "where": server or "local",
        "metric_stride": stride,
        "command": _command_line(directory, params, samples, limit, stride, server),
    }
    bar = ProgressBar(len(sources) * samples)
    if generator is None:
        generator = local_generator(bar, device=device)
    entries = []
    start = time.perf_counter()
    try:
        for entry in run_dataset(
            sources,
            params,
            samples=samples,
            generator=generator,
            thumbnails=thumbnails,
            stride=stride,
        ):
            entries.append(entry)
            bar.start_group(samples)
            bar.describe(entry.evaluation.name)
            # Rewritten after every image, so a long run can be looked at as it goes.
            files = report_module.write_report(entries, title=title, settings=settings)
            write_files(files, out)
    except ValueError as error:
        bar.close()
        fail(str(error))
    bar.close()
    average = report_module.averages([e.evaluation for e in entries])
    if as_json:
        summary = {"images": len(entries), "samples": samples, "average": average}
        typer.echo(json.dumps({**summary, "report": str(out / "index.html")}))
        return
    typer.echo(
        f"{len(entries)} images, {samples} samples each, in {time.perf_counter() - start:.0f} s: "
        + ", ".join(
            f"{key} {report_module.format_value(key, average[key])}"
            for key in report_module.METRIC_COLUMNS
            if average[key] is not None
        )
    )
    typer.echo(str(out / "index.html"))


def _command_line(directory, params, samples, limit, stride, server) -> str:
    """The canonical command that repeats this run (options at their default left out)."""
    words = ["gpnn", "eval-dataset", str(directory), "--samples", str(samples)]
    for name, value in params.changed().items():
        if name != "task":
            words += ["--" + name.replace("_", "-"), str(value)]
    extra = {
        "--limit": limit,
        "--metric-stride": stride if stride != 1 else None,
        "--server": server,
    }
    for option, value in extra.items():
        if value is not None:
            words += [option, str(value)]
    return shlex.join(words)


eval_dataset.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
    [
        keyword(
            "directory",
            inspect.Parameter.empty,
            annotation=Annotated[Path, typer.Argument(help="Folder of source images.")],
        ),
        *param_options(Task.generate),
        *DATASET_OPTIONS,
    ]
)

app.command(
    "eval-dataset",
    help="Generate --samples images of every image of DIRECTORY, measure them and write "
    "a report (index.html, report.md, metrics.json/csv, contact_sheet.png) to --out.",
)(eval_dataset)
