"""`GET /v1/jobs` and `GET /v1/batches`: an owner's work, newest first, page by page.

Each owner has a sorted set of job ids and one of batch ids scored by creation time
(written when they are created; `gpnn.worker.keys.owner_jobs_key`). A page reads the
next ids below the cursor, their records, and keeps those matching the filters; ids
whose records expired are dropped from the index as they are met. A batch's jobs are
listed through the batch (its `jobs`), not here.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from redis import Redis

from gpnn.core.params import Task
from gpnn.service.deps import LedgerDep, OwnerDep
from gpnn.service.errors import InvalidRequest
from gpnn.service.routes.jobs import ERRORS
from gpnn.service.schemas import BatchList, BatchPublic, JobList, JobPublic
from gpnn.worker import keys
from gpnn.worker.exceptions import UnknownJob
from gpnn.worker.ledger import Ledger
from gpnn.worker.status import JobStatus

router = APIRouter(prefix="/v1", tags=["listing"])

# Ids read from an index per request at most (filters that match little end a page early;
# its `next` goes on from where the reading stopped).
MAX_SCANNED = 1000
CHUNK = 100
CURSOR = re.compile(r"^(\d+)-([0-9a-f]{32})$")

Limit = Annotated[int, Query(ge=1, le=100, description="Items per page.")]
Cursor = Annotated[
    str | None, Query(max_length=64, description="`next` of the previous page (opaque).")
]
Statuses = Annotated[
    list[JobStatus] | None, Query(description="Only these statuses (repeat to give several).")
]
TaskFilter = Annotated[Task | None, Query(description="Only this application.")]
After = Annotated[datetime | None, Query(description="Created at or after (ISO 8601).")]
Before = Annotated[datetime | None, Query(description="Created before (ISO 8601).")]


def _position(cursor: str | None, created_before: datetime | None) -> tuple[int, str] | None:
    """Where a page starts: strictly below this (score, id)."""
    position = None
    if cursor:
        match = CURSOR.match(cursor)
        if not match:
            raise InvalidRequest("`cursor`: not a cursor of this API (take `next` of a page)")
        position = (int(match.group(1)), match.group(2))
    if created_before is not None:
        bound = (_ms(created_before), "")  # "" sorts below every id: all of that ms excluded
        position = bound if position is None or bound < position else position
    return position


def _ms(moment: datetime) -> int:
    if moment.tzinfo is None:
        raise InvalidRequest("created times need a time zone (e.g. 2026-01-31T12:00:00Z)")
    return round(moment.timestamp() * 1000)


class PageQuery:
    """The query of a listing: page size, cursor and filters (one set for jobs and
    batches)."""

    def __init__(
        self,
        limit: Limit = 20,
        cursor: Cursor = None,
        status: Statuses = None,
        task: TaskFilter = None,
        created_after: After = None,
        created_before: Before = None,
    ) -> None:
        self.limit, self.status, self.task = limit, status, task
        self.position = _position(cursor, created_before)
        self.since_ms = _ms(created_after) if created_after else None

    def keep(self, public: dict[str, Any]) -> bool:
        """Whether a job or batch (its public shape) matches the filters."""
        return (not self.status or public["status"] in self.status) and (
            self.task is None or public["task"] == self.task
        )


def _index_page(
    redis: Redis,
    key: str,
    *,
    limit: int,
    before: tuple[int, str] | None = None,
    since_ms: int | None = None,
) -> list[tuple[str, int]]:
    """Up to `limit` (id, score) of an owner index, newest first, strictly after the
    position `before` (score, id) and not older than `since_ms`."""
    top = before[0] if before else "+inf"
    bottom = since_ms if since_ms is not None else "-inf"
    found: list[tuple[str, int]] = []
    offset = 0
    while len(found) < limit:
        rows = redis.zrevrangebyscore(key, top, bottom, start=offset, num=limit, withscores=True)
        if not rows:
            break
        offset += len(rows)
        for member, score in rows:
            item = (member.decode(), int(score))
            if before and item[1] == before[0] and item[0] >= before[1]:
                continue
            found.append(item)
            if len(found) == limit:
                break
    return found


def _page(
    ledger: Ledger,
    key: str,
    load: Callable[[str], dict[str, Any] | None],
    query: PageQuery,
) -> tuple[list[dict[str, Any]], str | None]:
    """Up to `query.limit` kept items (public shapes, as `load` gives them) below its
    position, and the next page's cursor."""
    limit, position, since_ms = query.limit, query.position, query.since_ms
    results: list[dict[str, Any]] = []
    scanned = 0
    while len(results) < limit and scanned < MAX_SCANNED:
        chunk = _index_page(ledger.redis, key, limit=CHUNK, before=position, since_ms=since_ms)
        if not chunk:
            return results, None
        for item_id, score in chunk:
            scanned += 1
            position = (score, item_id)
            record = load(item_id)
            if record is None:
                ledger.redis.zrem(key, item_id)  # expired
            elif query.keep(record):
                results.append(record)
                if len(results) == limit:
                    break
    more = _index_page(ledger.redis, key, limit=1, before=position, since_ms=since_ms)
    return results, f"{position[0]}-{position[1]}" if more and position else None


def _next_url(request: Request, cursor: str | None) -> str | None:
    if cursor is None:
        return None
    url = request.url.include_query_params(cursor=cursor)
    return f"{url.path}?{url.query}"


Page = Annotated[PageQuery, Depends()]


@router.get("/jobs", response_model=JobList, responses=ERRORS, summary="List your jobs")
def list_jobs(request: Request, ledger: LedgerDep, owner: OwnerDep, query: Page) -> JobList:
    """Your jobs submitted with `POST /v1/jobs`, newest first (a batch's jobs are in the
    batch's `jobs`). Follow `next` for older ones."""

    def load(job_id: str) -> dict[str, Any] | None:
        try:
            return ledger.get_job(job_id).public()
        except UnknownJob:
            return None

    jobs, next_cursor = _page(ledger, keys.owner_jobs_key(owner), load, query)
    return JobList(
        results=[JobPublic.model_validate(j) for j in jobs],
        next=_next_url(request, next_cursor),
    )


@router.get("/batches", response_model=BatchList, responses=ERRORS, summary="List your batches")
def list_batches(request: Request, ledger: LedgerDep, owner: OwnerDep, query: Page) -> BatchList:
    """Your batches, newest first, with their counters. Follow `next` for older ones."""

    def load(batch_id: str) -> dict[str, Any] | None:
        try:
            record = ledger.get_batch(batch_id)
        except UnknownJob:
            return None
        fraction = None
        if not record.status.is_terminal():
            fraction = ledger.batch_progress(record.job_ids)
        return record.public(fraction)

    batches, next_cursor = _page(ledger, keys.owner_batches_key(owner), load, query)
    return BatchList(
        results=[BatchPublic.model_validate(b) for b in batches],
        next=_next_url(request, next_cursor),
    )
