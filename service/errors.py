"""Domain errors of the API and their HTTP answers (mapped once, in handlers)."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from redis.exceptions import RedisError

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

    @app.exception_handler(ImageTooLarge)
    async def too_large(request: Request, error: ImageTooLarge) -> JSONResponse:
        return _answer(413, str(error))

    @app.exception_handler(UnreadableImage)
    async def unreadable(request: Request, error: UnreadableImage) -> JSONResponse:
        return _answer(422, str(error))

    @app.exception_handler(UnknownJob)
    async def unknown(request: Request, error: UnknownJob) -> JSONResponse:
        return _answer(404, f"no job or batch `{error.args[0]}` (unknown or expired)")

    @app.exception_handler(ObjectNotFound)
    async def missing(request: Request, error: ObjectNotFound) -> JSONResponse:
        return _answer(404, f"`{error.args[0]}` is not in the store (expired or deleted)")

    @app.exception_handler(StoreError)
    async def store_down(request: Request, error: StoreError) -> JSONResponse:
        logger.error("store error: %s", error)
        return _answer(503, f"the object store is unavailable: {error}", {"Retry-After": "5"})

    @app.exception_handler(RedisError)
    async def redis_down(request: Request, error: RedisError) -> JSONResponse:
        logger.error("redis error: %s", error)
        return _answer(503, "the queue (Redis) is unavailable", {"Retry-After": "5"})
