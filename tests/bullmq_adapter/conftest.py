"""A real redis-server for the adapter tests: one per session, on a free loopback port.

No fakes and no skips: if `redis-server` is missing the tests fail, loudly. Each test isolates
itself with its own key prefix (see `prefix`), so the server is never flushed under a worker.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from redis_server import running_redis_server


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """`redis://127.0.0.1:<port>/0` of a throwaway redis-server (no persistence)."""
    with running_redis_server("tests/bullmq_adapter") as port:
        yield f"redis://127.0.0.1:{port}/0"


@pytest.fixture
def prefix() -> str:
    """A key prefix of its own for each test (BullMQ queues and run state)."""
    return "t" + uuid.uuid4().hex[:10]
