"""Node code of the compensation tests (`--registry saga_nodes:registry` for worker processes).

Compensations leave their traces in the context (`undoLog`, `undone.<node>`), so the same
assertions read the in-process result and the distributed one.
"""

from __future__ import annotations

import asyncio
import itertools
import os
from typing import Any

from flowcraft_core import NodeContext, NodeRegistry

registry = NodeRegistry()


@registry.node("saga.step")
async def step(ctx: NodeContext) -> dict[str, Any]:
    fail_at = await ctx.context.get("failAt")
    if fail_at == ctx.node_id or (fail_at == "loop-2" and ctx.iteration == (2,)):
        raise RuntimeError(f"{ctx.node_id} refused")
    return {"output": {"node": ctx.node_id, "iteration": list(ctx.iteration), "in": ctx.input}}


@registry.node("saga.count")
async def count(ctx: NodeContext) -> dict[str, Any]:
    n = int(await ctx.context.get("n") or 0) + 1
    await ctx.context.set("n", n)
    return {"output": n}


@registry.node("saga.undo")
async def undo(ctx: NodeContext) -> dict[str, Any]:
    log = list(await ctx.context.get("undoLog") or [])
    log.append([ctx.node_id, list(ctx.iteration), ctx.activation_id])
    await ctx.context.set("undoLog", log)
    await ctx.context.set(f"undone.{ctx.node_id}", ctx.input)
    return {"output": None}


def _trace(ctx: NodeContext, what: str) -> None:
    """With `FLOWCRAFT_TEST_TRACE=<file>` (worker processes), append `<pid> <what> <activation
    id>`: which process ran which compensation, and whether it got to its end."""
    path = os.environ.get("FLOWCRAFT_TEST_TRACE")
    if path:
        with open(path, "a", encoding="utf-8") as out:
            out.write(f"{os.getpid()} {what} {ctx.activation_id}\n")


@registry.node("saga.undo_slow")
async def undo_slow(ctx: NodeContext) -> dict[str, Any]:
    """An undo that takes a while (a worker can be killed in the middle of it)."""
    _trace(ctx, "start")
    await asyncio.sleep(float(ctx.params.get("undoSeconds", 1.5)))
    result = await undo(ctx)
    _trace(ctx, "end")
    return result


@registry.node("saga.undo_traced")
async def undo_traced(ctx: NodeContext) -> dict[str, Any]:
    _trace(ctx, "start")
    result = await undo(ctx)
    _trace(ctx, "end")
    return result


@registry.node("saga.undo_flaky")
async def undo_flaky(ctx: NodeContext) -> dict[str, Any]:
    if ctx.attempt == 1:
        raise ConnectionError("refund service busy")
    return await undo(ctx)


@registry.node("saga.undo_broken")
async def undo_broken(ctx: NodeContext) -> dict[str, Any]:
    raise RuntimeError(f"cannot undo {ctx.node_id}")


def chain(
    names: list[str], undo_of: dict[str, str], *, retries: int = 1, bp_id: str = "saga"
) -> dict[str, Any]:
    """A linear chain of `saga.step` nodes; `undo_of` names each one's compensation."""
    nodes = []
    for name in names:
        config: dict[str, Any] = {"maxRetries": retries} if retries > 1 else {}
        if name in undo_of:
            config["compensate"] = undo_of[name]
        nodes.append({"id": name, "uses": "saga.step", "config": config})
    edges = [{"source": a, "target": b} for a, b in itertools.pairwise(names)]
    return {"id": bp_id, "nodes": nodes, "edges": edges}


def saga(*, compensations: dict[str, str] | None = None, retries: int = 1) -> dict[str, Any]:
    """reserve -> charge -> ship -> notify; each step may name a compensation."""
    default = {"reserve": "saga.undo", "charge": "saga.undo", "ship": "saga.undo"}
    undo_of = compensations if compensations is not None else default
    return chain(["reserve", "charge", "ship", "notify"], undo_of, retries=retries)


def looping_saga() -> dict[str, Any]:
    """A loop whose body (`book`) completes once per iteration; it fails on iteration 2."""
    return {
        "id": "saga-loop",
        "nodes": [
            {"id": "start", "uses": "saga.step", "config": {"compensate": "saga.undo"}},
            {"id": "tick", "uses": "saga.count"},
            {"id": "book", "uses": "saga.step", "config": {"compensate": "saga.undo"}},
            {"id": "ctl", "uses": "loop-controller", "params": {"condition": "context.n < 4"}},
            {"id": "done", "uses": "saga.step"},
        ],
        "edges": [
            {"source": "start", "target": "tick"},
            {"source": "tick", "target": "book"},
            {"source": "book", "target": "ctl"},
            {"source": "ctl", "target": "tick", "action": "continue"},
            {"source": "ctl", "target": "done", "action": "break"},
        ],
        "metadata": {"cycleEntryPoints": ["tick"]},
    }
