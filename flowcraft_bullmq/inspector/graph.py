"""A blueprint drawn as SVG, nodes coloured by state: laid out here, with no JS library.

Layers are the topological generations of the graph without its back edges (a cycle the
structure does not report is broken at its first node); layers are columns, left to right.
Inside a layer, nodes are ordered by the mean position of their predecessors (two barycenter
sweeps), which removes most crossings of the usual fan-out/fan-in shapes. Back edges are drawn
dashed, below the boxes. Every node id and label is XML-escaped.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from html import escape
from typing import Final

from flowcraft_core.analysis import compute_structure
from flowcraft_core.analysis.diagrams import edge_label
from flowcraft_core.blueprint import Blueprint

BOX_W: Final = 156
BOX_H: Final = 44
COL_GAP: Final = 74
ROW_GAP: Final = 22
MARGIN: Final = 16
#: Beyond this many nodes the page lists nodes instead of drawing them.
MAX_DRAWN: Final = 400
_LABEL_CHARS: Final = 20


@dataclass(frozen=True, slots=True)
class Layout:
    """Box positions (top-left corners) by node id, and the drawing's size."""

    positions: dict[str, tuple[float, float]]
    width: float
    height: float
    back_edges: frozenset[int]


def layout(bp: Blueprint) -> Layout:
    """Columns by topological generation of the forward graph, ordered by barycenters."""
    order = {node.id: i for i, node in enumerate(bp.nodes)}
    structure = compute_structure(bp)
    back = frozenset(structure.back_edges) | frozenset(structure.irreducible_edges)
    preds: dict[str, list[str]] = {node_id: [] for node_id in order}
    succs: dict[str, list[str]] = {node_id: [] for node_id in order}
    for i, edge in enumerate(bp.edges):
        if i not in back and edge.source in order and edge.target in order:
            preds[edge.target].append(edge.source)
            succs[edge.source].append(edge.target)
    columns = _generations(order, preds, succs)
    rank = {node_id: float(i) for column in columns for i, node_id in enumerate(column)}
    for _ in range(2):
        for column in columns[1:]:
            column.sort(key=lambda n: (_mean(rank, preds[n], rank[n]), order[n]))
            rank.update({node_id: float(i) for i, node_id in enumerate(column)})
    tallest = max((len(c) for c in columns), default=0)
    height = 2 * MARGIN + tallest * BOX_H + max(0, tallest - 1) * ROW_GAP + (30 if back else 0)
    positions: dict[str, tuple[float, float]] = {}
    for x_index, column in enumerate(columns):
        used = len(column) * BOX_H + (len(column) - 1) * ROW_GAP
        top = MARGIN + (tallest * BOX_H + max(0, tallest - 1) * ROW_GAP - used) / 2
        for y_index, node_id in enumerate(column):
            positions[node_id] = (
                MARGIN + x_index * (BOX_W + COL_GAP),
                top + y_index * (BOX_H + ROW_GAP),
            )
    width = 2 * MARGIN + len(columns) * BOX_W + max(0, len(columns) - 1) * COL_GAP
    return Layout(positions, width, height, back)


def _generations(
    order: Mapping[str, int], preds: Mapping[str, list[str]], succs: Mapping[str, list[str]]
) -> list[list[str]]:
    """Kahn's algorithm by generations. A cycle left in the graph (one the structure does not
    report as a back edge) is broken at its first node in blueprint order."""
    missing = {node_id: len(set(p)) for node_id, p in preds.items()}
    current = [node_id for node_id in order if missing[node_id] == 0]
    placed: set[str] = set()
    columns: list[list[str]] = []
    while len(placed) < len(order):
        if not current:
            current = [min((n for n in order if n not in placed), key=order.__getitem__)]
        columns.append(current)
        placed.update(current)
        following: list[str] = []
        for node_id in current:
            for target in dict.fromkeys(succs[node_id]):
                if target in placed:
                    continue
                missing[target] -= 1
                if missing[target] == 0:
                    following.append(target)
        current = sorted(following, key=order.__getitem__)
    return columns


