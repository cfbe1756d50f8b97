"""Redis unreachable at start: the client API raises at once with a message naming the server
(password masked); `flowcraft worker` retries with backoff for --connect-timeout seconds, then
exits 5 with one line; a worker started before its Redis connects once Redis is up. (A wrong
password or certificate is never retried: tests/security.)"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from pathlib import Path

import pytest
import redis.asyncio as redis
from bullmq_processes import WorkerProcess, adapter
from redis_server import free_port, running_redis_server

HERE = Path(__file__).parent
CHAIN = {
    "id": "chain",
    "nodes": [{"id": f"n{i}", "uses": "step", "params": {"seconds": 0}} for i in range(3)],
    "edges": [{"source": f"n{i}", "target": f"n{i + 1}"} for i in range(2)],
}


@pytest.fixture(scope="module")
def blueprint_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("blueprints")
    (directory / "chain.json").write_text(json.dumps(CHAIN), encoding="utf-8")
    return directory


def _worker(url: str, blueprint_dir: Path, tmp_path: Path, *extra: str) -> WorkerProcess:
    args = ["--redis", url, "--registry", "failure_nodes:registry"]
    args += ["--blueprints", str(blueprint_dir), "--prefix", "unreach", *extra]
    return WorkerProcess(args, tmp_path / "trace.txt", HERE)


def _until_retrying(worker: WorkerProcess) -> None:
    """Wait (30 s at most) until the worker has logged a retry and is still running."""
    deadline = time.monotonic() + 30
    while not any("retrying in" in line for line in worker.lines):
        assert time.monotonic() < deadline and worker.proc.poll() is None, worker.stderr
        time.sleep(0.05)


async def test_the_client_api_raises_a_connection_error_naming_the_server() -> None:
    url = f"redis://app:s3cret@127.0.0.1:{free_port()}/0"
    began = time.monotonic()
    with pytest.raises(redis.ConnectionError) as caught:
        async with adapter(url, "x", blueprints=[CHAIN], consume=False):
            pass
    message = str(caught.value)
    assert message.startswith(f"Redis at redis://app:***@127.0.0.1:{url.split(':')[3]}")
    assert "s3cret" not in message and "111" in message  # ECONNREFUSED
    assert time.monotonic() - began < 5  # one attempt, no retries


def test_the_worker_retries_then_exits_5_with_one_line(blueprint_dir: Path, tmp_path: Path) -> None:
    url = f"redis://:s3cret@127.0.0.1:{free_port()}/0"
    began = time.monotonic()
    worker = _worker(url, blueprint_dir, tmp_path, "--connect-timeout", "1.5")
    try:
        code = worker.wait(timeout=30)
    finally:
        worker.kill()
    elapsed = time.monotonic() - began
    err = worker.stderr
    assert code == 5, err
    assert "s3cret" not in err and "Traceback" not in err
    retries = [line for line in err.splitlines() if "retrying in" in line]
    assert len(retries) >= 2, err  # backoff: 0.25 s, 0.5 s, 1 s ... within 1.5 s
    assert "redis://:***@127.0.0.1" in retries[0]
    last = err.splitlines()[-1]
    assert last.startswith("flowcraft: error: Redis at redis://:***@127.0.0.1:"), err
    assert "still unreachable after retrying for 1.5s" in last
    assert 1.5 <= elapsed < 25


def test_a_worker_started_before_redis_connects_when_it_comes_up_and_warns_of_eviction(
    blueprint_dir: Path, tmp_path: Path
) -> None:
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    worker = _worker(url, blueprint_dir, tmp_path, "--connect-timeout", "60")
    try:
        _until_retrying(worker)
        # This Redis may evict keys: the worker says so, loudly, and still works.
        evicting = ["--maxmemory-policy", "allkeys-lru"]
        with running_redis_server("a late Redis", port=port, args=evicting):
            worker.wait_ready(timeout=30)

            async def run() -> str:
                async with adapter(url, "unreach", blueprints=[CHAIN], consume=False) as a:
                    run_id = await a.start_run("chain")
                    return str((await a.wait_for_result(run_id, timeout_s=30)).status)

            assert asyncio.run(run()) == "completed"
    finally:
        worker.kill()
    assert "Traceback" not in worker.stderr
    warnings = [line for line in worker.lines if "maxmemory-policy is 'allkeys-lru'" in line]
    assert warnings and warnings[0].startswith("WARNING "), worker.stderr
    assert "must be 'noeviction'" in warnings[0]


def test_sigterm_while_retrying_stops_the_worker_at_once(
    blueprint_dir: Path, tmp_path: Path
) -> None:
    worker = _worker(f"redis://127.0.0.1:{free_port()}/0", blueprint_dir, tmp_path)
    try:
        _until_retrying(worker)
        began = time.monotonic()
        worker.proc.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=10) == 0, worker.stderr
        assert time.monotonic() - began < 5
    finally:
        worker.kill()
    assert "Traceback" not in worker.stderr
