"""`create_app(settings)`: the FastAPI application of the batch service."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline
from redis import Redis
from redis.asyncio import Redis as AsyncRedis

from gpnn.config import Settings, get_settings
from gpnn.service.errors import install_handlers
from gpnn.service.limits import BodySizeLimit
from gpnn.service.routes import batches, events, health, jobs, listing
from gpnn.service.studio import routes as studio
from gpnn.store.keys import SERVICE_PREFIXES
from gpnn.worker.ledger import Ledger

logger = logging.getLogger(__name__)


async def _expire_outputs(ledger: Ledger, settings: Settings) -> None:
    """Delete outputs older than the result TTL, every `cleanup_interval_s`."""
    while True:
        for prefix in SERVICE_PREFIXES:
            try:
                count = await asyncio.to_thread(
                    ledger.store.delete_expired, prefix, settings.result_ttl_s
                )
                if count:
                    logger.info("deleted %d expired objects under %s", count, prefix)
            except Exception as error:
                logger.warning("expiry of %s failed: %s", prefix, error)
        await asyncio.sleep(settings.cleanup_interval_s)


def create_app(settings: Settings | None = None) -> FastAPI:
    """The API; `settings` default to the environment's (`get_settings()`)."""
    settings = settings or get_settings()
    if not settings.redis_url:
        raise ValueError("the API needs REDIS_URL (or run `gpnn serve` for the embedded one)")

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(_expire_outputs(app.state.ledger, settings))
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            app.state.ledger.redis.close()
            await app.state.async_redis.aclose()

    # The /docs and /redoc pages load their scripts from the installed package, not a
    # CDN, so they work on a machine without internet.
    app = FastAPIOffline(
        title="gpnn",
        version="1",
        summary="GPNN single-image generation as a batch service.",
        description="Submit jobs and batches, poll them, download the outputs. "
        "Parameters are the engine's own (`*Params` schemas).",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.ledger = Ledger(
        Redis.from_url(settings.redis_url, socket_timeout=10, socket_connect_timeout=5),
        settings,
    )
    # Event streams wait on pub/sub without holding a thread each.
    app.state.async_redis = AsyncRedis.from_url(settings.redis_url, socket_connect_timeout=5)
    install_handlers(app)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_upload_bytes)
    app.include_router(health.router)
    app.include_router(jobs.router)
    app.include_router(batches.router)
    app.include_router(listing.router)
    app.include_router(events.router)
    app.include_router(studio.router)
    studio.mount_static(app)
    return app
