"""Small builders for test blueprints (the loader is developed separately)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from flowcraft_core.blueprint.model import Blueprint

EdgeSpec = tuple[str, str] | dict[str, Any]


def edge(source: str, target: str, **extra: Any) -> dict[str, Any]:
    return {"source": source, "target": target, **extra}


def make_bp(
    nodes: list[str | dict[str, Any]],
    edges: Sequence[EdgeSpec] = (),
    *,
    entries: list[str] | None = None,
    bp_id: str = "t",
) -> Blueprint:
    """Nodes as ids (uses `task`) or full dicts; edges as (source, target) or dicts."""
    node_list = [{"id": n, "uses": "task"} if isinstance(n, str) else n for n in nodes]
    edge_list = [edge(*e) if isinstance(e, tuple) else e for e in edges]
    data: dict[str, Any] = {"id": bp_id, "nodes": node_list, "edges": edge_list}
    if entries is not None:
        data["metadata"] = {"cycleEntryPoints": entries}
    return Blueprint.model_validate(data)
