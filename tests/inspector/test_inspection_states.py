"""What `BullMQAdapter.inspect_run` derives while runs move: a node running now, a durable
sleep, work left when a run is cancelled, and the attempts of a node BullMQ retried."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest
from bullmq_adapter.adapter_support import e, n
from bullmq_processes import adapter
from inspector_support import make_registry

from flowcraft_bullmq import BullMQAdapter
from flowcraft_bullmq.inspector import create_app
from flowcraft_core import RunNotFoundError

HOLD: dict[str, Any] = {
    "id": "hold",
    "nodes": [n("a", "inc"), n("slow", "slow"), n("after", "inc")],
    "edges": [e("a", "slow"), e("slow", "after")],
}
NAP: dict[str, Any] = {
    "id": "nap",
    "nodes": [n("a", "inc"), n("z", "sleep", params={"duration": "600ms"}), n("b", "inc")],
    "edges": [e("a", "z"), e("z", "b")],
}
RETRIED: dict[str, Any] = {
    "id": "retried",
    "nodes": [n("f", "flaky", config={"maxRetries": 3})],
    "edges": [],
}


async def until(a: BullMQAdapter, run_id: str, node_id: str, state: str) -> Any:
    """The run's inspection once `node_id` is in `state` (10 s at most)."""
    deadline = time.monotonic() + 10
    while True:
        run = await a.inspect_run(run_id)
        if run.node_state(node_id) == state:
            return run
        assert time.monotonic() < deadline, (node_id, run.node_states)
        await asyncio.sleep(0.02)


async def test_running_node_then_cancel(redis_url: str, prefix: str) -> None:
    registry = make_registry()
    release = asyncio.Event()

    @registry.node("slow")
    async def slow(ctx: Any) -> dict[str, Any]:
        await release.wait()
        return {"output": 1}

    async with adapter(redis_url, prefix, blueprints=[HOLD], registry=registry) as a:
        await a.start_run("hold", run_id="h1")
        run = await until(a, "h1", "slow", "running")
        assert run.summary.status == "running" and run.summary.in_flight == 1
        [slow_act] = [x for x in run.activations if x.node_id == "slow"]
        assert slow_act.started_at is not None and slow_act.finished_at is None
        assert run.node_state("after") == "pending" and run.expires_in_s is None

        transport = httpx.ASGITransport(app=create_app(a))
        async with httpx.AsyncClient(transport=transport, base_url="http://i") as client:
            page = (await client.get("/runs/h1")).text
            assert 'data-live="1"' in page and 'id="cancel-form"' in page
            assert 'data-node="slow" data-state="running"' in page
            cancelled = await client.post("/runs/h1/cancel", headers={"origin": "http://i"})
            assert cancelled.status_code == 303 and "cancelled" in cancelled.headers["location"]
            run = await a.inspect_run("h1")
            assert run.summary.status == "cancelled"
            assert run.node_state("slow") == "cancelled"  # owed, never completed
            page = (await client.get("/runs/h1")).text
            assert 'data-live="0"' in page and 'id="cancel-form"' not in page
        release.set()


async def test_sleeping_node(redis_url: str, prefix: str) -> None:
    async with adapter(redis_url, prefix, blueprints=[NAP], registry=make_registry()) as a:
        await a.start_run("nap", run_id="s1")
        run = await until(a, "s1", "z", "sleeping")
        assert run.summary.status == "running"
        result = await a.wait_for_result("s1", timeout_s=20)
        assert result.status == "completed"
        run = await a.inspect_run("s1")
        assert run.node_states == {"a": "done", "z": "done", "b": "done"}


async def test_attempts_of_a_node_bullmq_retried(redis_url: str, prefix: str) -> None:
    async with adapter(
        redis_url, prefix, blueprints=[RETRIED], registry=make_registry(), retry_mode="queue"
    ) as a:
        await a.start_run("retried", run_id="r1")
        assert (await a.wait_for_result("r1", timeout_s=20)).status == "completed"
        [flaky] = (await a.inspect_run("r1")).activations
        assert (flaky.state, flaky.attempts) == ("done", 3)
        assert flaky.enqueued_at is not None and flaky.started_at is not None
        with pytest.raises(RunNotFoundError):
            await a.inspect_run("never")


BATCH: dict[str, Any] = {
    "id": "batch",
    "nodes": [
        n(
            "s",
            "batch-scatter",
            inputs="items",
            params={"workerUsesKey": "held", "gatherNodeId": "g", "chunkSize": 1},
        ),
        n("g", "batch-gather"),
    ],
    "edges": [e("s", "g")],
}


async def test_batch_items_and_a_parked_gather(redis_url: str, prefix: str) -> None:
    """Items are activations `s[<i>]`: one running (chunkSize 1), the others not started yet;
    the parked gather is not running; at the end every item is done."""
    registry = make_registry()
    release = asyncio.Event()

    @registry.node("held")
    async def held(ctx: Any) -> dict[str, Any]:
        await release.wait()
        return {"output": ctx.input}

    async with adapter(redis_url, prefix, blueprints=[BATCH], registry=registry) as a:
        await a.start_run("batch", {"items": [1, 2, 3]}, run_id="b1")
        run = await until(a, "b1", "s[0]", "running")
        assert run.node_states == {"s": "done", "s[0]": "running"}
        release.set()
        assert (await a.wait_for_result("b1", timeout_s=20)).status == "completed"
        run = await a.inspect_run("b1")
        assert run.node_states == {
            "s": "done",
            "s[0]": "done",
            "s[1]": "done",
            "s[2]": "done",
            "g": "done",
        }
