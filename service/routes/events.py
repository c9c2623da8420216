"""`GET /v1/jobs/{id}/events`: a job as server-sent events, until it ends.

Events: `job` (the whole job: first, and at every status change), `progress` (the
`progress` object, at most every 0.25 s and at each level), `preview` (a finished
pyramid level of a sample: sample, level, levels, url; jobs submitted with
`previews=true`), and `done` (the job ended; the stream closes). The stream subscribes
to the job's Redis channel before it reads the record, so nothing between the two is
lost; a preview may arrive twice (in the first `job` event and as a `preview`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from gpnn.service.deps import LedgerDep, OwnerDep
from gpnn.service.routes.jobs import ERRORS, JobId, load_owned_job
from gpnn.worker import keys
from gpnn.worker.exceptions import UnknownJob
from gpnn.worker.ledger import Ledger

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])

# A comment line this often keeps proxies from closing a quiet stream.
KEEPALIVE_S = 15.0


def _event(name: str, data: Any) -> str:
    return f"event: {name}\ndata: {json.dumps(data)}\n\n"


@router.get(
    "/{job_id}/events",
    responses={
        **ERRORS,
        200: {"content": {"text/event-stream": {}}, "description": "Server-sent events."},
    },
    response_class=StreamingResponse,
    summary="Follow a job: status changes, progress and level previews as server-sent events",
)
async def job_events(
    job_id: JobId, request: Request, ledger: LedgerDep, owner: OwnerDep
) -> StreamingResponse:
    await asyncio.to_thread(load_owned_job, ledger, job_id, owner)
    pubsub = request.app.state.async_redis.pubsub(ignore_subscribe_messages=True)
    await pubsub.subscribe(keys.job_events_channel(job_id))
    return StreamingResponse(
        _stream(job_id, request, ledger, pubsub),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _stream(job_id: str, request: Request, ledger: Ledger, pubsub) -> AsyncIterator[str]:
    try:
        record = await asyncio.to_thread(ledger.get_job, job_id)
        yield _event("job", record.public())
        quiet_since = time.monotonic()
        while not record.status.is_terminal():
            if await request.is_disconnected():
                return
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            if message is None:
                if time.monotonic() - quiet_since > KEEPALIVE_S:
                    quiet_since = time.monotonic()
                    yield ": keep-alive\n\n"
                continue
            quiet_since = time.monotonic()
            event = json.loads(message["data"])
            if event["type"] == "status":
                record = await asyncio.to_thread(ledger.get_job, job_id)
                yield _event("job", record.public())
            elif event["type"] in ("progress", "preview"):
                yield _event(event["type"], event[event["type"]])
        yield _event("done", {"id": job_id, "status": record.status.value})
    except UnknownJob:
        yield _event("done", {"id": job_id, "status": "expired"})
    finally:
        with contextlib.suppress(Exception):
            await pubsub.aclose()
