"""Node code of the pagination loop example.

The loop state lives in the context: `pending` (items still to fetch), `collected`, `pages` and
`hasMore`, which the loop-controller's condition reads as a bare name. Each pass of
`fetch_page` is a new activation with iteration `(i,)`; context values are replaced, never
mutated in place.
"""

from __future__ import annotations

from typing import Any

from flowcraft_core import NodeContext, NodeRegistry

registry = NodeRegistry()

SAMPLE_CATALOG = [f"item-{n}" for n in range(1, 8)]


@registry.node("pages.start")
async def start(ctx: NodeContext) -> dict[str, Any]:
    catalog = ctx.input if isinstance(ctx.input, list) else SAMPLE_CATALOG
    await ctx.context.patch(
        [
            {"op": "set", "key": "pending", "value": list(catalog)},
            {"op": "set", "key": "collected", "value": []},
            {"op": "set", "key": "hasMore", "value": bool(catalog)},
            {"op": "set", "key": "pages", "value": 0},
        ]
    )
    return {"output": {"total": len(catalog)}}


@registry.node("pages.fetch_page")
async def fetch_page(ctx: NodeContext) -> dict[str, Any]:
    size = int(ctx.params.get("pageSize", 10))
    pending = await ctx.context.get("pending", [])
    collected = await ctx.context.get("collected", [])
    page, rest = pending[:size], pending[size:]
    await ctx.context.set("pending", rest)
    await ctx.context.set("collected", [*collected, *page])
    await ctx.context.set("hasMore", bool(rest))
    await ctx.context.set("pages", await ctx.context.get("pages", 0) + 1)
    return {"output": {"page": ctx.iteration[-1], "items": page}}


@registry.node("pages.summarize")
async def summarize(ctx: NodeContext) -> dict[str, Any]:
    collected = await ctx.context.get("collected", [])
    pages = await ctx.context.get("pages", 0)
    return {"output": {"pages": pages, "count": len(collected), "items": collected}}
