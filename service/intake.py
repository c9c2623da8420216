"""Checking what a client sends before anything is queued.

Parameters are validated by the engine's own models; images are sized from
their header (pixel and side limits) before they are decoded.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from fastapi import UploadFile

from gpnn.config import Settings
from gpnn.core import decode_image, decode_mask
from gpnn.core.cost import estimate, input_shape, output_shape, work
from gpnn.core.imageio import check_same_size, describe_size
from gpnn.core.params import CommonParams, Task, check_samples, params_for
from gpnn.core.tasks import find_hole
from gpnn.service.errors import InvalidRequest, TooLarge
from gpnn.worker.imagecheck import check_image
from gpnn.worker.webhooks import ForbiddenTarget, check_target

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")


def check_job_samples(param_sets: list[CommonParams], samples: int, settings: Settings) -> None:
    """422 when `samples` is over the limit, or when the samples could not differ."""
    if samples > settings.max_samples:
        raise InvalidRequest(f"`samples`: at most {settings.max_samples}")
    for job_params in param_sets:
        try:
            check_samples(job_params, samples)
        except ValueError as error:
            raise InvalidRequest(str(error)) from None


def parse_params(
    task: Task, raw: str | None, seed: int | None, default_mode: str
) -> list[CommonParams]:
    """`raw` is a JSON object (or, for batches, a list of objects) of engine parameters.

    A parameter set that names no `mode` gets the service's `default_mode`.
    """
    try:
        values = json.loads(raw) if raw not in (None, "") else {}
    except json.JSONDecodeError as error:
        raise InvalidRequest(f"`params`: not valid JSON ({error.msg})") from None
    except RecursionError:
        raise InvalidRequest("`params`: nested too deeply") from None
    many = isinstance(values, list)
    items = values if many else [values]
    if not items:
        raise InvalidRequest("`params`: the list of parameter sets is empty")
    result = []
    for index, item in enumerate(items):
        where = f"params[{index}]" if many else "params"
        if not isinstance(item, dict):
            raise InvalidRequest(f"`{where}`: must be a JSON object")
        item = dict(item)
        if item.get("task", task) != task:
            raise InvalidRequest(f"`{where}.task`: `{item['task']}` differs from task `{task}`")
        item.pop("task", None)
        item.setdefault("mode", default_mode)
        if seed is not None:
            item["seed"] = seed
        try:
            result.append(params_for(task, **item))
        except ValueError as error:
            # The engine names a model-wide error's field `parameters`: here that is `where`.
            message = str(error).replace("`parameters`: ", "")
            raise InvalidRequest(f"`{where}`: {message}") from None
    return result


def check_webhook_url(url: str | None, settings: Settings) -> str | None:
    """None for no webhook; the URL when it may be called (public, or allow-listed)."""
    if url in (None, ""):
        return None
    try:
        return check_target(url, settings.webhook_allow_networks)
    except ForbiddenTarget as error:
        raise InvalidRequest(f"`webhook_url`: {error}") from None


def read_upload(upload: UploadFile, settings: Settings, name: str) -> bytes:
    """The bytes of an uploaded file, with the upload limit (413)."""
    data = upload.file.read(settings.max_upload_bytes + 1)
    if len(data) > settings.max_upload_bytes:
        raise TooLarge(f"`{name}`: over the upload limit of {settings.max_upload_bytes} bytes")
    if not data:
        raise InvalidRequest(f"`{name}`: the file is empty")
    return data


def check_image_bytes(data: bytes, settings: Settings, name: str, *, mask: bool = False):
    """Header limits (413), then a decode (422 when unreadable); the decoded array."""
    check_image(data, max_pixels=settings.max_pixels, max_side=settings.max_side, name=name)
    try:
        return decode_mask(data, name=name) if mask else decode_image(data, name=name)
    except ValueError as error:
        message = str(error)  # the decoder's messages start with the name already
        named = message if message.startswith(f"`{name}`") else f"`{name}`: {message}"
        raise InvalidRequest(named) from None


def image_extension(data: bytes) -> str:
    if data.startswith(b"\x89PNG"):
        return ".png"
    if data.startswith(b"\xff\xd8"):
        return ".jpg"
    if data[:4] == b"RIFF":
        return ".webp"
    if data.startswith(b"BM"):
        return ".bmp"
    return ".tif"


def check_source_count(count: int) -> None:
    """A collage merges at least two images (`gpnn.core.tasks.collage` refuses fewer)."""
    if count < 2:
        raise InvalidRequest("`sources`: a collage needs at least two images")


def check_work(
    params: CommonParams, source: tuple[int, int], samples: int, settings: Settings, name: str
) -> dict[str, Any]:
    """The job's estimate (`gpnn.core.cost`); 413 when its work is over `max_job_work`."""
    units, expected = work(params, source, samples), estimate(params, source, samples)
    if units > settings.max_job_work:
        output = output_shape(params, source)
        smaller = (
            "a smaller image"
            if output == tuple(source)
            else f"a smaller `height` or `width` (the output is {describe_size(output)})"
        )
        raise TooLarge(
            f"`{name}`: the job is estimated at {units:.3g} megapixel-iterations (about "
            f"{expected['seconds']:.3g} s of CPU), over the limit of "
            f"{settings.max_job_work:g}; use fewer samples or iterations, or {smaller}"
        )
    return expected


def uploads_for_task(
    task: Task, params: CommonParams, files: dict[str, Any], settings: Settings, samples: int
) -> tuple[dict[str, bytes | list[bytes]], dict[str, Any]]:
    """Check the named inputs of `task` (present, readable, within limits, consistent)
    and the job's estimated work; returns the inputs' bytes and the estimate."""
    from gpnn.core import TASK_INPUTS

    expected = TASK_INPUTS[task]
    for name, value in files.items():
        if value and name not in expected:
            raise InvalidRequest(f"`{name}`: task `{task}` takes no such input")
    result: dict[str, bytes | list[bytes]] = {}
    shapes: dict[str, tuple[int, ...]] = {}
    arrays: dict[str, np.ndarray] = {}
    for name in expected:
        value = files.get(name)
        if name == "mask" and getattr(params, "color", None) is not None:
            if value:
                raise InvalidRequest("`mask`: the hole is given by `color` too; give one of them")
            continue
        if not value:
            raise InvalidRequest(f"`{name}`: task `{task}` needs this input")
        if name == "sources":
            check_source_count(len(value))
            datas = [read_upload(u, settings, f"sources[{i}]") for i, u in enumerate(value)]
            decoded = [check_image_bytes(d, settings, f"sources[{i}]") for i, d in enumerate(datas)]
            shapes[name] = [array.shape[:2] for array in decoded]
            result[name] = datas
            continue
        data = read_upload(value, settings, name)
        arrays[name] = check_image_bytes(data, settings, name, mask=name == "mask")
        shapes[name] = [arrays[name].shape[:2]]
        result[name] = data
    try:  # the engine's own rules, before anything is queued
        for name in ("mask", "edited"):
            if name in arrays:
                check_same_size(arrays[name], name, arrays["source"])
        if task == Task.inpaint and params.color is not None:  # a colour the photo lacks
            find_hole(arrays["source"], None, params.color)
    except ValueError as error:
        raise InvalidRequest(str(error)) from None
    source = "source" if "source" in shapes else "sources"
    return result, check_work(params, input_shape(task, shapes), samples, settings, source)
