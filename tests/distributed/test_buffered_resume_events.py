"""A wait that takes a buffered resume as it starts emits the node events of the in-process
equivalent, a wait resumed after it started (SPEC 7): node:start, node:awaiting, node:finish."""

from __future__ import annotations

from typing import Any

from distributed.test_memory_parity import e, make_registry, n

from flowcraft_core import FlowRuntime, InMemoryEventBus
from flowcraft_core.distributed import LocalCluster

APPROVE: dict[str, Any] = {
    "id": "approve",
    "nodes": [n("a", "inc"), n("ask", "wait"), n("yes", "inc")],
    "edges": [e("a", "ask"), e("ask", "yes", action="approve")],
}


def node_events(bus: InMemoryEventBus) -> list[tuple[str, str]]:
    """(type, node id) of the events both modes emit per activation (distributed mode emits
    neither context:change nor edge:evaluate)."""
    kinds = {"node:start", "node:awaiting", "node:finish", "node:error", "node:skipped"}
    return [(ev.type, ev.node_id) for ev in bus.events if ev.type in kinds]


async def in_process_events() -> list[tuple[str, str]]:
    bus = InMemoryEventBus()
    runtime = FlowRuntime(registry=make_registry(), blueprints=[APPROVE], event_bus=bus)
    paused = await runtime.run("approve", {})
    await runtime.resume(
        "approve", paused.serialized_context, node_id="ask", output="ok", action="approve"
    )
    return node_events(bus)


async def test_buffered_resume_events_match_in_process() -> None:
    bus = InMemoryEventBus()
    cluster = LocalCluster(registry=make_registry(), blueprints=[APPROVE], event_bus=bus)
    run_id = await cluster.start_run("approve")
    assert await cluster.resume(run_id, "approve", "ok", node_id="ask") == "buffered"
    await cluster.drain()
    assert (await cluster.result(run_id)).status == "completed"
    expected = await in_process_events()
    assert ("node:awaiting", "ask") in expected
    assert node_events(bus) == expected
