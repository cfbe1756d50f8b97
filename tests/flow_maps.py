"""Blueprint mappings written compactly, so a test's graph reads on a few lines.

    flow("id", "a:echo L b:work done:echo", "a>L L>b:continue b>L L>done:break",
         loops={"L": "iteration < 3"}, when={"b>L": "result.output > 0"})

gives the loader's mapping: nodes `id:uses` in the order written (an id in `loops` is a
`loop-controller` with that condition), edges `source>target[:action]` in the order written,
edge conditions from `when`, node params from `params`, other node fields from `fields`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def flow(
    flow_id: str,
    nodes: str,
    edges: str,
    *,
    loops: Mapping[str, str] | None = None,
    params: Mapping[str, Mapping[str, Any]] | None = None,
    fields: Mapping[str, Mapping[str, Any]] | None = None,
    when: Mapping[str, str] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A blueprint mapping from the nodes and edges written as text (see the module doc)."""
    loops = loops or {}
    params = params or {}
    conditions = dict(when or {})
    node_maps: list[dict[str, Any]] = []
    for text in nodes.split():
        node_id, _, uses = text.partition(":")
        row: dict[str, Any] = {"id": node_id, "uses": uses or "loop-controller"}
        if node_id in loops:
            row["params"] = {"condition": loops[node_id], **params.get(node_id, {})}
        elif node_id in params:
            row["params"] = params[node_id]
        assert uses or node_id in loops, f"node {node_id!r} has no uses key"
        row.update((fields or {}).get(node_id, {}))
        node_maps.append(row)
    edge_maps: list[dict[str, Any]] = []
    for text in edges.split():
        pair, _, action = text.partition(":")
        source, target = pair.split(">")
        edge: dict[str, Any] = {"source": source, "target": target}
        if pair in conditions:
            edge["condition"] = conditions.pop(pair)
        if action:
            edge["action"] = action
        edge_maps.append(edge)
    assert not conditions, f"conditions for edges not in the flow: {sorted(conditions)}"
    return {"id": flow_id, **extra, "nodes": node_maps, "edges": edge_maps}


def builder_loop(
    condition: str,
    *,
    start: str = "task",
    body: str = "task",
    done: str = "task",
    max_iterations: int | None = None,
    flow_id: str = "loop",
) -> dict[str, Any]:
    """What `Flow.loop("L", start_node_id="b", end_node_id="b", ...)` builds (SPEC 3.7):
    a→L→b→L, L→done."""
    limit = {} if max_iterations is None else {"L": {"maxIterations": max_iterations}}
    return flow(
        flow_id,
        f"a:{start} L b:{body} done:{done}",
        "a>L L>b:continue b>L L>done:break",
        loops={"L": condition},
        params=limit,
    )
