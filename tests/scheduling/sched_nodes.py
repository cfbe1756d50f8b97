"""Nodes of the scheduling tests: `step` records which run took a job, in order (in this
process), and passes its input on plus one."""

from __future__ import annotations

from typing import Any

from flowcraft_core import NodeContext, NodeRegistry

registry = NodeRegistry()

#: (run id, node id) in the order this process ran them.
TAKEN: list[tuple[str, str]] = []


@registry.node("step")
async def step(ctx: NodeContext) -> dict[str, Any]:
    TAKEN.append((ctx.run_id, ctx.node_id))
    return {"output": (ctx.input or 0) + 1}


def chain(bp_id: str, length: int, queue: str | None = None) -> dict[str, Any]:
    """A chain of `length` step nodes; the middle one on `queue` if given."""
    nodes: list[dict[str, Any]] = [{"id": f"n{i}", "uses": "step"} for i in range(length)]
    if queue is not None:
        nodes[length // 2]["config"] = {"queue": queue}
    edges = [{"source": f"n{i}", "target": f"n{i + 1}"} for i in range(length - 1)]
    return {"id": bp_id, "nodes": nodes, "edges": edges}
