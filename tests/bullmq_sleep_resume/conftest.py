"""A real redis-server for the durable sleep and buffered resume tests: one per session, on a
free loopback port, without persistence. No fakes and no skips: if `redis-server` is missing,
the tests fail loudly. Each test isolates itself with its own key prefix."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from redis_server import running_redis_server


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """`redis://127.0.0.1:<port>/0` of a throwaway redis-server."""
    with running_redis_server("tests/bullmq_sleep_resume") as port:
        yield f"redis://127.0.0.1:{port}/0"


@pytest.fixture
def prefix() -> str:
    """A key prefix of its own for each test (BullMQ queues and run state)."""
    return "s" + uuid.uuid4().hex[:10]
