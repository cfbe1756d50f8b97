"""A real redis-server for the store tests, owned by the suite (no fakes, no skips).

One server per session on a free loopback port, without persistence; each test gets a fresh
`redis.asyncio` client (decode_responses=True, socket_timeout=None as BullMQ needs on redis-py 8)
on a flushed database. If `redis-server` is missing, every test here fails with a clear message.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator

import pytest
import redis
from redis.asyncio import Redis


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def redis_port() -> Iterator[int]:
    """Port of a throwaway `redis-server --save '' --appendonly no` on 127.0.0.1."""
    binary = os.environ.get("FLOWCRAFT_REDIS_SERVER") or shutil.which("redis-server")
    if binary is None:
        pytest.fail(
            "redis-server is required by tests/bullmq and was not found on PATH: install it "
            "(e.g. 'apt-get install redis-server') or set FLOWCRAFT_REDIS_SERVER",
            pytrace=False,
        )
    port = _free_port()
    workdir = tempfile.mkdtemp(prefix="flowcraft-store-redis-")
    log_path = os.path.join(workdir, "redis.log")
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly"]
            + ["no", "--dir", workdir],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        probe = redis.Redis(host="127.0.0.1", port=port)
        deadline = time.monotonic() + 10
        while True:
            try:
                probe.ping()
                break
            except redis.ConnectionError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    with open(log_path, "rb") as f:
                        output = f.read().decode(errors="replace")
                    pytest.fail(f"redis-server did not start on {port}:\n{output}", pytrace=False)
                time.sleep(0.02)
        probe.close()
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(workdir, ignore_errors=True)


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
