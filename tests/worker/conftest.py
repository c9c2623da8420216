"""Fixtures of the worker tests: the service tests' real redis-server, an empty database."""

from __future__ import annotations

import pytest
from redis import Redis

from ..service.conftest import redis_url  # noqa: F401  (the session's redis-server)


@pytest.fixture
def redis(redis_url) -> Redis:  # noqa: F811
    connection = Redis.from_url(redis_url)
    connection.flushdb()
    yield connection
    connection.close()
