"""A real redis-server for the Redis failure-mode tests (one per session, no persistence); the
tests that stop and restart Redis start their own."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from redis_server import running_redis_server


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    with running_redis_server("tests/redis_failures") as port:
        yield f"redis://127.0.0.1:{port}/0"


@pytest.fixture
def prefix() -> str:
    """A key prefix of its own for each test."""
    return "rf" + uuid.uuid4().hex[:10]
