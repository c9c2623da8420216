"""Domain errors of the API and their HTTP answers (mapped once, in handlers)."""

from __future__ import annotations

import logging
from collections.abc import Callable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from redis.exceptions import RedisError

from gpnn.core.params import describe_errors
from gpnn.store import ObjectNotFound, StoreError
from gpnn.worker.exceptions import UnknownJob
from gpnn.worker.imagecheck import ImageTooLarge, UnreadableImage

logger = logging.getLogger(__name__)


class ApiError(Exception):
    """An error with its HTTP status and a one-line message."""

    status_code = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidRequest(ApiError):
    status_code = 422


class TooLarge(ApiError):
    status_code = 413


class NotFound(ApiError):
    status_code = 404


class Conflict(ApiError):
    status_code = 409


class Unauthorized(ApiError):
    status_code = 401


class Forbidden(ApiError):
    status_code = 403


class RateLimited(ApiError):
    status_code = 429

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


def _answer(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": message}, status_code=status, headers=headers)


def install_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(request: Request, error: ApiError) -> JSONResponse:
        headers = None
        if isinstance(error, Unauthorized):
            headers = {"WWW-Authenticate": "Bearer"}
        elif isinstance(error, RateLimited):
            headers = {"Retry-After": str(error.retry_after_s)}
        return _answer(error.status_code, error.message, headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, error: RequestValidationError) -> JSONResponse:
        # FastAPI's own checks of a request's fields answer like ours: one string naming
        # each field (without where it was: body, query); a malformed id names nothing.
        items = [{**item, "loc": item["loc"][1:]} for item in error.errors()]
        paths = [item for item in error.errors() if item["loc"][0] == "path"]
        if paths:
            return _answer(404, f"no such {paths[0]['loc'][-1]} `{paths[0]['input']}`")
        return _answer(422, describe_errors(items))

    for error_type, (status, message) in _ANSWERS.items():
        app.add_exception_handler(error_type, _answer_with(status, message))

    for error_type, (label, message) in _UNAVAILABLE.items():
        app.add_exception_handler(error_type, _unavailable(label, message))


# Errors raised below the API: the status each is answered with and its message.
_ANSWERS: dict[type[Exception], tuple[int, Callable[[Exception], str]]] = {
    ImageTooLarge: (413, str),
    UnreadableImage: (422, str),
    UnknownJob: (404, lambda e: f"no job or batch `{e.args[0]}` (unknown or expired)"),
    ObjectNotFound: (404, lambda e: f"`{e.args[0]}` is not in the store (expired or deleted)"),
}
# Services the API needs: while one is down a request is answered 503, retry in 5 s
# (the error logged after its label).
_UNAVAILABLE: dict[type[Exception], tuple[str, Callable[[Exception], str]]] = {
    StoreError: ("store error", lambda e: f"the object store is unavailable: {e}"),
    RedisError: ("redis error", lambda e: "the queue (Redis) is unavailable"),
}


def _answer_with(status: int, message: Callable[[Exception], str]):
    async def handler(request: Request, error: Exception) -> JSONResponse:
        return _answer(status, message(error))

    return handler


def _unavailable(label: str, message: Callable[[Exception], str]):
    async def handler(request: Request, error: Exception) -> JSONResponse:
        logger.error("%s: %s", label, error)
        return _answer(503, message(error), {"Retry-After": "5"})

    return handler
