"""The suite-owned redis-server: one throwaway server on a free loopback port, no persistence.

Shared by every Redis test directory's conftest. No fakes and no skips: a missing
`redis-server` fails the tests that need it with a message saying how to install it.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import redis


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def running_redis_server(purpose: str) -> Iterator[int]:
    """Start `redis-server --save '' --appendonly no` on 127.0.0.1; yield its port; stop it."""
    binary = os.environ.get("FLOWCRAFT_REDIS_SERVER") or shutil.which("redis-server")
    if binary is None:
        pytest.fail(
            f"redis-server is required by {purpose} and was not found on PATH: install it "
            "(e.g. 'apt-get install redis-server') or set FLOWCRAFT_REDIS_SERVER",
            pytrace=False,
        )
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="flowcraft-redis-")
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


__all__ = ["free_port", "running_redis_server"]
