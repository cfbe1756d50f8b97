"""Node implementations and blueprints of the observability tests, loaded by the worker
subprocesses (`--registry obs_nodes:registry`) and in-process runtimes alike (no Redis here)."""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

from flowcraft_core import NodeRegistry

registry = NodeRegistry()
log = logging.getLogger("obs_nodes")


@registry.node("step")
async def step(ctx: Any) -> dict[str, Any]:
    """Sleeps `params.seconds` (0), outputs its node id. With `FLOWCRAFT_TEST_TRACE=<file>`
    (set by the worker processes) it appends `<pid> <node id> start|end` lines to the file."""
    _trace(ctx.node_id, "start")
    await asyncio.sleep(float(ctx.params.get("seconds", 0)))
    _trace(ctx.node_id, "end")
    return {"output": ctx.node_id}


def _trace(node_id: str, what: str) -> None:
    path = os.environ.get("FLOWCRAFT_TEST_TRACE")
    if path:
        with open(path, "a", encoding="utf-8") as file:
            file.write(f"{os.getpid()} {node_id} {what}\n")


@registry.node("flaky")
async def flaky(ctx: Any) -> dict[str, Any]:
    """Fails its first attempt, succeeds on the next."""
    if ctx.attempt == 1:
        raise RuntimeError("first attempt fails")
    return {"output": ctx.attempt}


@registry.node("boom")
async def boom(ctx: Any) -> dict[str, Any]:
    raise ValueError("boom goes the node")


@registry.node("chatty")
async def chatty(ctx: Any) -> dict[str, Any]:
    """Logs a warning through its own logger (no extra): the log context names the node."""
    log.warning("hello from the node")
    return {"output": "said hello"}


def _n(node_id: str, uses: str = "step", **fields: Any) -> dict[str, Any]:
    return {"id": node_id, "uses": uses, **fields}


def _e(source: str, target: str) -> dict[str, Any]:
    return {"source": source, "target": target}


FAN_IDS = ("b1", "b2", "b3", "b4")
#: a -> four parallel slowish nodes -> j: both workers take part in one run.
FAN = {
    "id": "fan",
    "nodes": [
        _n("a"),
        *(_n(b, params={"seconds": 0.15}) for b in FAN_IDS),
        _n("j", config={"joinStrategy": "all"}),
    ],
    "edges": [*(_e("a", b) for b in FAN_IDS), *(_e(b, "j") for b in FAN_IDS)],
}
FLAKY = {
    "id": "flaky",
    "nodes": [_n("f", "flaky", config={"maxRetries": 2}), _n("g")],
    "edges": [_e("f", "g")],
}
BOOM = {"id": "boom", "nodes": [_n("x", "boom")], "edges": []}
SLOW = {
    "id": "slow",
    "nodes": [_n("s", params={"seconds": 3.0}), _n("t")],
    "edges": [_e("s", "t")],
}
CHATTY = {"id": "chatty", "nodes": [_n("c", "chatty")], "edges": []}
BLUEPRINTS = [FAN, FLAKY, BOOM, SLOW, CHATTY]
