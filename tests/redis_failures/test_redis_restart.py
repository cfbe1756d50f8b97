"""Redis stops mid-run and comes back (AOF on, same port): the worker processes reconnect by
themselves and every run completes with the right outputs; none is lost."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import redis.asyncio as redis
from bullmq_processes import WorkerProcess, adapter
from redis_server import free_port, running_redis_server

HERE = Path(__file__).parent
LENGTH = 5
SLOW_CHAIN = {
    "id": "slow",
    "nodes": [{"id": f"n{i}", "uses": "step", "params": {"seconds": 0.3}} for i in range(LENGTH)],
    "edges": [{"source": f"n{i}", "target": f"n{i + 1}"} for i in range(LENGTH - 1)],
}
RUNS = 8
PREFIX = "restart"
AOF = ["--appendonly", "yes", "--appendfsync", "always"]


async def _start_runs(url: str) -> list[str]:
    async with adapter(url, PREFIX, blueprints=[SLOW_CHAIN], consume=False) as a:
        return [await a.start_run("slow") for _ in range(RUNS)]


async def _outputs_recorded(url: str, run_ids: list[str]) -> int:
    client = redis.Redis.from_url(url, decode_responses=True)
    try:
        count = 0
        for run_id in run_ids:
            keys = await client.hkeys(f"{PREFIX}:{{{run_id}}}:ctx")
            count += sum(1 for key in keys if key.startswith("_outputs."))
        return count
    finally:
        await client.aclose()


async def _results(url: str, run_ids: list[str]) -> list[tuple[str, object]]:
    async with adapter(url, PREFIX, blueprints=[SLOW_CHAIN], consume=False) as a:
        results = [await a.wait_for_result(run_id, timeout_s=60) for run_id in run_ids]
    return [(str(r.status), r.context.get(f"_outputs.n{LENGTH - 1}")) for r in results]


def test_runs_in_flight_survive_a_redis_restart(tmp_path: Path) -> None:
    port, data = free_port(), tmp_path / "data"
    data.mkdir()
    url = f"redis://127.0.0.1:{port}/0"
    bp_dir = tmp_path / "blueprints"
    bp_dir.mkdir()
    (bp_dir / "slow.json").write_text(json.dumps(SLOW_CHAIN), encoding="utf-8")
    args = ["--redis", url, "--prefix", PREFIX, "--registry", "failure_nodes:registry"]
    args += ["--blueprints", str(bp_dir), "--lock-duration", "2", "--stalled-interval", "1"]
    workers: list[WorkerProcess] = []
    try:
        with running_redis_server("the restart test", args=AOF, port=port, workdir=str(data)):
            workers = [WorkerProcess(args, tmp_path / "trace.txt", HERE) for _ in range(2)]
            for worker in workers:
                worker.wait_ready()
            run_ids = asyncio.run(_start_runs(url))
            deadline = time.monotonic() + 30
            while asyncio.run(_outputs_recorded(url, run_ids)) < RUNS:  # mid-run: some outputs
                assert time.monotonic() < deadline, "the runs made no progress"
                time.sleep(0.1)
            before = asyncio.run(_outputs_recorded(url, run_ids))
        time.sleep(1.0)  # Redis is down: the workers' commands fail meanwhile
        with running_redis_server("the restart test", args=AOF, port=port, workdir=str(data)):
            assert asyncio.run(_outputs_recorded(url, run_ids)) >= before  # the AOF kept them
            restarted = time.monotonic()
            results = asyncio.run(_results(url, run_ids))
            drained = time.monotonic() - restarted
            alive = [worker.proc.poll() is None for worker in workers]
    finally:
        for worker in workers:
            worker.kill()
    stderr = "\n".join(worker.stderr for worker in workers)
    print(f"outputs before the restart: {before} of {RUNS * LENGTH}; drained {drained:.1f}s after")
    assert before < RUNS * LENGTH, "the restart came too late to be mid-run"
    assert results == [("completed", LENGTH)] * RUNS, stderr
    assert alive == [True, True], stderr
    assert "Traceback" not in stderr, stderr  # lost connections are logged in one line each
    # BullMQ fetches again 1 s after a connection error (the adapter's runRetryDelay; with
    # BullMQ's default of 15 s this took 18 s, with 1 s it takes 4-6 s).
    assert drained < 14, f"drained {drained:.1f}s after the restart"
