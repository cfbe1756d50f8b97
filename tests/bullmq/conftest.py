"""A real redis-server for the store tests, owned by the suite (no fakes, no skips).

One server per session on a free loopback port, without persistence; each test gets a fresh
`redis.asyncio` client (decode_responses=True, socket_timeout=None as BullMQ needs on redis-py 8)
on a flushed database. If `redis-server` is missing, every test here fails with a clear message.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator

import pytest
from redis.asyncio import Redis
from redis_server import running_redis_server


@pytest.fixture(scope="session")
def redis_port() -> Iterator[int]:
    """Port of a throwaway `redis-server --save '' --appendonly no` on 127.0.0.1."""
    with running_redis_server("tests/bullmq") as port:
        yield port


@pytest.fixture(scope="session")
def make_client(redis_port: int) -> Callable[[], Redis]:
    """Makes a client of the suite's server (the caller closes it): for hypothesis tests,
    which cannot take function-scoped fixtures."""

    def make() -> Redis:
        return Redis(host="127.0.0.1", port=redis_port, decode_responses=True, socket_timeout=None)

    return make


@pytest.fixture
async def redis_client(make_client: Callable[[], Redis]) -> AsyncIterator[Redis]:
    """A fresh client on a flushed database."""
    client = make_client()
    await client.flushdb()
    try:
        yield client
    finally:
        await client.aclose()
