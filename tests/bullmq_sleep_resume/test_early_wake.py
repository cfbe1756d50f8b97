"""A wake job that arrives before its sleep's recorded wakeAt (another worker's clock, or a
reconciler re-add) does not end the sleep early: the job is delivered again after the time
left (SPEC 9.7). On the in-memory store (LocalCluster) and on Redis (BullMQAdapter)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from distributed.test_memory_parity import e, make_registry, n

from flowcraft_bullmq import BullMQAdapter
from flowcraft_core import NodeRegistry
from flowcraft_core.distributed import CoordinationStore, Job, LocalCluster, akey
from flowcraft_core.distributed.protocol import WAKE

SLEEPY: dict[str, Any] = {
    "id": "early",
    "nodes": [n("a", "inc"), n("z", "sleep", params={"duration": "600ms"}), n("b", "stamp")],
    "edges": [e("a", "z"), e("z", "b")],
}


def _registry(stamps: list[float]) -> NodeRegistry:
    registry = make_registry()

    @registry.node("stamp")
    async def stamp(ctx: Any) -> None:
        stamps.append(time.time() * 1000)

    return registry


async def _wake_at(store: CoordinationStore, run_id: str) -> float:
    """The recorded wakeAt (epoch ms) once z sleeps."""
    for _ in range(500):
        loaded = await store.load(run_id, akey("z", ()), ())
        if loaded.sleeping is not None:
            return float(loaded.sleeping[0])
        await asyncio.sleep(0.01)
    raise AssertionError("z never went to sleep")


async def test_early_wake_on_the_memory_store() -> None:
    stamps: list[float] = []
    cluster = LocalCluster(registry=_registry(stamps), blueprints=[SLEEPY], workers=2)
    run_id = await cluster.start_run("early")
    draining = asyncio.ensure_future(cluster.drain())
    wake_at = await _wake_at(cluster.store, run_id)
    cluster.queue.queue.put_nowait(Job(run_id, "z", (), kind=WAKE))  # delivered now: early
    await draining
    result = await cluster.result(run_id)
    assert result.status == "completed"
    assert len(stamps) == 1 and stamps[0] >= wake_at


async def test_early_wake_on_redis(redis_url: str, prefix: str) -> None:
    stamps: list[float] = []
    adapter = BullMQAdapter(
        connection=redis_url, registry=_registry(stamps), blueprints=[SLEEPY], prefix=prefix
    )
    try:
        await adapter.start()
        run_id = await adapter.start_run("early")
        assert adapter._store is not None
        wake_at = await _wake_at(adapter._store, run_id)
        # The delayed wake job is replaced by one due now (a reconciler on a clock ahead).
        queue = adapter._job_queue_or_fail()
        wake = Job(run_id, "z", (), kind=WAKE)
        assert await queue.queue.remove(wake.job_id) == 1
        await queue.add_bulk([wake])
        result = await adapter.wait_for_result(run_id, timeout_s=10)
        state = await queue.queue.getJobState(wake.job_id)
    finally:
        await adapter.close(timeout_s=10)
    assert result.status == "completed"
    assert len(stamps) == 1 and stamps[0] >= wake_at
    assert state == "completed"  # the same job, delivered again once due