def _mean(rank: Mapping[str, float], nodes: Iterable[str], default: float) -> float:
    values = [rank[n] for n in nodes if n in rank]
    return sum(values) / len(values) if values else default


def _short(text: str) -> str:
    return text if len(text) <= _LABEL_CHARS else text[: _LABEL_CHARS - 1] + "…"


def to_svg(bp: Blueprint, states: Mapping[str, str], *, default_state: str = "pending") -> str:
    """The blueprint as an inline `<svg>`; each node box has class `node st-<state>` and a
    `data-node` attribute, and links to `#node-<index>` (its timeline rows)."""
    lay = layout(bp)
    index = {node.id: i for i, node in enumerate(bp.nodes)}
    bottom = lay.height - MARGIN + 4
    parts = [
        f'<svg class="graph" xmlns="http://www.w3.org/2000/svg" width="{lay.width:.0f}" '
        f'height="{lay.height:.0f}" viewBox="0 0 {lay.width:.0f} {lay.height:.0f}" '
        f'role="img" aria-label="blueprint {escape(bp.id)}">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" '
        'class="arrowhead"/></marker></defs>',
    ]
    for i, edge in enumerate(bp.edges):
        if edge.source not in lay.positions or edge.target not in lay.positions:
            continue
        sx, sy = lay.positions[edge.source]
        tx, ty = lay.positions[edge.target]
        label = edge_label(edge)
        if i in lay.back_edges or tx <= sx:
            x1, y1 = sx + BOX_W / 2, sy + BOX_H
            x2, y2 = tx + BOX_W / 2, ty + BOX_H
            path = (
                f"M{x1:.1f},{y1:.1f} C{x1:.1f},{bottom:.1f} {x2:.1f},{bottom:.1f} {x2:.1f},{y2:.1f}"
            )
            mid = ((x1 + x2) / 2, bottom - 4)
            css = "edge back"
        else:
            x1, y1 = sx + BOX_W, sy + BOX_H / 2
            x2, y2 = tx, ty + BOX_H / 2
            bend = (x2 - x1) / 2
            path = (
                f"M{x1:.1f},{y1:.1f} C{x1 + bend:.1f},{y1:.1f} {x2 - bend:.1f},{y2:.1f} "
                f"{x2:.1f},{y2:.1f}"
            )
            mid = ((x1 + x2) / 2, (y1 + y2) / 2 - 4)
            css = "edge"
        parts.append(f'<path class="{css}" d="{path}" marker-end="url(#arrow)"/>')
        if label:
            parts.append(
                f'<text class="edge-label" x="{mid[0]:.1f}" y="{mid[1]:.1f}" '
                f'text-anchor="middle"><title>{escape(label)}</title>{escape(_short(label))}'
                "</text>"
            )
    for node in bp.nodes:
        x, y = lay.positions[node.id]
        state = states.get(node.id, default_state)
        ident = escape(node.id)
        parts.append(
            f'<a href="#node-{index[node.id]}"><g class="node st-{escape(state)}" '
            f'data-node="{ident}" data-state="{escape(state)}">'
            f"<title>{ident} ({escape(node.uses)}): {escape(state)}</title>"
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{BOX_W}" height="{BOX_H}" rx="7"/>'
            f'<text class="node-id" x="{x + BOX_W / 2:.1f}" y="{y + 18:.1f}" '
            f'text-anchor="middle">{escape(_short(node.id))}</text>'
            f'<text class="node-state" x="{x + BOX_W / 2:.1f}" y="{y + 34:.1f}" '
            f'text-anchor="middle">{escape(state)} · {escape(_short(node.uses))}</text>'
            "</g></a>"
        )
    parts.append("</svg>")
    return "".join(parts)


__all__ = ["MAX_DRAWN", "Layout", "layout", "to_svg"]
