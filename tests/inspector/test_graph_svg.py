"""The inspector's own graph layout: every node drawn once, boxes never overlap, forward edges
go left to right (back edges and unreported cycles are drawn as back edges), ids escaped."""

from __future__ import annotations

import itertools
import re
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from flowcraft_bullmq.inspector.graph import BOX_H, BOX_W, layout, to_svg
from flowcraft_core.blueprint import Blueprint


def blueprint(nodes: list[str], edges: list[tuple[int, int]], **meta: Any) -> Blueprint:
    return Blueprint.model_validate(
        {
            "id": "g",
            "nodes": [{"id": node, "uses": "x"} for node in nodes],
            "edges": [{"source": nodes[s], "target": nodes[t]} for s, t in edges],
            "metadata": meta,
        }
    )


@st.composite
def graphs(draw: st.DrawFn) -> tuple[int, list[tuple[int, int]]]:
    size = draw(st.integers(1, 14))
    pairs = st.tuples(st.integers(0, size - 1), st.integers(0, size - 1))
    edges = draw(st.lists(pairs, max_size=3 * size, unique=True))
    return size, [(s, t) for s, t in edges if s != t]


@given(graphs())
def test_layout_places_every_node_without_overlap(graph: tuple[int, list[tuple[int, int]]]) -> None:
    size, edges = graph
    names = [f"n{i}" for i in range(size)]
    # Make every cycle enterable: the loader rejects closed cycles without an entry point.
    bp = blueprint(names, edges, cycleEntryPoints=names)
    lay = layout(bp)
    assert set(lay.positions) == set(names)
    boxes = sorted(lay.positions.values())
    for (x1, y1), (x2, y2) in itertools.pairwise(boxes):
        assert x1 != x2 or abs(y1 - y2) >= BOX_H, (x1, y1, x2, y2)
    for x, y in boxes:
        assert 0 <= x and x + BOX_W <= lay.width and 0 <= y and y + BOX_H <= lay.height
    # Without back edges, every edge points right.
    for i, (s, t) in enumerate(edges):
        if i not in lay.back_edges and _acyclic(size, edges):
            assert lay.positions[names[s]][0] < lay.positions[names[t]][0]
    svg = to_svg(bp, {names[0]: "failed"})
    assert len(re.findall(r'<g class="node st-', svg)) == size
    assert f'data-node="{names[0]}" data-state="failed"' in svg


def _acyclic(size: int, edges: list[tuple[int, int]]) -> bool:
    indegree = [0] * size
    for _, t in edges:
        indegree[t] += 1
    ready = [i for i in range(size) if indegree[i] == 0]
    seen = 0
    while ready:
        node = ready.pop()
        seen += 1
        for s, t in edges:
            if s == node:
                indegree[t] -= 1
                if indegree[t] == 0:
                    ready.append(t)
    return seen == size


def test_fan_out_and_in_columns_and_escaping() -> None:
    bp = blueprint(["<a&b>", "x", "y", "join"], [(0, 1), (0, 2), (1, 3), (2, 3)])
    lay = layout(bp)
    xs = {node: x for node, (x, _) in lay.positions.items()}
    assert xs["<a&b>"] < xs["x"] == xs["y"] < xs["join"]
    svg = to_svg(bp, {})
    assert "&lt;a&amp;b&gt;" in svg and "<a&b>" not in svg
    assert svg.count('data-state="pending"') == 4
