"""Across activations, a `node:start` follows the completion events of the predecessors that
made it ready (SPEC 7.1), however slowly a bus takes them: a job emits its activation's events
before its `complete`, and a completion's `node:skipped` before its successors' jobs exist.

A completion's events used to be emitted after its `complete`: another consumer's later
completion (a skip propagated by the router's job, a sibling branch) could make the join ready
and run it while the events were still on their way."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from distributed.test_memory_parity import CASES, e, make_registry, n

from flowcraft_core import FlowRuntime, InMemoryEventBus
from flowcraft_core import events as ev
from flowcraft_core.distributed import LocalCluster

KINDS = {"workflow:start", "node:start", "node:finish", "node:error", "node:skipped"}
ROUTED, CONTEXT = CASES["if_else_join"]
FAN_IN: dict[str, Any] = {
    "id": "fanin",
    "nodes": [n("s", "inc"), n("a", "inc"), n("b", "inc"), n("c", "inc"), n("j", "sum")],
    "edges": [e("s", "a"), e("s", "b"), e("s", "c"), e("a", "j"), e("b", "j"), e("c", "j")],
}


class SlowBus:
    """Records an event once its emit returns, after a delay per (type, node id): as a Redis
    stream holds an event once its append is done."""

    def __init__(self, delays: dict[tuple[str, str], float]) -> None:
        self.delays = delays
        self.events: list[ev.FlowEvent] = []

    async def emit(self, event: ev.FlowEvent) -> None:
        await asyncio.sleep(self.delays.get((event.type, getattr(event, "node_id", "")), 0))
        self.events.append(event)


def seen(events: list[ev.FlowEvent]) -> list[tuple[str, str | None]]:
    return [(x.type, getattr(x, "node_id", None)) for x in events if x.type in KINDS]


def completed_before_start(events: list[ev.FlowEvent], bp: dict[str, Any]) -> None:
    """Each `node:start` comes after an end event (finish, error, skipped) of every predecessor
    (the blueprints here have `all` joins and no loops)."""
    ended: set[str] = set()
    for event in events:
        node_id = getattr(event, "node_id", None)
        if event.type in ("node:finish", "node:error", "node:skipped"):
            ended.add(str(node_id))
        elif event.type == "node:start":
            sources = {edge["source"] for edge in bp["edges"] if edge["target"] == node_id}
            assert sources <= ended, (node_id, sources - ended, seen(events))


async def in_process(bp: dict[str, Any], context: dict[str, Any] | None) -> list[Any]:
    bus = InMemoryEventBus()
    runtime = FlowRuntime(registry=make_registry(), blueprints=[bp], event_bus=bus)
    await runtime.run(bp["id"], dict(context or {}), run_id="r1")
    return seen(bus.events)


@pytest.mark.parametrize(
    "delays",
    [
        {("node:finish", "x"): 0.05},  # x's finish late: y's skip (s's job) makes j ready
        {("node:skipped", "y"): 0.02},  # y's skip late: x runs meanwhile
        {("node:skipped", "y"): 0.02, ("node:finish", "x"): 0.08},
    ],
    ids=["finish_late", "skip_late", "both_late"],
)
async def test_a_join_starts_after_its_predecessors_events(
    delays: dict[tuple[str, str], float],
) -> None:
    bus = SlowBus(delays)
    cluster = LocalCluster(registry=make_registry(), blueprints=[ROUTED], event_bus=bus, workers=4)
    assert (await cluster.run("ifelse", dict(CONTEXT), run_id="r1")).status == "completed"
    completed_before_start(bus.events, ROUTED)
    assert seen(bus.events) == await in_process(ROUTED, CONTEXT)


@pytest.mark.parametrize("late", ["a", "b", "c"])
async def test_a_fan_in_join_starts_after_every_branch_finished(late: str) -> None:
    bus = SlowBus({("node:finish", late): 0.05})
    cluster = LocalCluster(registry=make_registry(), blueprints=[FAN_IN], event_bus=bus, workers=4)
    assert (await cluster.run("fanin", {}, run_id="r1")).status == "completed"
    completed_before_start(bus.events, FAN_IN)
    assert seen(bus.events)[-2:] == [("node:start", "j"), ("node:finish", "j")]
