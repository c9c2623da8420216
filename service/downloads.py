"""Downloads of many files at once: a zip streamed to the client."""

from __future__ import annotations

import tempfile
import zipfile
from collections.abc import Iterable, Iterator

from fastapi.responses import StreamingResponse

# Zips up to this size are built in memory, larger ones in a temporary file.
SPOOL_IN_MEMORY_BYTES = 64 * 2**20
CHUNK_BYTES = 2**20


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
