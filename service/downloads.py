"""Downloads: one stored object as a response, or many at once as a zip."""

from __future__ import annotations

import mimetypes
import tempfile
import zipfile
from collections.abc import Iterable, Iterator

from fastapi import Response
from fastapi.responses import StreamingResponse

from gpnn.service.errors import NotFound
from gpnn.store import ObjectNotFound

# Zips up to this size are built in memory, larger ones in a temporary file.
SPOOL_IN_MEMORY_BYTES = 64 * 2**20
CHUNK_BYTES = 2**20


def stored_object(
    store, key: str, *, gone: str, media_type: str | None = None, **headers: str
) -> Response:
    """The object at `key` (its media type from its name unless given); 404 saying
    `gone` when the store no longer has it."""
    try:
        data = store.get(key)
    except ObjectNotFound:
        raise NotFound(gone) from None
    media_type = media_type or mimetypes.guess_type(key)[0] or "application/octet-stream"
    return Response(data, media_type=media_type, headers=headers or None)


def zip_response(members: Iterable[tuple[str, bytes]], filename: str) -> StreamingResponse:
    """A zip of `members` (name in the zip, bytes), as an attachment named `filename`;
    never held whole in memory. Stored, not deflated: the members are PNGs."""
    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY_BYTES)  # noqa: SIM115
    with zipfile.ZipFile(spool, "w", zipfile.ZIP_STORED) as bundle:
        for name, data in members:
            bundle.writestr(name, data)
    size = spool.tell()
    spool.seek(0)
    return StreamingResponse(
        _chunks(spool),
        media_type="application/zip",
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Content-Length": str(size),
        },
    )


def _chunks(spool) -> Iterator[bytes]:
    with spool:
        while chunk := spool.read(CHUNK_BYTES):
            yield chunk
