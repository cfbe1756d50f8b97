"""Nodes for the `--retry-mode` worker test (`--registry retry_nodes:registry`)."""

from __future__ import annotations

from typing import Any

from flowcraft_core import NodeRegistry

registry = NodeRegistry()


@registry.node("flaky")
async def flaky(ctx: Any) -> dict[str, Any]:
    """Fails its first attempt, succeeds with the attempt number after that."""
    if ctx.attempt == 1:
        raise RuntimeError("first attempt fails")
    return {"output": ctx.attempt}
