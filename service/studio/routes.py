"""`/`: the studio page, its static files, and `/studio/plan` (what a job will get).

The page's parameter forms are generated from the engine's own models
(`gpnn.core.params`): their JSON schemas (names, defaults, ranges, help texts) are
embedded in the page, so a default or range changed there shows here unchanged.
"""

from __future__ import annotations

import html
import json
import math
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Body, FastAPI
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field, PositiveInt

from gpnn.core import TASK_INPUTS
from gpnn.core.cost import estimate, input_shape, output_shape, work
from gpnn.core.imageio import describe_size
from gpnn.core.params import PARAMS_BY_TASK, Task
from gpnn.core.pyramid import depth_for, level_shape
from gpnn.service.deps import KEY_COOKIE, SettingsDep
from gpnn.service.errors import InvalidRequest
from gpnn.service.intake import check_source_count, parse_params

HERE = Path(__file__).parent
router = APIRouter(include_in_schema=False)
# Source extent of a retargeting or collage's coarsest level, in patches (gpnn.core.tasks).
RESIZE_COARSEST_PATCHES = 2.5


def mount_static(app: FastAPI) -> None:
    app.mount("/studio/static", StaticFiles(directory=HERE / "static"), name="studio-static")


def _strict(value: Any) -> Any:
    """Infinity as the string "Infinity" (how the API writes it), for strict JSON."""
    if isinstance(value, float) and math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    if isinstance(value, dict):
        return {k: _strict(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_strict(v) for v in value]
    return value


def page_config(settings) -> dict[str, Any]:
    """What the page needs: each task's parameter schema and inputs, and the limits."""
    return {
        "tasks": {
            task.value: {
                "schema": _strict(PARAMS_BY_TASK[task].model_json_schema()),
                "inputs": list(TASK_INPUTS[task]),
            }
            for task in Task
        },
        "auth": bool(settings.api_keys),
        "key_cookie": KEY_COOKIE,
        "default_mode": settings.default_mode,
        "limits": {
            "max_pixels": settings.max_pixels,
            "max_side": settings.max_side,
            "max_samples": settings.max_samples,
            "max_upload_bytes": settings.max_upload_bytes,
            "max_job_work": settings.max_job_work,
        },
    }


@router.get("/", response_class=HTMLResponse)
def studio(settings: SettingsDep) -> HTMLResponse:
    config = json.dumps(page_config(settings)).replace("</", "<\\/")
    page = (HERE / "templates" / "index.html").read_text()
    page = page.replace("{{config}}", config).replace(
        "{{limits}}",
        html.escape(
            f"at most {settings.max_side} px a side, {settings.max_pixels / 1e6:g} MP, "
            f"{settings.max_upload_bytes // 2**20} MB, {settings.max_samples} samples"
        ),
    )
    return HTMLResponse(page, headers={"Cache-Control": "no-cache"})


class PlanRequest(BaseModel):
    task: Task
    params: dict[str, Any] = Field(default_factory=dict)
    samples: int = Field(1, ge=1)
    height: int = Field(ge=1, description="Source height in pixels.")
    width: int = Field(ge=1, description="Source width in pixels.")
    hole: tuple[int, int] | None = Field(None, description="Inpaint: the hole's extent (h, w).")
    sizes: dict[str, list[tuple[PositiveInt, PositiveInt]]] = Field(
        default_factory=dict,
        description="Other inputs' (h, w) by name, as `gpnn.core.cost.input_shape` takes "
        "them: a collage's `sources` (each), an analogy's `structure`.",
    )


def _auto_depth(params, task: Task, shape: tuple[int, int], hole) -> int:
    """The depth `gpnn.core.tasks` chooses from the source alone (analogy and collage
    also look at their other images; inpainting at the hole)."""
    p, ratio, side = params.patch_size, params.ratio, min(shape)
    if task in (Task.retarget, Task.collage):
        target = output_shape(params, shape)
        return depth_for(min(side, *target), RESIZE_COARSEST_PATCHES * p, ratio)
    if task in (Task.analogy, Task.edit):
        return depth_for(side, 4 * p, ratio)
    if task == Task.inpaint and hole:
        return min(depth_for(max(hole), p, ratio), depth_for(side, 2 * p, ratio))
    return depth_for(side, 2 * p, ratio)


@router.post("/studio/plan")
def plan(settings: SettingsDep, request: Annotated[PlanRequest, Body()]) -> dict[str, Any]:
    """The pyramid, estimate and limits of a job on an image of this size (422 with the
    API's own message when the parameters are invalid)."""
    (params,) = parse_params(request.task, json.dumps(request.params), None, settings.default_mode)
    sizes = {"source": [(request.height, request.width)], **request.sizes}
    if request.task == Task.collage and "sources" in sizes:
        check_source_count(len(sizes["sources"]))
    try:
        shape = input_shape(request.task, sizes)
    except KeyError as missing:  # the page asks before the image is chosen
        raise InvalidRequest(
            f"`sizes`: the plan of `{request.task}` needs the size of `{missing.args[0]}`"
        ) from None
    depth = (
        params.depth
        if params.depth is not None
        else _auto_depth(params, request.task, shape, request.hole)
    )
    coarsest = level_shape(shape, params.ratio, depth)
    problems = []
    every = [size for shapes in sizes.values() for size in shapes]
    if any(max(s) > settings.max_side or s[0] * s[1] > settings.max_pixels for s in every):
        problems.append(
            f"the image is over the limits ({settings.max_side} px a side, "
            f"{settings.max_pixels} pixels)"
        )
    if min(coarsest) < params.patch_size:
        problems.append(
            f"too small for depth {depth}: the coarsest level ({describe_size(coarsest)}) "
            f"is smaller than one {params.patch_size}x{params.patch_size} patch"
        )
    units = work(params, shape, request.samples)
    if units > settings.max_job_work:
        problems.append(
            f"estimated at {units:.0f} megapixel-iterations, over the limit of "
            f"{settings.max_job_work:g}"
        )
    return {
        "depth": depth,
        "levels": depth + 1,
        "coarsest": coarsest,
        "output": output_shape(params, shape),
        "estimate": estimate(params, shape, request.samples),
        "problems": problems,
    }
