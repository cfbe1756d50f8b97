"""`flowcraft worker --health-port` and graceful shutdown, on real worker processes and a real
redis-server: 503 while Redis is unreachable, 200 once consuming, 503 again when the server is
stopped; on SIGTERM `/readyz` turns 503 while `/healthz` stays 200, the in-flight node finishes
(within `--grace-period`) and the process exits 0, and another worker completes the run; a
grace period that runs out cancels the node, whose job another worker runs again."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from bullmq_processes import adapter
from obs_nodes import BLUEPRINTS
from obs_support import ObsWorker, aget, get, ports, until
from redis_server import running_redis_server

from flowcraft_bullmq.health import WorkerHealth

LOCAL = ("--http-host", "127.0.0.1")
#: A killed or cancelled job is redelivered quickly.
FAST = ("--lock-duration", "2", "--stalled-interval", "1")


async def test_health_follows_the_redis_connection(
    tmp_path: Path, spawn: Callable[..., ObsWorker]
) -> None:
    redis_port, health_port = ports(2)
    redis_url = f"redis://127.0.0.1:{redis_port}/0"
    base = f"http://127.0.0.1:{health_port}"
    worker = spawn(redis_url, "hc", "--health-port", str(health_port), *LOCAL)
    # No Redis yet: the worker keeps trying to connect, and its probes say so.
    await until(lambda: _is(base + "/healthz", 503), what="503 before Redis is up")
    assert get(base + "/readyz")[0] == 503
    with running_redis_server("tests/observability health", port=redis_port):
        await worker.ready()
        status, body = await aget(base + "/healthz")
        assert status == 200, body
        assert json.loads(body) == {"status": "ok", "phase": "consuming", "redis": "ok"}
        assert (await aget(base + "/readyz"))[0] == 200
        assert (await aget(base + "/nope"))[0] == 404
    # The server is gone: both probes fail, naming the cause.
    await until(lambda: _is(base + "/healthz", 503), what="503 once Redis is stopped")
    status, body = await aget(base + "/readyz")
    assert status == 503
    assert json.loads(body)["redis"] != "ok"
    assert worker.proc.poll() is None  # unhealthy, not dead: the orchestrator decides


async def _is(url: str, expected: int) -> bool:
    return (await aget(url, within=3))[0] == expected


async def test_a_ping_that_hangs_counts_as_redis_lost() -> None:
    async def hang() -> None:
        await asyncio.sleep(10)

    health = WorkerHealth(hang, ping_timeout_s=0.05)
    health.phase = "consuming"
    response = await health.healthz()
    assert response.status == 503
    assert json.loads(response.body)["redis"].startswith("TimeoutError")


def _lines(trace: Path) -> list[tuple[int, str, str]]:
    rows = [line.split() for line in trace.read_text().splitlines()] if trace.exists() else []
    return [(int(pid), node, what) for pid, node, what in rows]


async def test_sigterm_finishes_the_in_flight_node_and_exits_0(
    redis_url: str, prefix: str, tmp_path: Path, spawn: Callable[..., ObsWorker]
) -> None:
    (health_port,) = ports(1)
    base = f"http://127.0.0.1:{health_port}"
    trace = tmp_path / "pids.txt"
    first = spawn(
        redis_url, prefix, "--health-port", str(health_port), "--grace-period", "20", *LOCAL
    )
    await first.ready()
    async with adapter(redis_url, prefix, blueprints=BLUEPRINTS, consume=False) as a:
        run_id = await a.start_run("slow")  # s sleeps 3 s, then t
        await until(lambda: _started(trace, "s"), what="node s to start")
        signalled = time.monotonic()
        first.proc.send_signal(signal.SIGTERM)
        # Draining: not ready for more work, still alive.
        await until(lambda: _is(base + "/readyz", 503), what="readyz 503 while draining")
        assert (await aget(base + "/healthz"))[0] == 200
        assert first.wait(timeout=30) == 0, first.stderr
        assert time.monotonic() - signalled >= 1.5  # it waited for the node (3 s in all)
        assert (first.proc.pid, "s", "end") in _lines(trace)
        assert "finishing in-flight activations" in first.stderr
        second = spawn(redis_url, prefix)
        await second.ready()
        result = await a.wait_for_result(run_id, timeout_s=30)
    assert result.status == "completed"
    assert result.outputs == {"s": "s", "t": "t"}
    runs = [(pid, node) for pid, node, what in _lines(trace) if what == "start"]
    assert runs == [(first.proc.pid, "s"), (second.proc.pid, "t")]  # s ran once


async def test_a_grace_period_that_runs_out_cancels_the_node_for_another_worker(
    redis_url: str, prefix: str, tmp_path: Path, spawn: Callable[..., ObsWorker]
) -> None:
    trace = tmp_path / "pids.txt"
    first = spawn(redis_url, prefix, "--grace-period", "0.5", *FAST)
    await first.ready()
    async with adapter(redis_url, prefix, blueprints=BLUEPRINTS, consume=False) as a:
        run_id = await a.start_run("slow")
        await until(lambda: _started(trace, "s"), what="node s to start")
        first.proc.send_signal(signal.SIGTERM)
        assert first.wait(timeout=30) == 0, first.stderr
        assert (first.proc.pid, "s", "end") not in _lines(trace)  # cancelled, not waited for
        assert "cancelling in-flight activations" in first.stderr
        second = spawn(redis_url, prefix, *FAST)
        await second.ready()
        result = await a.wait_for_result(run_id, timeout_s=40)
    assert result.status == "completed"
    starts = [(pid, node) for pid, node, what in _lines(trace) if what == "start"]
    assert starts == [(first.proc.pid, "s"), (second.proc.pid, "s"), (second.proc.pid, "t")]


async def _started(trace: Path, node_id: str) -> bool:
    return any(node == node_id and what == "start" for _, node, what in _lines(trace))


@pytest.mark.parametrize("option", ["--health-port", "--metrics-port"])
def test_a_port_in_use_is_a_clear_error(
    option: str, redis_url: str, blueprint_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import socket

    from flowcraft_core.cli import main

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code = main(
            [
                "worker", "--redis", redis_url, "--blueprints", str(blueprint_dir),
                "--registry", "obs_nodes:registry", option, str(port), *LOCAL,
            ]
        )  # fmt: skip
    assert code == 2  # a usage error: the port is the operator's choice
    assert f"cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err
