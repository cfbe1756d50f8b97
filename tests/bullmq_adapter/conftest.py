"""A real redis-server for the adapter tests: one per session, on a free loopback port.

No fakes and no skips: if `redis-server` is missing the tests fail, loudly. Each test isolates
itself with its own key prefix (see `prefix`), so the server is never flushed under a worker.
"""

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
    """`redis://127.0.0.1:<port>/0` of a throwaway redis-server (no persistence)."""
    binary = os.environ.get("FLOWCRAFT_REDIS_SERVER") or shutil.which("redis-server")
    if binary is None:
        pytest.fail(
            "redis-server is required by tests/bullmq_adapter (install it, e.g. "
            "'apt-get install redis-server', or set FLOWCRAFT_REDIS_SERVER)",
            pytrace=False,
        )
    port = _free_port()
    workdir = tempfile.mkdtemp(prefix="flowcraft-redis-")
    log = open(os.path.join(workdir, "redis.log"), "wb")  # closed in the finally below
    proc = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            workdir,
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"redis://127.0.0.1:{port}/0"
    try:
        client = redis.Redis.from_url(url)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    log.flush()
                    with open(os.path.join(workdir, "redis.log"), "rb") as f:
                        output = f.read().decode(errors="replace")
                    pytest.fail(f"redis-server did not start:\n{output}", pytrace=False)
                time.sleep(0.05)
        client.close()
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def prefix() -> str:
    """A key prefix of its own for each test (BullMQ queues and run state)."""
    return "t" + uuid.uuid4().hex[:10]
