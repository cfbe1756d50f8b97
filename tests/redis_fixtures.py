"""The three fixtures of a test directory that talks to the suite's redis-server: its server
URL (one per session), a key prefix per test, and a client. A conftest binds them with
`redis_url, prefix, client = redis_fixtures("tests/<dir>", "<tag>")`."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from redis.asyncio import Redis
from redis_server import running_redis_server


def redis_fixtures(purpose: str, tag: str) -> tuple[Callable[..., Any], ...]:
    @pytest.fixture(scope="session")
    def redis_url() -> Iterator[str]:
        with running_redis_server(purpose) as port:
            yield f"redis://127.0.0.1:{port}/0"

    @pytest.fixture
    def prefix() -> str:
        return tag + uuid.uuid4().hex[:10]

    @pytest.fixture
    async def client(redis_url: str) -> AsyncIterator[Redis]:
        instance = Redis.from_url(redis_url, decode_responses=True, socket_timeout=None)
        try:
            yield instance
        finally:
            await instance.aclose()

    return redis_url, prefix, client


__all__ = ["redis_fixtures"]
