"""A real redis-server for the durable sleep and buffered resume tests: one per session, on a
free loopback port, without persistence. No fakes and no skips: if `redis-server` is missing,
the tests fail loudly. Each test isolates itself with its own key prefix."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator

import pytest
import redis


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """`redis://127.0.0.1:<port>/0` of a throwaway redis-server."""
    binary = os.environ.get("FLOWCRAFT_REDIS_SERVER") or shutil.which("redis-server")
    if binary is None:
        pytest.fail(
            "redis-server is required by tests/bullmq_sleep_resume (install it, e.g. "
            "'apt-get install redis-server', or set FLOWCRAFT_REDIS_SERVER)",
            pytrace=False,
        )
    port = _free_port()
    workdir = tempfile.mkdtemp(prefix="flowcraft-sleep-redis-")
    log_path = os.path.join(workdir, "redis.log")
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly"]
            + ["no", "--dir", workdir],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"redis://127.0.0.1:{port}/0"
    try:
        probe = redis.Redis.from_url(url)
        deadline = time.monotonic() + 10
        while True:
            try:
                probe.ping()
                break
            except redis.ConnectionError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    with open(log_path, "rb") as f:
                        output = f.read().decode(errors="replace")
                    pytest.fail(f"redis-server did not start:\n{output}", pytrace=False)
                time.sleep(0.02)
        probe.close()
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def prefix() -> str:
    """A key prefix of its own for each test (BullMQ queues and run state)."""
    return "s" + uuid.uuid4().hex[:10]
