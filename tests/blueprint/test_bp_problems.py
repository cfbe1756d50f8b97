"""Every problem code of SPEC 1.4 with its exact path, and the error format of SPEC 1.5."""

from __future__ import annotations

import json

import pytest
from bp_support import ORDER_REVIEW_JSON, doc, edge, error, messages, node, problems

from flowcraft_core.blueprint import load_blueprint


def test_spec_error_format_exactly() -> None:
    source = json.loads(ORDER_REVIEW_JSON)
    source["nodes"][2]["config"] = {"joinStrategy": "sometimes"}
    source["edges"][3]["target"] = "aprove"
    err = error(source)
    assert err.blueprint_id == "order-review"
    assert str(err) == (
        "blueprint 'order-review' is invalid (2 problems):\n"
        "  nodes[2].config.joinStrategy: must be 'all' or 'any'\n"
        "  edges[3].target: unknown node 'aprove'"
    )


# --- schema -----------------------------------------------------------------------------------


def test_missing_field() -> None:
    source = doc(node("a"), {"id": "b"})
    assert messages(source) == {"nodes[1].uses": "required field missing"}
    assert problems(source) == [("nodes[1].uses", "MISSING_FIELD")]
    assert problems({"nodes": []}) == [("id", "MISSING_FIELD")]
    assert problems(doc(edges=[{"source": "a"}])) == [("edges[0].target", "MISSING_FIELD")]


@pytest.mark.parametrize(
    ("fields", "path", "message"),
    [
        ({"uses": 3}, "nodes[0].uses", "must be a string"),
        ({"params": []}, "nodes[0].params", "must be an object"),
        ({"config": "fast"}, "nodes[0].config", "must be an object"),
        ({"config": {"maxRetries": 1.5}}, "nodes[0].config.maxRetries", "must be an integer >= 1"),
        ({"config": {"maxRetries": "3"}}, "nodes[0].config.maxRetries", "must be an integer >= 1"),
        ({"config": {"retryDelay": "1s"}}, "nodes[0].config.retryDelay", "must be a number >= 0"),
        ({"config": {"timeout": True}}, "nodes[0].config.timeout", "must be a number > 0"),
        ({"config": {"fallback": 4}}, "nodes[0].config.fallback", "must be a string"),
        ({"inputs": 5}, "nodes[0].inputs", "must be a string or an object of strings"),
        ({"inputs": ["a"]}, "nodes[0].inputs", "must be a string or an object of strings"),
        ({"inputs": {"order": 5}}, "nodes[0].inputs.order", "must be a string"),
    ],
)
def test_invalid_type(fields: dict[str, object], path: str, message: str) -> None:
    source = doc(node("a", **fields))
    assert problems(source) == [(path, "INVALID_TYPE")]
    assert messages(source) == {path: message}


def test_invalid_type_of_containers() -> None:
    assert problems({"id": "x", "nodes": {"a": {"uses": "w"}}}) == [("nodes", "INVALID_TYPE")]
    assert problems(doc(edges={"a": "b"})) == [("edges", "INVALID_TYPE")]
    assert problems(doc("a", node("b"))) == [("nodes[0]", "INVALID_TYPE")]
    assert problems(doc(metadata=[])) == [("metadata", "INVALID_TYPE")]
    assert problems({"id": 5, "nodes": []}) == [("id", "INVALID_TYPE")]
    assert messages(doc(edges=[edge("a", None)])) == {"edges[0].target": "must be a string"}  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("source", "path", "message"),
    [
        (
            doc(node("a", config={"maxRetries": 0})),
            "nodes[0].config.maxRetries",
            "must be an integer >= 1",
        ),
        (
            doc(node("a", config={"retryDelay": -1})),
            "nodes[0].config.retryDelay",
            "must be a number >= 0",
        ),
        (doc(node("a", config={"timeout": 0})), "nodes[0].config.timeout", "must be a number > 0"),
        (
            doc(node("a", config={"backoff": "linear"})),
            "nodes[0].config.backoff",
            "must be 'fixed' or 'exponential'",
        ),
        (
            doc(node("a", config={"joinStrategy": "most"})),
            "nodes[0].config.joinStrategy",
            "must be 'all' or 'any'",
        ),
        (doc(node("")), "nodes[0].id", "must not be empty"),
        (doc(node("x" * 201)), "nodes[0].id", "must have at most 200 characters"),
        (doc(node("a\nb")), "nodes[0].id", "must not contain control characters"),
        (doc(node("a", uses="")), "nodes[0].uses", "must not be empty"),
        (
            doc(node("a"), node("b"), edges=[edge("a", "b", action="")]),
            "edges[0].action",
            "must not be empty",
        ),
        (doc(metadata={"version": 2}), "metadata.version", "must be a string"),
        ({"id": "", "nodes": []}, "id", "must not be empty"),
    ],
)
def test_invalid_value(source: dict[str, object], path: str, message: str) -> None:
    assert problems(source) == [(path, "INVALID_VALUE")]
    assert messages(source) == {path: message}


