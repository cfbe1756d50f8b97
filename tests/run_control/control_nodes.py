"""Node code of the run-control tests: counted calls, a gate a test opens, a node that fails
until the context says otherwise, and a long node that records its cancellation."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from flowcraft_core import NodeContext, NodeRegistry

registry = NodeRegistry()
#: Calls per activation id (this process).
calls: Counter[str] = Counter()
#: Nodes that fail (node id -> remaining failures); a test sets it.
failing: Counter[str] = Counter()
#: Seconds a `step` node takes, by node id (so a join can be blocked while a sibling runs).
delays: dict[str, float] = {}
#: Opened by a test; `gate` nodes wait for it.
gates: dict[str, asyncio.Event] = {}
#: Set when a gate node has started, by node id.
started: dict[str, asyncio.Event] = {}
#: Activation ids of `long` nodes that saw their cancellation.
cancelled: list[str] = []


def reset() -> None:
    calls.clear()
    failing.clear()
    delays.clear()
    gates.clear()
    started.clear()
    cancelled.clear()


@registry.node("step")
async def step(ctx: NodeContext) -> dict[str, Any]:
    calls[ctx.activation_id] += 1
    if delays.get(ctx.node_id):
        await asyncio.sleep(delays[ctx.node_id])
    if failing[ctx.node_id] > 0:
        failing[ctx.node_id] -= 1
        raise RuntimeError(f"{ctx.node_id} failed")
    return {"output": f"{ctx.node_id}:{ctx.input}"}


@registry.node("gate")
async def gate(ctx: NodeContext) -> dict[str, Any]:
    calls[ctx.activation_id] += 1
    started.setdefault(ctx.node_id, asyncio.Event()).set()
    await gates.setdefault(ctx.node_id, asyncio.Event()).wait()
    return {"output": f"{ctx.node_id}:{ctx.input}"}


@registry.node("long")
async def long(ctx: NodeContext) -> dict[str, Any]:
    calls[ctx.activation_id] += 1
    started.setdefault(ctx.node_id, asyncio.Event()).set()
    try:
        await asyncio.sleep(float(ctx.params.get("seconds", 30)))
    except asyncio.CancelledError:
        cancelled.append(ctx.activation_id)
        raise
    return {"output": "slept"}


def n(node_id: str, uses: str = "step", **extra: Any) -> dict[str, Any]:
    return {"id": node_id, "uses": uses, **extra}


def e(source: str, target: str, **extra: Any) -> dict[str, Any]:
    return {"source": source, "target": target, **extra}


#: a -> g (a gate) -> c -> d
GATED = {
    "id": "gated",
    "nodes": [n("a"), n("g", "gate"), n("c"), n("d")],
    "edges": [e("a", "g"), e("g", "c"), e("c", "d")],
}
#: a -> b, a -> c, b -> d, c -> d (all join), d -> z
DIAMOND = {
    "id": "diamond",
    "nodes": [n("a"), n("b"), n("c"), n("d"), n("z")],
    "edges": [e("a", "b"), e("a", "c"), e("b", "d"), e("c", "d"), e("d", "z")],
}
#: a -> w (wait) -> b
WAITING = {
    "id": "waiting",
    "nodes": [n("a"), n("w", "wait"), n("b")],
    "edges": [e("a", "w"), e("w", "b")],
}
LONG = {"id": "long", "nodes": [n("x", "long", params={"seconds": 30})], "edges": []}
#: a -> s (sleeps 0.3 s) -> b
NAPPING = {
    "id": "napping",
    "nodes": [n("a"), n("s", "sleep", params={"duration": 300}), n("b")],
    "edges": [e("a", "s"), e("s", "b")],
}
BLUEPRINTS = [GATED, DIAMOND, WAITING, LONG, NAPPING]
