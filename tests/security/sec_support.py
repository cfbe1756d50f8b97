"""Helpers of the security tests: blueprints, and running one through a real `flowcraft worker`
subprocess given a Redis URL."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from bullmq_processes import WorkerProcess, adapter

HERE = Path(__file__).parent


def chain(blueprint_id: str, tag: str, length: int = 3) -> dict[str, Any]:
    """`length` nodes in a row, each appending `tag` to the list it was given."""
    nodes = [{"id": f"n{i}", "uses": "tag", "params": {"tag": tag}} for i in range(length)]
    edges = [{"source": f"n{i}", "target": f"n{i + 1}"} for i in range(length - 1)]
    return {"id": blueprint_id, "nodes": nodes, "edges": edges}


CHAIN = chain("chain", "x")
#: A sleep (a delayed BullMQ job) and a wait resumed by a client: every kind of job and key.
WAITS: dict[str, Any] = {
    "id": "waits",
    "nodes": [
        {"id": "a", "uses": "tag", "params": {"tag": "a"}},
        {"id": "nap", "uses": "sleep", "params": {"duration": "300ms"}},
        {"id": "ask", "uses": "wait"},
        {"id": "b", "uses": "tag", "params": {"tag": "b"}},
    ],
    "edges": [
        {"source": "a", "target": "nap"},
        {"source": "nap", "target": "ask"},
        {"source": "ask", "target": "b"},
    ],
}


def worker_process(
    url: str, blueprint_dir: Path, trace: Path, *extra: str, prefix: str = "sec"
) -> WorkerProcess:
    """`flowcraft worker --redis URL` with this directory's node module."""
    args = ["--redis", url, "--prefix", prefix, "--registry", "security_nodes:registry"]
    args += ["--blueprints", str(blueprint_dir), "--connect-timeout", "0", *extra]
    return WorkerProcess(args, trace, HERE)


async def run_chain(connection: Any, prefix: str = "sec") -> Any:
    """Start CHAIN from a client-only adapter and wait for its result."""
    async with adapter(connection, prefix, blueprints=[CHAIN], consume=False) as client:
        run_id = await client.start_run("chain")
        return await client.wait_for_result(run_id, timeout_s=30)


async def run_waits(connection: Any, prefix: str) -> Any:
    """Start WAITS, resume its wait once it is awaiting, and wait for its result."""
    async with adapter(connection, prefix, blueprints=[WAITS], consume=False) as client:
        run_id = await client.start_run("waits")
        deadline = asyncio.get_running_loop().time() + 30
        while await client.get_status(run_id) != "awaiting":
            assert asyncio.get_running_loop().time() < deadline, "never reached the wait"
            await asyncio.sleep(0.05)
        assert await client.resume_with_action(run_id, output=["r"]) == "resumed"
        return await client.wait_for_result(run_id, timeout_s=30)


def completes(worker: WorkerProcess, connection: Any, prefix: str = "sec") -> None:
    """The worker starts, and CHAIN runs to completion through it."""
    worker.wait_ready()
    result = asyncio.run(run_chain(connection, prefix))
    assert result.status == "completed", (result.errors, worker.stderr)
    assert result.context["_outputs.n2"] == ["x", "x", "x"]
