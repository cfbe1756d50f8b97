"""A real redis-server for the scheduling tests (queues, priorities, limiter, delayed and cron
starts, bulk starts): one per session, on a free loopback port, without persistence. Each
test isolates itself with its own key prefix."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from redis_server import running_redis_server


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    with running_redis_server("tests/scheduling") as port:
        yield f"redis://127.0.0.1:{port}/0"


@pytest.fixture
def prefix() -> str:
    return "q" + uuid.uuid4().hex[:10]
