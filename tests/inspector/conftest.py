"""A real redis-server for the inspector tests (one per session) and a key prefix per test."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from redis_server import running_redis_server


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    with running_redis_server("tests/inspector") as port:
        yield f"redis://127.0.0.1:{port}/0"


@pytest.fixture
def prefix() -> str:
    return "i" + uuid.uuid4().hex[:10]