def test_unknown_field() -> None:
    source = doc(node("a", config={"retries": 3}), bogus=1)
    assert problems(source) == [
        ("nodes[0].config.retries", "UNKNOWN_FIELD"),
        ("bogus", "UNKNOWN_FIELD"),
    ]
    assert messages(source)["bogus"] == "unknown field 'bogus'"


# --- semantic checks --------------------------------------------------------------------------


def test_duplicate_node_id_names_the_first_index() -> None:
    source = doc(node("a"), node("b"), node("c"), node("d"), node("b"))
    assert problems(source) == [("nodes[4].id", "DUPLICATE_NODE_ID")]
    assert messages(source) == {"nodes[4].id": "duplicate node id 'b' (first used at nodes[1])"}


def test_unknown_edge_endpoints() -> None:
    source = doc(
        node("a"),
        node("approve"),
        edges=[edge("a", "approve"), edge("a", "approve"), edge("ghost", "a"), edge("a", "aprove")],
    )
    assert problems(source) == [
        ("edges[2].source", "UNKNOWN_EDGE_SOURCE"),
        ("edges[3].target", "UNKNOWN_EDGE_TARGET"),
    ]
    assert messages(source)["edges[3].target"] == "unknown node 'aprove'"


def test_unknown_cycle_entry_point() -> None:
    source = doc(node("a"), metadata={"cycleEntryPoints": ["b", "a"]})
    assert problems(source) == [("metadata.cycleEntryPoints[0]", "UNKNOWN_CYCLE_ENTRY_POINT")]
    assert messages(source) == {"metadata.cycleEntryPoints[0]": "unknown node 'b'"}


def test_invalid_expression_paths_and_columns() -> None:
    source = doc(
        node("a"),
        node("b"),
        node("L", "loop-controller", params={"condition": "count <"}),
        edges=[
            edge("a", "b"),
            edge("b", "L"),
            edge("a", "b", condition="result.output >= 1 )"),
            edge("a", "b", transform="{'x': }"),
            edge("L", "a", action="continue"),
        ],
    )
    assert problems(source) == [
        ("nodes[2].params.condition", "INVALID_EXPRESSION"),
        ("edges[2].condition", "INVALID_EXPRESSION"),
        ("edges[3].transform", "INVALID_EXPRESSION"),
    ]
    for message in messages(source).values():
        assert message.startswith("expression does not compile: ")
        assert "column" in message
    assert "column 20" in messages(source)["edges[2].condition"]


def test_fallback_self() -> None:
    source = doc(node("a", config={"fallback": "a"}))
    assert problems(source) == [("nodes[0].config.fallback", "FALLBACK_SELF")]


def test_fallback_has_edges() -> None:
    source = doc(
        node("a", config={"fallback": "f"}),
        node("f"),
        node("b"),
        edges=[edge("a", "b"), edge("f", "b"), edge("b", "f")],
    )
    assert problems(source) == [
        ("edges[1].source", "FALLBACK_HAS_EDGES"),
        ("edges[2].target", "FALLBACK_HAS_EDGES"),
    ]
    assert "fallback" in messages(source)["edges[1].source"]


def test_fallback_chain() -> None:
    source = doc(
        node("a", config={"fallback": "f"}), node("f", config={"fallback": "g"}), node("g")
    )
    assert problems(source) == [("nodes[1].config.fallback", "FALLBACK_CHAIN")]
    # an implementation-key fallback on a fallback node is a chain too
    source = doc(node("a", config={"fallback": "f"}), node("f", config={"fallback": "pkg.backup"}))
    assert problems(source) == [("nodes[1].config.fallback", "FALLBACK_CHAIN")]


def test_fallback_to_an_implementation_key_is_fine() -> None:
    bp = load_blueprint(doc(node("a", config={"fallback": "pkg.cached"})))
    assert bp.node("a").config.fallback == "pkg.cached"


def test_loop_without_continue() -> None:
    source = doc(
        node("start"),
        node("body"),
        node("done"),
        node("L", "loop-controller", params={"condition": "true"}),
        edges=[
            edge("start", "L"),
            edge("L", "body", action="again"),
            edge("body", "L"),
            edge("L", "done", action="break"),
        ],
    )
    assert problems(source) == [("nodes[3]", "LOOP_WITHOUT_CONTINUE")]
    source["edges"][1]["action"] = "continue"
    assert load_blueprint(source).node("L").uses == "loop-controller"


def test_irreducible_cycle() -> None:
    source = doc(
        node("s"),
        node("a"),
        node("b"),
        edges=[edge("s", "a"), edge("s", "b"), edge("a", "b"), edge("b", "a")],
    )
    assert problems(source) == [
        ("edges[2]", "IRREDUCIBLE_CYCLE"),
        ("edges[3]", "IRREDUCIBLE_CYCLE"),
    ]


