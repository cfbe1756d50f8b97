"""Node code for the CLI tests (`--registry cli_nodes:registry`)."""

from __future__ import annotations

import asyncio
import os
import signal
from typing import Any

from pydantic import BaseModel, Field

from flowcraft_core import NodeContext, NodeRegistry

registry = NodeRegistry()


class Retries(BaseModel):
    times: int = Field(ge=1)


@registry.node("typed.retry", params=Retries)
async def typed_retry(ctx: NodeContext) -> dict[str, Any]:
    """A typed node: its params are checked by `flowcraft validate` (INVALID_PARAMS)."""
    return {"output": ctx.params["times"]}


@registry.node("echo")
async def echo(ctx: NodeContext) -> dict[str, Any]:
    return {"output": ctx.input}


@registry.node("boom")
async def boom(ctx: NodeContext) -> dict[str, Any]:
    raise ValueError("boom went the node")


@registry.node("interrupt")
async def interrupt(ctx: NodeContext) -> dict[str, Any]:
    """Press Ctrl-C (send ourselves SIGINT), then wait to be cancelled."""
    os.kill(os.getpid(), signal.SIGINT)
    await asyncio.sleep(30)
    return {"output": "not cancelled"}


#: A mapping (not a NodeRegistry) is accepted too.
extra = {"shout": lambda ctx: {"output": str(ctx.input).upper()}}

#: Binds `echo` to other code than `registry` does.
conflicting = {"echo": lambda ctx: None}

#: A plain mapping may not claim a built-in name.
claims_builtin = {"wait": echo}

not_a_mapping = 42
