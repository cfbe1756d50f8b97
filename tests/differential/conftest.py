"""The suite-owned redis-server for the differential test (one per session, no persistence)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from redis_server import running_redis_server


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    with running_redis_server("tests/differential") as port:
        yield f"redis://127.0.0.1:{port}/0"
