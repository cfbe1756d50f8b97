"""Node implementations the worker subprocesses of the security tests load
(`--registry security_nodes:registry`)."""

from __future__ import annotations

from typing import Any

from flowcraft_core import NodeRegistry

registry = NodeRegistry()


@registry.node("tag")
async def tag(ctx: Any) -> dict[str, Any]:
    """Appends `params.tag` to its input list (an entry starts a new list)."""
    seen = list(ctx.input) if isinstance(ctx.input, list) else []
    return {"output": [*seen, ctx.params.get("tag", "?")]}
