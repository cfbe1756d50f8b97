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


def completes(worker: WorkerProcess, connection: Any, prefix: str = "sec") -> None:
    """The worker starts, and CHAIN runs to completion through it."""
    worker.wait_ready()
    result = asyncio.run(run_chain(connection, prefix))
    assert result.status == "completed", (result.errors, worker.stderr)
    assert result.context["_outputs.n2"] == ["x", "x", "x"]
