"""A real redis-server for the reconciler tests, owned by the suite: one per session, on a free
loopback port, without persistence. No fakes and no skips: without `redis-server` every test
here fails, loudly. Each test isolates itself with its own key prefix (`prefix`), so the server
is never flushed under a worker process.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
from redis.asyncio import Redis
from redis_server import running_redis_server


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """`redis://127.0.0.1:<port>/0` of a throwaway `redis-server --save '' --appendonly no`."""
    with running_redis_server("tests/bullmq_reconcile") as port:
        yield f"redis://127.0.0.1:{port}/0"


@pytest.fixture
def prefix() -> str:
    """A key prefix of its own for each test (BullMQ queue and run state)."""
    return "rc" + uuid.uuid4().hex[:10]


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[Redis]:
    """A client of the suite's server (decode_responses, socket_timeout=None for redis-py 8)."""
    instance = Redis.from_url(redis_url, decode_responses=True, socket_timeout=None)
    try:
        yield instance
    finally:
        await instance.aclose()
