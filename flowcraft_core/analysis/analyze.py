"""`analyze_blueprint`: a summary of a blueprint's shape for tools and people (SPEC 8.1).

Built on `compute_structure`, so the summary agrees with what the runtime will do (entries,
loops, reachability) instead of re-deriving it with other rules.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from flowcraft_core.analysis.graph import GraphStructure, build_structure
from flowcraft_core.blueprint.model import Blueprint


@dataclass(frozen=True, slots=True)
class BlueprintAnalysis:
    """Node lists are in blueprint order; edges are indices into `bp.edges`."""

    start_node_ids: tuple[str, ...]
    entry_node_ids: tuple[str, ...]
    #: No outgoing edge; fallback nodes excluded.
    terminal_node_ids: tuple[str, ...]
    fallback_node_ids: tuple[str, ...]
    #: At least two distinct predecessors over forward (non-back) edges.
    join_node_ids: tuple[str, ...]
    #: Indices of the back edges `u -> h` (h dominates u), ascending.
    back_edges: tuple[int, ...]
    loop_headers: tuple[str, ...]
    #: Per back edge `u -> h`, in `back_edges` order: the closed path `(h, ..., u, h)`.
    cycles: tuple[tuple[str, ...], ...]
    #: Not reachable from the entry nodes; fallback nodes excluded.
    unreachable_node_ids: tuple[str, ...]
    #: The whole graph, reachable or not, has no cycle.
    is_dag: bool
    node_count: int
    edge_count: int


def analyze_blueprint(bp: Blueprint) -> BlueprintAnalysis:
    """Summarise `bp`: entries, terminals, joins, loops and unreachable nodes."""
    built = build_structure(bp)
    s = built.structure
    ids = s.node_ids
    fallback = s.fallback_ids
    back = tuple(sorted(s.back_edges))
    joins: tuple[str, ...] = ()
    if built.in_degree is not None:  # else no node has two incoming edges
        degree = built.in_degree
        joins = tuple(v for i, v in enumerate(ids) if degree[i] > 1 and len(s.predecessors[v]) > 1)
    return BlueprintAnalysis(
        start_node_ids=s.start_ids,
        entry_node_ids=s.entry_ids,
        terminal_node_ids=tuple(
            v for v, out in zip(ids, built.has_out, strict=True) if not out and v not in fallback
        ),
        fallback_node_ids=tuple(v for v in ids if v in fallback),
        join_node_ids=joins,
        back_edges=back,
        loop_headers=s.loop_headers,
        cycles=_cycles(bp, s, back),
        unreachable_node_ids=()
        if len(s.reachable) == len(ids)
        else tuple(v for v in ids if v not in s.reachable and v not in fallback),
        is_dag=not s.cyclic_components,
        node_count=len(bp.nodes),
        edge_count=len(bp.edges),
    )


def _cycles(bp: Blueprint, s: GraphStructure, back: tuple[int, ...]) -> tuple[tuple[str, ...], ...]:
    """One shortest path per back edge, from one BFS per loop header inside its body.

    Every body node is reachable from its header inside the body (the header dominates it),
    and a shortest path never reuses a node, so it takes no back edge.
    """
    if not back:
        return ()
    succ: dict[str, list[str]] = {}
    for h in s.loop_headers:
        for v in s.loop_body[h]:
            succ.setdefault(v, [])
    for e in bp.edges:
        if e.source in succ:
            succ[e.source].append(e.target)
    parents: dict[str, dict[str, str]] = {}
    for h in s.loop_headers:
        body = s.loop_body[h]
        parent: dict[str, str] = {h: h}
        queue = deque([h])
        while queue:
            v = queue.popleft()
            for w in succ[v]:
                if w in body and w not in parent:
                    parent[w] = v
                    queue.append(w)
        parents[h] = parent
    cycles = []
    for i in back:
        u, h = bp.edges[i].source, bp.edges[i].target
        path = [u]
        while path[-1] != h:
            path.append(parents[h][path[-1]])
        path.reverse()
        path.append(h)
        cycles.append(tuple(path))
    return tuple(cycles)
