"""compute_structure against networkx and brute force on random graphs, and at scale."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

import networkx as nx  # type: ignore[import-untyped]
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flowcraft_core.analysis import analyze_blueprint, compute_structure, lint_blueprint
from flowcraft_core.blueprint.model import Blueprint, EdgeDefinition, NodeConfig, NodeDefinition

T = TypeVar("T")

ROOT = "\x00root"


@st.composite
def blueprints(draw: st.DrawFn, *, acyclic: bool) -> Blueprint:
    n = draw(st.integers(1, 9))
    ids = [f"n{i}" for i in range(n)]
    pairs = draw(st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)), max_size=16))
    if acyclic:  # acyclic by construction: edges go up the hidden numbering
        pairs = [(min(i, j), max(i, j)) for i, j in pairs if i != j]
    order = draw(st.permutations(ids))  # blueprint order need not be topological
    data: dict[str, Any] = {
        "id": "r",
        "nodes": [{"id": i, "uses": "task"} for i in order],
        "edges": [{"source": ids[i], "target": ids[j]} for i, j in pairs],
    }
    if not acyclic:
        data["metadata"] = {"cycleEntryPoints": draw(st.lists(st.sampled_from(ids), max_size=3))}
    return Blueprint.model_validate(data)


@given(blueprints(acyclic=True))
@settings(max_examples=200, deadline=None)
def test_dags_have_no_loops_and_everything_is_reachable(bp: Blueprint) -> None:
    s = compute_structure(bp)
    assert s.back_edges == frozenset()
    assert s.loop_headers == ()
    assert s.irreducible_edges == ()
    assert s.cyclic_components == ()
    assert s.reachable == set(s.node_ids)
    assert s.entry_ids == s.start_ids
    for node_id in s.node_ids:
        expected = dict.fromkeys(e.source for e in bp.edges if e.target == node_id)
        assert s.predecessors[node_id] == tuple(expected)


def expected_entries(bp: Blueprint, g: nx.MultiDiGraph) -> list[str]:
    order = [n.id for n in bp.nodes]
    starts = [v for v in order if g.in_degree(v) == 0]
    entries = list(starts)
    closed = []
    for scc in nx.strongly_connected_components(g):
        cyclic = len(scc) > 1 or any(g.has_edge(v, v) for v in scc)
        entered = any(u not in scc for v in scc for u in g.predecessors(v))
        if cyclic and not entered:
            closed.append(sorted(scc, key=order.index))
    for members in sorted(closed, key=lambda m: order.index(m[0])):
        listed = [c for c in bp.metadata.cycle_entry_points if c in members]
        if listed:
            entries.append(listed[0])
        elif not starts:
            entries.append(members[0])
    return entries


@given(blueprints(acyclic=False))
@settings(max_examples=400, deadline=None)
def test_random_graphs_agree_with_networkx(bp: Blueprint) -> None:
    s = compute_structure(bp)
    edges = [(e.source, e.target) for e in bp.edges]
    g = nx.MultiDiGraph()
    g.add_nodes_from(n.id for n in bp.nodes)
    g.add_edges_from(edges)

    entries = expected_entries(bp, g)
    assert list(s.entry_ids) == entries
    reachable = set(entries).union(*(nx.descendants(g, v) for v in entries))
    assert s.reachable == reachable

    d = nx.DiGraph(g.subgraph(reachable))
    d.add_edges_from((ROOT, v) for v in entries)
    idom = nx.immediate_dominators(d, ROOT)

    def dominates(h: str, u: str) -> bool:
        while u != h and u != ROOT:
            u = idom[u]
        return u == h

    back = {i for i, (u, h) in enumerate(edges) if u in reachable and dominates(h, u)}
    assert s.back_edges == back
    headers = {edges[i][1] for i in back}
    assert set(s.loop_headers) == headers

    cyclic = {
        frozenset(c)
        for c in nx.strongly_connected_components(g)
        if len(c) > 1 or any(g.has_edge(v, v) for v in c)
    }
    assert {frozenset(c) for c in s.cyclic_components} == cyclic

    forward = nx.DiGraph()
    forward.add_nodes_from(reachable)
    forward.add_edges_from(e for i, e in enumerate(edges) if e[0] in reachable and i not in back)
    assert bool(s.irreducible_edges) == (not nx.is_directed_acyclic_graph(forward))
    if s.irreducible_edges:
        cycle = nx.MultiDiGraph([edges[i] for i in s.irreducible_edges])
        assert not nx.is_directed_acyclic_graph(cycle)
        assert not set(s.irreducible_edges) & back

    for h in headers:
        without_h = d.subgraph(reachable - {h})
        body = {h}
        for i in back:
            u = edges[i][0]
            if edges[i][1] == h and u != h:
                body |= {u} | nx.ancestors(without_h, u)
        assert s.loop_body[h] == body
        leaving = tuple(i for i, (u, v) in enumerate(edges) if u in body and v not in body)
        assert s.exit_edges[h] == leaving
    for v in reachable:
        assert set(s.node_loops[v]) == {h for h in headers if v in s.loop_body[h]}
    if not s.irreducible_edges:  # reducible: loops nest, outermost first
        for v in reachable:
            sizes = [len(s.loop_body[h]) for h in s.node_loops[v]]
            assert sizes == sorted(sizes, reverse=True)
            assert len(set(sizes)) == len(sizes)
        for h in headers:
            outer = s.node_loops[h][:-1]
            assert s.loop_parent[h] == (outer[-1] if outer else None)

    for node in bp.nodes:
        preds = [e.source for i, e in enumerate(bp.edges) if e.target == node.id and i not in back]
        assert s.predecessors[node.id] == tuple(dict.fromkeys(preds))


@pytest.fixture(scope="module")
def million_chain() -> Blueprint:
    """A 1,000,000-node chain of real models (about 10 s to build, hence `slow`)."""
    n = 1_000_000
    config = NodeConfig()  # shared: model_construct would build a default one per node
    nodes = tuple(
        NodeDefinition.model_construct(id=f"n{i}", uses="task", params={}, config=config)
        for i in range(n)
    )
    edges = tuple(
        EdgeDefinition.model_construct(source=f"n{i}", target=f"n{i + 1}") for i in range(n - 1)
    )
    return Blueprint.model_construct(id="chain", nodes=nodes, edges=edges)


def timed(label: str, fn: Callable[[], T]) -> tuple[T, float]:
    started = time.perf_counter()
    result = fn()
    elapsed = time.perf_counter() - started
    print(f"{label} on a 1,000,000-node chain: {elapsed:.2f} s")
    return result, elapsed


@pytest.mark.slow
def test_million_node_chain_structure(million_chain: Blueprint) -> None:
    s, elapsed = timed("compute_structure", lambda: compute_structure(million_chain))
    assert s.start_ids == ("n0",)
    assert len(s.reachable) == 1_000_000
    assert s.back_edges == frozenset()
    assert s.predecessors["n999999"] == ("n999998",)
    assert s.node_loops["n500000"] == ()
    assert elapsed < 30  # generous for loaded machines; about 2 s on an idle one


@pytest.mark.slow
def test_million_node_chain_analysis_and_lint(million_chain: Blueprint) -> None:
    a, elapsed = timed("analyze_blueprint", lambda: analyze_blueprint(million_chain))
    assert a.terminal_node_ids == ("n999999",)
    assert a.is_dag and a.cycles == () and a.join_node_ids == ()
    assert elapsed < 60
    report, elapsed = timed("lint_blueprint", lambda: lint_blueprint(million_chain, {"task": 1}))
    assert report.issues == ()
    assert elapsed < 60
