"""Dependencies of the routes, declared once as `Annotated` aliases."""

from __future__ import annotations

import hashlib
import hmac
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import (
    APIKeyCookie,
    APIKeyHeader,
    HTTPAuthorizationCredentials,
    HTTPBearer,
)

from gpnn.config import Settings
from gpnn.service.errors import Forbidden, NotFound, Unauthorized
from gpnn.worker.ledger import Ledger
from gpnn.worker.records import ANONYMOUS, BatchRecord, JobRecord

_api_key_header = APIKeyHeader(
    name="X-API-Key", auto_error=False, description="An API key (when keys are configured)."
)
_bearer = HTTPBearer(auto_error=False, description="`Authorization: Bearer <API key>`.")
# The studio page keeps the key in this cookie (SameSite=Strict) so that images, zips,
# reports and event streams open as plain links; it is honoured on GET and HEAD only, so
# a cookie can never submit or cancel anything.
KEY_COOKIE = "gpnn_key"
_cookie = APIKeyCookie(
    name=KEY_COOKIE, auto_error=False, description="The API key, for GET requests only."
)


def _settings(request: Request) -> Settings:
    return request.app.state.settings


def _ledger(request: Request) -> Ledger:
    return request.app.state.ledger


SettingsDep = Annotated[Settings, Depends(_settings)]
LedgerDep = Annotated[Ledger, Depends(_ledger)]


def owner_of_key(key: str) -> str:
    """The owner id stored with jobs: a digest, never the key itself."""
    return "key-" + hashlib.sha256(key.encode()).hexdigest()[:16]


def _owner(
    request: Request,
    settings: SettingsDep,
    api_key: Annotated[str | None, Security(_api_key_header)] = None,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)] = None,
    cookie: Annotated[str | None, Security(_cookie)] = None,
) -> str:
    """Who is calling: `anonymous` when no keys are configured, else the key's owner id."""
    if not settings.api_keys:
        return ANONYMOUS
    key = api_key or (bearer.credentials if bearer else None)
    if not key and request.method in ("GET", "HEAD"):
        key = cookie
    if not key:
        raise Unauthorized("an API key is required (X-API-Key or Authorization: Bearer)")
    for known in settings.api_keys:
        if hmac.compare_digest(key.encode(), known.get_secret_value().encode()):
            return owner_of_key(key)
    raise Forbidden("unknown API key")


OwnerDep = Annotated[str, Depends(_owner)]


def check_owner(record: JobRecord | BatchRecord, owner: str) -> None:
    """Another owner's job or batch answers 404, as if it did not exist."""
    if record.owner != owner:
        raise NotFound(f"no {record.kind} `{record.id}` (unknown or expired)")
