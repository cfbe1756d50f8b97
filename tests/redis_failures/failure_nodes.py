"""Node implementations the worker subprocesses of these tests load
(`--registry failure_nodes:registry`)."""

from __future__ import annotations

import asyncio
from typing import Any

from flowcraft_core import NodeRegistry

registry = NodeRegistry()


@registry.node("step")
async def step(ctx: Any) -> dict[str, Any]:
    """Sleeps `params.seconds` (0.2), then returns its input plus one (0 at an entry)."""
    await asyncio.sleep(float(ctx.params.get("seconds", 0.2)))
    value = ctx.input if isinstance(ctx.input, int) else 0
    return {"output": value + 1}


@registry.node("opaque")
async def opaque(ctx: Any) -> dict[str, Any]:
    """Returns what JSON cannot hold (a set, or lists nested 100,000 levels deep), or writes
    a set to context `bad`."""
    how = ctx.params.get("how")
    if how == "context":
        await ctx.context.set("bad", {"nested": {1, 2}})
        return {"output": "wrote"}
    if how == "deep":
        deep: list[Any] = []
        for _ in range(100_000):
            deep = [deep]
        return {"output": deep}
    return {"output": {"result": {1, 2}}}
