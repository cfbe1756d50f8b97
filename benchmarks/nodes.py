"""The benchmark workloads: trivial nodes (return input + 1) and the blueprints that use them.

Shared by the in-process figures and the distributed ones; `flowcraft worker --registry
benchmarks.nodes:registry` loads the same implementations in worker processes.
"""

from __future__ import annotations

from typing import Any

from flowcraft_core import NodeContext, NodeRegistry


async def inc(ctx: NodeContext) -> dict[str, Any]:
    return {"output": (ctx.input or 0) + 1}


async def inc_join(ctx: NodeContext) -> dict[str, Any]:
    """A join's input is its predecessors' outputs by node id."""
    return {"output": sum(ctx.input.values()) if isinstance(ctx.input, dict) else 0}


def make_registry() -> NodeRegistry:
    reg = NodeRegistry()
    reg.register("inc", inc)
    reg.register("inc_join", inc_join)
    return reg


#: What `flowcraft worker --registry benchmarks.nodes:registry` imports.
registry = make_registry()


def chain(n: int) -> dict[str, Any]:
    """`chainN`: n nodes in a line."""
    nodes = [{"id": f"n{i}", "uses": "inc"} for i in range(n)]
    edges = [{"source": f"n{i}", "target": f"n{i + 1}"} for i in range(n - 1)]
    return {"id": f"chain{n}", "nodes": nodes, "edges": edges}


def fanout(width: int) -> dict[str, Any]:
    """`fanoutW`: start -> W parallel nodes -> one `all` join (W + 2 nodes)."""
    nodes = [{"id": "start", "uses": "inc"}]
    nodes += [{"id": f"p{i}", "uses": "inc"} for i in range(width)]
    nodes.append({"id": "join", "uses": "inc_join"})
    edges = [{"source": "start", "target": f"p{i}"} for i in range(width)]
    edges += [{"source": f"p{i}", "target": "join"} for i in range(width)]
    return {"id": f"fanout{width}", "nodes": nodes, "edges": edges}


def diamond(width: int = 8) -> dict[str, Any]:
    """`diamond8`: start -> 8 parallel nodes -> `all` join -> end (11 nodes)."""
    bp = fanout(width)
    bp["id"] = f"diamond{width}"
    bp["nodes"].append({"id": "end", "uses": "inc"})
    bp["edges"].append({"source": "join", "target": "end"})
    return bp


def node_count(bp: dict[str, Any]) -> int:
    return len(bp["nodes"])


__all__ = ["chain", "diamond", "fanout", "inc", "inc_join", "make_registry", "node_count"]