def test_unsupported_config_on_waiting_builtins() -> None:
    source = doc(
        node("w", "wait", config={"maxRetries": 2}),
        node("h", "webhook", config={"timeout": 1000}),
        node("s", "sleep", params={"duration": 5}, config={"maxRetries": 3, "timeout": 5}),
        node("c", "subflow", params={"blueprintId": "child"}, config={"timeout": 10}),
        node("ok", "wait", config={"maxRetries": 1, "retryDelay": 5}),
        node("work", config={"maxRetries": 5, "timeout": 10}),
    )
    assert problems(source) == [
        ("nodes[0].config.maxRetries", "UNSUPPORTED_CONFIG"),
        ("nodes[1].config.timeout", "UNSUPPORTED_CONFIG"),
        ("nodes[2].config.maxRetries", "UNSUPPORTED_CONFIG"),
        ("nodes[2].config.timeout", "UNSUPPORTED_CONFIG"),
        ("nodes[3].config.timeout", "UNSUPPORTED_CONFIG"),
    ]


def test_reserved_node_id() -> None:
    scatter = node("batch", "batch-scatter", params={"workerUsesKey": "w", "gatherNodeId": "g"})
    source = doc(
        scatter,
        node("g", "batch-gather"),
        node("batch[0]"),
        node("other[3]"),
        node("batch[x]"),
        node("batch[12]"),
        edges=[edge("batch", "g")],
    )
    assert problems(source) == [
        ("nodes[2].id", "RESERVED_NODE_ID"),
        ("nodes[5].id", "RESERVED_NODE_ID"),
    ]


# --- collection and ordering ------------------------------------------------------------------


def test_every_problem_is_collected_in_document_order() -> None:
    source = {
        "edges": [edge("a", "nowhere"), {"source": "a"}],
        "id": "many",
        "nodes": [
            node("a", config={"joinStrategy": "most", "maxRetries": 0}),
            {"uses": 3},
            node("a"),
            node("s", "sleep"),
        ],
        "metadata": {"version": 1},
    }
    err = error(source)
    assert [(p.path, p.code) for p in err.problems] == [
        ("edges[0].target", "UNKNOWN_EDGE_TARGET"),
        ("edges[1].target", "MISSING_FIELD"),
        ("nodes[0].config.joinStrategy", "INVALID_VALUE"),
        ("nodes[0].config.maxRetries", "INVALID_VALUE"),
        ("nodes[1].uses", "INVALID_TYPE"),
        ("nodes[1].id", "MISSING_FIELD"),
        ("nodes[2].id", "DUPLICATE_NODE_ID"),
        ("nodes[3].params.duration", "MISSING_PARAM"),
        ("metadata.version", "INVALID_VALUE"),
    ]
    assert str(err).startswith("blueprint 'many' is invalid (9 problems):\n")


def test_yaml_document_order_follows_the_text() -> None:
    text = (
        "nodes:\n  - {id: a, uses: w, config: {timeout: 0}}\n"
        "id: x\nedges:\n  - {source: a, target: b}\n"
    )
    assert problems(text) == [
        ("nodes[0].config.timeout", "INVALID_VALUE"),
        ("edges[0].target", "UNKNOWN_EDGE_TARGET"),
    ]


def test_checks_on_broken_parts_are_skipped() -> None:
    # `a` has a bad config but a good id: edges into it are not dangling.
    source = doc(node("a", config={"timeout": -1}), node("b"), edges=[edge("b", "a")])
    assert problems(source) == [("nodes[0].config.timeout", "INVALID_VALUE")]
    # `nodes` is not an array: no endpoint or duplicate checks at all.
    assert problems({"id": "x", "nodes": "a", "edges": [edge("a", "b")]}) == [
        ("nodes", "INVALID_TYPE")
    ]
    # a broken edge might be the loop's continue edge: no LOOP_WITHOUT_CONTINUE.
    source = doc(
        node("L", "loop-controller", params={"condition": "true"}),
        edges=[{"source": "L", "target": 3, "action": "continue"}],
    )
    assert problems(source) == [("edges[0].target", "INVALID_TYPE")]
    # expressions on valid edges are still compiled next to schema problems
    source = doc(node("a", uses=5), node("b"), edges=[edge("a", "b", condition="(")])
    assert problems(source) == [
        ("nodes[0].uses", "INVALID_TYPE"),
        ("edges[0].condition", "INVALID_EXPRESSION"),
    ]


def test_problem_inside_a_non_json_value_is_reported_once() -> None:
    source = doc(node("s", "sleep", params={"duration": float("inf")}))
    assert problems(source) == [("nodes[0].params.duration", "INVALID_VALUE")]


def test_paths_quote_keys_that_are_not_names() -> None:
    source = doc(node("a", inputs={"my key": 1, "ok": "a"}))
    assert problems(source) == [('nodes[0].inputs["my key"]', "INVALID_TYPE")]
