"""`progress_interval_s` (SPEC 9.2, 9.10): while a node runs longer than the reconciler's
threshold, its worker keeps refreshing the run's `progressAt`, so the run is not stalled;
with the refresh off the same run is reported stalled."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from distributed.test_memory_parity import n
from reconcile_support import adapter
from redis.asyncio import Redis

from flowcraft_bullmq import create_reconciler
from flowcraft_bullmq.progress import ProgressHeartbeat
from flowcraft_core import NodeRegistry

LONG: dict[str, Any] = {"id": "long", "nodes": [n("slow", "slow")], "edges": []}
THRESHOLD_S = 1.5


def _registry(started: asyncio.Event, release: asyncio.Event) -> NodeRegistry:
    registry = NodeRegistry()

    @registry.node("slow")
    async def slow(ctx: Any) -> dict[str, str]:
        started.set()
        await release.wait()
        return {"output": "done"}

    return registry


@pytest.mark.parametrize(("interval_s", "stalled"), [(0.2, 0), (0, 1)])
async def test_long_node_keeps_its_run_from_looking_stalled(
    redis_url: str, prefix: str, client: Redis, interval_s: float, stalled: int
) -> None:
    started, release = asyncio.Event(), asyncio.Event()
    async with adapter(
        redis_url,
        prefix,
        registry=_registry(started, release),
        blueprints=[LONG],
        progress_interval_s=interval_s,
    ) as a:
        run_id = await a.start_run("long")
        await asyncio.wait_for(started.wait(), 10)
        await asyncio.sleep(THRESHOLD_S + 0.7)  # longer than the threshold, node still running
        reconciler = create_reconciler(adapter=a, redis=client, stalled_threshold_s=THRESHOLD_S)
        stats = await reconciler.run()
        release.set()
        result = await a.wait_for_result(run_id, timeout_s=10)
    assert (stats.scanned_keys, stats.stalled_runs, stats.reconciled_runs) == (1, stalled, 0)
    assert result.status == "completed"  # the reconciler re-enqueued nothing in either case


async def test_refresh_touches_only_running_runs(prefix: str, client: Redis) -> None:
    heartbeat = ProgressHeartbeat(client, prefix, 30)
    await client.hset(f"{prefix}:{{done}}:meta", mapping={"status": "completed", "progressAt": "1"})
    await client.hset(f"{prefix}:{{live}}:meta", mapping={"status": "running", "progressAt": "1"})
    for run_id in ("done", "live", "gone", "live"):
        heartbeat.begin(run_id)
    assert await heartbeat.refresh() == 1
    for run_id in ("done", "live", "gone", "live"):
        heartbeat.end(run_id)
    assert await heartbeat.refresh() == 0  # nothing executes any more
    assert await client.hget(f"{prefix}:{{done}}:meta", "progressAt") == "1"
    assert float(await client.hget(f"{prefix}:{{live}}:meta", "progressAt") or 0) > 1e9
    assert not await client.exists(f"{prefix}:{{gone}}:meta")  # an expired run stays gone
