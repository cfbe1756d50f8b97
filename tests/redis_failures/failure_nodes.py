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
    """Returns what JSON cannot hold: a set under `result`, or writes one to context `bad`."""
    if ctx.params.get("how") == "context":
        await ctx.context.set("bad", {"nested": {1, 2}})
        return {"output": "wrote"}
    return {"output": {"result": {1, 2}}}
