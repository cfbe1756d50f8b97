"""Node code of the scheduling example: resize an image on a GPU worker pool.

`render` is the slow node: its blueprint puts it on queue `gpu` (`config.queue`), so only
workers started with `flowcraft worker --queue gpu` run it; `fetch` and `publish` run on the
default queue. Each step records the pid of the process that ran it (`ranOn`), so the output
shows which pool did what. In-process (`flowcraft run`) everything runs in one process.
"""

from __future__ import annotations

import os
from typing import Any

from flowcraft_core import NodeContext, NodeRegistry

registry = NodeRegistry()


@registry.node("images.fetch")
async def fetch(ctx: NodeContext) -> dict[str, Any]:
    url = str(await ctx.context.get("url"))
    return {"output": {"url": url, "bytes": 1024 + len(url), "ranOn": os.getpid()}}


@registry.node("images.render")
async def render(ctx: NodeContext) -> dict[str, Any]:
    size = int(ctx.params.get("width", 256))
    image = ctx.input
    return {"output": {"url": image["url"], "width": size, "ranOn": os.getpid()}}


@registry.node("images.publish")
async def publish(ctx: NodeContext) -> dict[str, Any]:
    image = ctx.input
    return {"output": {"published": f"{image['url']}@{image['width']}w", "ranOn": os.getpid()}}
