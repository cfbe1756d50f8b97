"""Mermaid and DOT renderings of a blueprint (SPEC 8.3, 8.4).

Node ids are arbitrary text (1-200 characters, no control characters), so nothing user-written
ever reaches either syntax unescaped: Mermaid gets generated ids `n0…` and entity-escaped,
quoted labels; DOT gets every id and label quoted with `\\` and `"` escaped.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from typing import Any

from flowcraft_core.blueprint.model import Blueprint, EdgeDefinition, NodeDefinition
from flowcraft_core.reserved import (
    BATCH_GATHER,
    BATCH_SCATTER,
    LOOP_CONTROLLER,
    SLEEP,
    SUBFLOW,
    WAIT,
    WEBHOOK,
)

#: Mermaid node shapes as (open, close) around the quoted label.
_MERMAID_SHAPES = {
    LOOP_CONTROLLER: ("{", "}"),  # rhombus
    WAIT: ("(", ")"),  # rounded
    WEBHOOK: ("(", ")"),
    SLEEP: ("(", ")"),
    BATCH_SCATTER: ("[[", "]]"),  # subroutine
    BATCH_GATHER: ("[[", "]]"),
    SUBFLOW: ("[[", "]]"),
}
_DOT_SHAPES = {
    LOOP_CONTROLLER: "shape=diamond",
    WAIT: 'shape=box, style="rounded"',
    WEBHOOK: 'shape=box, style="rounded"',
    SLEEP: 'shape=box, style="rounded"',
    BATCH_SCATTER: "shape=box, peripheries=2",
    BATCH_GATHER: "shape=box, peripheries=2",
    SUBFLOW: "shape=box, peripheries=2",
}
_MERMAID_ENTITIES = {
    "#": "#35;",
    '"': "#quot;",
    "<": "#lt;",
    ">": "#gt;",
    "&": "#amp;",
    "%": "#37;",
}
_STATUS_CLASSES = {
    "finished": "fill:#d3f9d8,stroke:#2b8a3e,color:#000",
    "failed": "fill:#ffe3e3,stroke:#c92a2a,color:#000",
    "skipped": "fill:#f1f3f5,stroke:#868e96,color:#868e96",
}
_TAKEN_LINK = "stroke:#2b8a3e,stroke-width:3px"


def _first(bp: Blueprint) -> list[NodeDefinition]:
    """The nodes, without later duplicates of an id (a load error, reported by the loader)."""
    first: dict[str, NodeDefinition] = {}
    for node in bp.nodes:
        first.setdefault(node.id, node)
    return list(first.values())


def mermaid_text(text: str) -> str:
    """`text` safe inside a quoted Mermaid label.

    `"` becomes `#quot;` (SPEC 8.3), and `#` is escaped first so that no other `#…;` reads as
    an entity. `<>&` would be HTML, a backtick starts Markdown, and `%%{…}%%` anywhere in the
    text is a directive. Unprintable characters and whitespace at either end (Mermaid trims
    it) become numeric entities; control characters, which HTML cannot show (U+0080-U+009F get
    remapped), become U+FFFD. Mermaid drops the last `;` of any line matching
    `style.*:…#…;` or `classDef.*:…#…;` (meant for colours), so those words are broken up.
    """
    body = text.strip()
    lead = len(text) - len(text.lstrip())
    tail = lead + len(body)
    out = []
    for i, ch in enumerate(text):
        if ch in _MERMAID_ENTITIES:
            out.append(_MERMAID_ENTITIES[ch])
        elif unicodedata.category(ch) == "Cc":
            out.append("#65533;")
        elif ch == "`" or not ch.isprintable() or (ch.isspace() and not lead <= i < tail):
            out.append(f"#{ord(ch)};")
        else:
            out.append(ch)
    return "".join(out).replace("style", "#115;tyle").replace("classDef", "#99;lassDef")


def edge_label(edge: EdgeDefinition) -> str:
    """Action, condition and transform joined by ` | ` (absent ones left out)."""
    return " | ".join(p for p in (edge.action, edge.condition, edge.transform) if p is not None)


def to_mermaid(bp: Blueprint, *, events: Iterable[Any] | None = None) -> str:
    """A `flowchart TD` for `bp`; with `events` (a run's event list), nodes are coloured by how
    they ended and taken edges are highlighted."""
    gen: dict[str, str] = {}
    lines = ["flowchart TD"]
    for node in _first(bp):
        gen[node.id] = f"n{len(gen)}"
        open_, close = _MERMAID_SHAPES.get(node.uses, ("[", "]"))
        lines.append(f'    {gen[node.id]}{open_}"{mermaid_text(node.id)}"{close}')
    link_of: dict[int, int] = {}  # edge index -> Mermaid link number
    for i, edge in enumerate(bp.edges):
        if edge.source not in gen or edge.target not in gen:
            continue
        link_of[i] = len(link_of)
        label = edge_label(edge)
        arrow = f'-->|"{mermaid_text(label)}"|' if label else "-->"
        lines.append(f"    {gen[edge.source]} {arrow} {gen[edge.target]}")
    for node in _first(bp):
        fb = node.config.fallback
        if fb is not None and fb in gen and fb != node.id:
            lines.append(f'    {gen[node.id]} -.->|"fallback"| {gen[fb]}')
    if events is not None:
        lines.extend(_mermaid_styles(events, gen, link_of))
    return "\n".join(lines) + "\n"


def _mermaid_styles(
    events: Iterable[Any], gen: dict[str, str], link_of: dict[int, int]
) -> list[str]:
    """Class assignments and link styles from a run's events.

    A node that ran in several iterations shows its worst outcome: failed over finished over
    skipped. Item activations (`scatter[3]`) name no node and are ignored.
    """
    rank = {"skipped": 0, "finished": 1, "failed": 2}
    by_type = {"node:finish": "finished", "node:error": "failed", "node:skipped": "skipped"}
    status: dict[str, str] = {}
    taken: set[int] = set()
    for event in events:
        kind = getattr(event, "type", None)
        if kind == "edge:evaluate":
            index = getattr(event, "edge_index", None)
            if getattr(event, "result", False) is True and index in link_of:
                taken.add(link_of[index])
            continue
        node_id = getattr(event, "node_id", None)
        if kind in by_type and node_id in gen:
            new = by_type[kind]
            if rank[new] >= rank[status.get(node_id, "skipped")]:
                status[node_id] = new
    lines = []
    for name, style in _STATUS_CLASSES.items():
        members = [gen[n] for n in gen if status.get(n) == name]
        if members:
            lines.append(f"    classDef {name} {style}")
            lines.append(f"    class {','.join(members)} {name}")
    if taken:
        lines.append(f"    linkStyle {','.join(map(str, sorted(taken)))} {_TAKEN_LINK}")
    return lines


def dot_text(text: str) -> str:
    """`text` as a quoted DOT string. Backslashes are doubled so label escapes (`\\N`, `\\n`)
    stay literal and a trailing backslash cannot swallow the closing quote."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def to_dot(bp: Blueprint) -> str:
    """A Graphviz `digraph` for `bp`; fallback relations are dashed edges."""
    known: set[str] = set()
    lines = [f"digraph {dot_text(bp.id)} {{"]
    for node in _first(bp):
        known.add(node.id)
        shape = _DOT_SHAPES.get(node.uses, "shape=box")
        lines.append(f"    {dot_text(node.id)} [label={dot_text(node.id)}, {shape}];")
    for edge in bp.edges:
        if edge.source not in known or edge.target not in known:
            continue
        label = edge_label(edge)
        attrs = f" [label={dot_text(label)}]" if label else ""
        lines.append(f"    {dot_text(edge.source)} -> {dot_text(edge.target)}{attrs};")
    for node in _first(bp):
        fb = node.config.fallback
        if fb is not None and fb in known and fb != node.id:
            lines.append(
                f'    {dot_text(node.id)} -> {dot_text(fb)} [label="fallback", style=dashed];'
            )
    lines.append("}")
    return "\n".join(lines) + "\n"
