"""to_mermaid and to_dot (SPEC 8.3, 8.4): exact output, and escaping for any node id.

The escaping invariants checked by the property tests were validated once against the real
renderers (mermaid 11's parser under jsdom, Graphviz `dot -Tjson`) on thousands of generated
ids; these tests keep the invariants without needing Node or Graphviz in CI.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from flowcraft_core.analysis import to_dot, to_mermaid
from flowcraft_core.blueprint.model import Blueprint

from .examples import builder_loop, order_review
from .helpers import make_bp

ORDER_REVIEW_MERMAID = """\
flowchart TD
    n0["fetch"]
    n1["fetch_cached"]
    n2["score"]
    n3("manual")
    n4["approve"]
    n5["reject"]
    n6["notify"]
    n0 --> n2
    n2 -->|"result.output.score #gt;= 0.8"| n4
    n2 -->|"result.output.score #gt;= 0.5 and result.output.score #lt; 0.8"| n3
    n2 -->|"result.output.score #lt; 0.5"| n5
    n3 -->|"approve"| n4
    n3 -->|"reject"| n5
    n4 -->|"{'status': 'approved', 'order': input}"| n6
    n5 -->|"{'status': 'rejected'}"| n6
    n0 -.->|"fallback"| n1
"""

ORDER_REVIEW_DOT = """\
digraph "order-review" {
    "fetch" [label="fetch", shape=box];
    "fetch_cached" [label="fetch_cached", shape=box];
    "score" [label="score", shape=box];
    "manual" [label="manual", shape=box, style="rounded"];
    "approve" [label="approve", shape=box];
    "reject" [label="reject", shape=box];
    "notify" [label="notify", shape=box];
    "fetch" -> "score";
    "score" -> "approve" [label="result.output.score >= 0.8"];
    "score" -> "manual" [label="result.output.score >= 0.5 and result.output.score < 0.8"];
    "score" -> "reject" [label="result.output.score < 0.5"];
    "manual" -> "approve" [label="approve"];
    "manual" -> "reject" [label="reject"];
    "approve" -> "notify" [label="{'status': 'approved', 'order': input}"];
    "reject" -> "notify" [label="{'status': 'rejected'}"];
    "fetch" -> "fetch_cached" [label="fallback", style=dashed];
}
"""


@dataclass(frozen=True)
class Event:
    type: str
    node_id: str | None = None
    edge_index: int | None = None
    result: bool | None = None


def test_mermaid_spec_example() -> None:
    assert to_mermaid(order_review()) == ORDER_REVIEW_MERMAID


def test_dot_spec_example() -> None:
    assert to_dot(order_review()) == ORDER_REVIEW_DOT


def test_mermaid_shapes_and_labels_joined() -> None:
    bp = make_bp(
        [
            {"id": "L", "uses": "loop-controller", "params": {"condition": "true"}},
            {"id": "w", "uses": "webhook"},
            {"id": "s", "uses": "sleep", "params": {"duration": 1}},
            {"id": "sub", "uses": "subflow", "params": {"blueprintId": "c"}},
            {"id": "sc", "uses": "batch-scatter"},
            {"id": "g", "uses": "batch-gather"},
        ],
        [
            {
                "source": "L",
                "target": "w",
                "action": "go",
                "condition": "x > 1",
                "transform": "input",
            }
        ],
    )
    assert to_mermaid(bp) == (
        "flowchart TD\n"
        '    n0{"L"}\n'
        '    n1("w")\n'
        '    n2("s")\n'
        '    n3[["sub"]]\n'
        '    n4[["sc"]]\n'
        '    n5[["g"]]\n'
        '    n0 -->|"go | x #gt; 1 | input"| n1\n'
    )
    assert '"L" [label="L", shape=diamond];' in to_dot(bp)
    assert '"sub" [label="sub", shape=box, peripheries=2];' in to_dot(bp)
    assert '"L" -> "w" [label="go | x > 1 | input"];' in to_dot(bp)


def test_mermaid_with_events() -> None:
    events = [
        Event("workflow:start"),
        Event("node:finish", "a"),
        Event("edge:evaluate", edge_index=0, result=True),
        Event("node:finish", "L"),
        Event("edge:evaluate", edge_index=1, result=False),
        Event("edge:evaluate", edge_index=3, result=True),
        Event("node:skipped", "b"),
        Event("node:error", "done"),
        Event("node:finish", "done"),  # a failure anywhere wins
        Event("node:finish", "ghost"),
        Event("node:error", "scatter[3]"),
        Event("edge:evaluate", edge_index=99, result=True),
    ]
    assert to_mermaid(builder_loop(), events=events) == (
        "flowchart TD\n"
        '    n0["a"]\n'
        '    n1{"L"}\n'
        '    n2["b"]\n'
        '    n3["done"]\n'
        "    n0 --> n1\n"
        '    n1 -->|"continue"| n2\n'
        "    n2 --> n1\n"
        '    n1 -->|"break"| n3\n'
        "    classDef finished fill:#d3f9d8,stroke:#2b8a3e,color:#000\n"
        "    class n0,n1 finished\n"
        "    classDef failed fill:#ffe3e3,stroke:#c92a2a,color:#000\n"
        "    class n3 failed\n"
        "    classDef skipped fill:#f1f3f5,stroke:#868e96,color:#868e96\n"
        "    class n2 skipped\n"
        "    linkStyle 0,3 stroke:#2b8a3e,stroke-width:3px\n"
    )


def test_finished_beats_skipped_across_iterations() -> None:
    events = [Event("node:skipped", "b"), Event("node:finish", "b"), Event("node:skipped", "b")]
    out = to_mermaid(builder_loop(), events=events)
    assert "    class n2 finished\n" in out
    assert "skipped" not in out
    assert "linkStyle" not in to_mermaid(builder_loop(), events=[])


def test_link_numbers_skip_edges_with_unknown_endpoints() -> None:
    bp = make_bp(["a", "b"], [("a", "ghost"), ("a", "b")])
    out = to_mermaid(bp, events=[Event("edge:evaluate", edge_index=1, result=True)])
    assert out.endswith("    n0 --> n1\n    linkStyle 0 stroke:#2b8a3e,stroke-width:3px\n")


def test_mermaid_escaping_examples() -> None:
    bp = make_bp(['say "hi"', "50% #1 <b>", " style: x ", "tick`", "a\u00a0b\u2028c"])
    lines = to_mermaid(bp).splitlines()[1:]
    assert lines == [
        '    n0["say #quot;hi#quot;"]',
        '    n1["50#37; #35;1 #lt;b#gt;"]',
        '    n2["#32;#115;tyle: x#32;"]',
        '    n3["tick#96;"]',
        '    n4["a#160;b#8232;c"]',
    ]


def test_dot_escaping_examples() -> None:
    bp = make_bp(['q"uote', "back\\", "\\N"], [('q"uote', "back\\")], bp_id='my "flow"')
    assert to_dot(bp) == (
        'digraph "my \\"flow\\"" {\n'
        '    "q\\"uote" [label="q\\"uote", shape=box];\n'
        '    "back\\\\" [label="back\\\\", shape=box];\n'
        '    "\\\\N" [label="\\\\N", shape=box];\n'
        '    "q\\"uote" -> "back\\\\";\n'
        "}\n"
    )


# --- any node id renders --------------------------------------------------------------------

node_ids = st.text(
    st.characters(exclude_categories=["Cs", "Cc"]),
    min_size=1,
    max_size=30,
)
QUOTED = r'"([^"]*)"'
MERMAID_NODE = re.compile(r"    n(\d+)(\[\[|\[|\(|\{)" + QUOTED + r"(\]\]|\]|\)|\})")
MERMAID_EDGE = re.compile(r"    n(\d+) (?:-->|-->\|" + QUOTED + r"\||-\.->\|\"fallback\"\|) n(\d+)")
ENTITY = re.compile(r"#(?:(\d+)|(quot|lt|gt|amp));")
NAMED = {"quot": '"', "lt": "<", "gt": ">", "amp": "&"}


def mermaid_decode(label: str) -> str:
    """Undo mermaid_text, asserting it left nothing Mermaid would misread."""
    assert "#" not in ENTITY.sub("", label), label  # every '#' starts an entity
    assert "%" not in label and "`" not in label and "<" not in label and ">" not in label
    assert "style" not in label and "classDef" not in label
    assert label == label.strip() and all(c.isprintable() for c in label)
    return ENTITY.sub(lambda m: chr(int(m[1])) if m[1] else NAMED[m[2]], label)


def shown(text: str) -> str:
    """What a Mermaid label can show: control characters become U+FFFD."""
    return "".join("\ufffd" if ord(c) < 32 or 0x7F <= ord(c) <= 0x9F else c for c in text)


def random_bp(ids: list[str], data: st.DataObject) -> Blueprint:
    pick = st.sampled_from(ids)
    edges = [
        {"source": data.draw(pick), "target": data.draw(pick), "action": data.draw(pick)},
        {"source": data.draw(pick), "target": data.draw(pick), "condition": data.draw(pick)},
    ]
    nodes: list[dict[str, Any]] = [
        {
            "id": i,
            "uses": data.draw(st.sampled_from(["task", "wait", "subflow", "loop-controller"])),
        }
        for i in ids
    ]
    nodes[0]["config"] = {"fallback": ids[-1]}
    return Blueprint.model_validate({"id": data.draw(node_ids), "nodes": nodes, "edges": edges})


@given(st.lists(node_ids, min_size=2, max_size=5, unique=True), st.data())
@settings(max_examples=300, deadline=None)
def test_mermaid_renders_any_node_id(ids: list[str], data: st.DataObject) -> None:
    bp = random_bp(ids, data)
    lines = to_mermaid(bp).split("\n")
    assert lines[0] == "flowchart TD" and lines[-1] == ""
    body = lines[1:-1]
    labels = []
    for line in body[: len(ids)]:
        m = MERMAID_NODE.fullmatch(line)
        assert m, line
        labels.append(mermaid_decode(m[3]))
    assert labels == [shown(i) for i in ids]
    edge_labels = []
    for line in body[len(ids) :]:
        m = MERMAID_EDGE.fullmatch(line)
        assert m, line
        edge_labels.append(mermaid_decode(m[2]) if m[2] is not None else "fallback")
    expected = [shown(" | ".join(p for p in (e.action, e.condition) if p)) for e in bp.edges]
    assert edge_labels[:2] == expected
    assert len(edge_labels) == 3  # two edges and the fallback relation


DOT_STRING = re.compile(r'"((?:[^"\\]|\\.)*)"')


def dot_decode(text: str) -> str:
    """A quoted DOT string's content as Graphviz shows it in a label."""
    return re.sub(r"\\(.)", r"\1", text)


@given(st.lists(node_ids, min_size=2, max_size=5, unique=True), st.data())
@settings(max_examples=300, deadline=None)
def test_dot_renders_any_node_id(ids: list[str], data: st.DataObject) -> None:
    bp = random_bp(ids, data)
    lines = to_dot(bp).split("\n")
    assert lines[-2:] == ["}", ""]
    header = re.fullmatch(r"digraph " + DOT_STRING.pattern + r" \{", lines[0])
    assert header and dot_decode(header[1]) == bp.id
    for line, node_id in zip(lines[1:], ids, strict=False):
        m = re.fullmatch(
            r"    " + DOT_STRING.pattern + r" \[label=" + DOT_STRING.pattern + r", shape=.*\];",
            line,
        )
        assert m, line
        assert dot_decode(m[1]) == dot_decode(m[2]) == node_id
    for line, e in zip(lines[1 + len(ids) :], bp.edges, strict=False):
        m = re.fullmatch(
            r"    " + DOT_STRING.pattern + " -> " + DOT_STRING.pattern + r"( \[label=.*\])?;",
            line,
        )
        assert m, line
        assert (dot_decode(m[1]), dot_decode(m[2])) == (e.source, e.target)
