"""lint_blueprint (SPEC 8.2): one fixture per code, with exact issues."""

from __future__ import annotations

from typing import Any

from flowcraft_core.analysis import LintIssue, LintReport, lint_blueprint

from .examples import builder_loop, order_review
from .helpers import EdgeSpec, edge, make_bp


def task() -> None:
    """A registered implementation that declares no actions."""


def codes(report: LintReport) -> list[tuple[str, str]]:
    return [(i.code, i.path) for i in report.issues]


class Decides:
    """A class node that declares its actions (as BaseNode subclasses do)."""

    actions = ("ok", "retry")


REGISTRY: dict[str, object] = {
    "task": task,
    "decides": Decides,
    "orders.fetch": task,
    "orders.fetch_cached": task,
    "orders.score": task,
    "orders.approve": task,
    "orders.reject": task,
    "orders.notify": task,
}


def test_spec_example_is_clean() -> None:
    report = lint_blueprint(order_review(), REGISTRY)
    assert report.issues == ()
    assert report.is_valid
    assert lint_blueprint(builder_loop(), REGISTRY).issues == ()


def test_missing_implementation() -> None:
    bp = make_bp([{"id": "a", "uses": "x.y"}, {"id": "s", "uses": "sleep"}], [("a", "s")])
    report = lint_blueprint(bp, REGISTRY)
    assert report.issues == (
        LintIssue(
            code="MISSING_IMPLEMENTATION",
            severity="error",
            message="node 'a' uses 'x.y', which is not registered",
            node_id="a",
            edge_index=None,
            path="nodes[0].uses",
        ),
    )
    assert not report.is_valid
    assert lint_blueprint(bp).issues == ()  # registry checks need a registry


def test_missing_fallback_implementation() -> None:
    bp = make_bp(
        [
            {"id": "a", "uses": "task", "config": {"fallback": "impl.missing"}},
            {"id": "b", "uses": "task", "config": {"fallback": "task"}},
            {"id": "c", "uses": "task", "config": {"fallback": "fb"}},
            {"id": "d", "uses": "task", "config": {"fallback": "sleep"}},
            "fb",
        ],
        [("a", "b"), ("b", "c"), ("c", "d")],
    )
    report = lint_blueprint(bp, REGISTRY)
    assert report.issues == (
        LintIssue(
            "MISSING_FALLBACK_IMPLEMENTATION",
            "error",
            "node 'a' falls back to 'impl.missing', which is neither a node id nor a "
            "registered implementation",
            "a",
            None,
            "nodes[0].config.fallback",
        ),
    )


def test_invalid_batch_worker() -> None:
    def scatter(node_id: str, worker: str) -> dict[str, Any]:
        params = {"workerUsesKey": worker, "gatherNodeId": "g"}
        return {"id": node_id, "uses": "batch-scatter", "params": params}

    bp = make_bp(
        [scatter("s1", "w.missing"), scatter("s2", "task"), {"id": "g", "uses": "batch-gather"}],
        [("s1", "g"), ("s2", "g")],
    )
    assert lint_blueprint(bp, REGISTRY).issues == (
        LintIssue(
            "INVALID_BATCH_WORKER",
            "error",
            "batch-scatter 's1' runs workerUsesKey 'w.missing', which is not registered",
            "s1",
            None,
            "nodes[0].params.workerUsesKey",
        ),
    )
    assert lint_blueprint(bp).issues == ()


def test_unknown_subflow_blueprint() -> None:
    child = make_bp(["only"], bp_id="child")
    bp = make_bp(
        [
            {"id": "a", "uses": "subflow", "params": {"blueprintId": "child"}},
            {"id": "b", "uses": "subflow", "params": {"blueprintId": "nope"}},
        ],
        [("a", "b")],
    )
    expected = (
        LintIssue(
            "UNKNOWN_SUBFLOW_BLUEPRINT",
            "error",
            "subflow 'b' runs blueprint 'nope', which is not in blueprints",
            "b",
            None,
            "nodes[1].params.blueprintId",
        ),
    )
    assert lint_blueprint(bp, blueprints={"child": child}).issues == expected
    assert lint_blueprint(bp, blueprints=[child]).issues == expected
    assert lint_blueprint(bp).issues == ()
    assert lint_blueprint(bp, blueprints={}).issues[0].node_id == "a"


def test_unreachable_node_and_cycle_without_entry_point() -> None:
    bp = make_bp(
        [{"id": "s", "uses": "task", "config": {"fallback": "fb"}}, "x", "y", "fb"],
        [("x", "y"), ("y", "x")],
    )
    report = lint_blueprint(bp)
    assert report.issues == (
        LintIssue(
            "UNREACHABLE_NODE",
            "warning",
            "node 'x' is not reachable from the entry nodes and never runs",
            "x",
            None,
            "nodes[1]",
        ),
        LintIssue(
            "CYCLE_WITHOUT_ENTRY_POINT",
            "warning",
            "closed cycle ['x', 'y'] has no node in metadata.cycleEntryPoints; it never runs",
            "x",
            None,
            "nodes[1]",
        ),
        LintIssue(
            "UNREACHABLE_NODE",
            "warning",
            "node 'y' is not reachable from the entry nodes and never runs",
            "y",
            None,
            "nodes[2]",
        ),
    )
    assert report.is_valid  # warnings only


def test_cycle_without_entry_point_when_it_is_the_only_way_in() -> None:
    bp = make_bp(
        [{"id": "y", "uses": "loop-controller", "params": {"condition": "true"}}, "x"],
        [edge("y", "x", action="continue"), ("x", "y")],
    )
    assert lint_blueprint(bp).issues == (
        LintIssue(
            "CYCLE_WITHOUT_ENTRY_POINT",
            "warning",
            "closed cycle ['y', 'x'] has no node in metadata.cycleEntryPoints; it enters at 'y'",
            "y",
            None,
            "nodes[0]",
        ),
    )
    listed = make_bp(["y", "x"], [edge("y", "x", condition="true"), ("x", "y")], entries=["y"])
    assert lint_blueprint(listed).issues == ()


def test_unguarded_loop() -> None:
    shape: list[EdgeSpec] = [("s", "h"), ("h", "b"), ("b", "h"), edge("h", "out", condition="done")]
    bp = make_bp(["s", "h", "b", "out"], shape)
    assert lint_blueprint(bp).issues == (
        LintIssue(
            "UNGUARDED_LOOP",
            "warning",
            "loop at 'h' has no edge with a condition or action and its header is not a "
            "loop-controller; it only stops at the iteration limit",
            "h",
            None,
            "nodes[1]",
        ),
    )  # a condition on the exit edge does not stop the back edge


def test_guarded_loops_are_not_reported() -> None:
    nodes: list[str | dict[str, Any]] = ["s", "h", "b", "out"]
    guarded_back: list[EdgeSpec] = [
        ("s", "h"),
        ("h", "b"),
        edge("b", "h", condition="again"),
        ("h", "out"),
    ]
    guarded_inside: list[EdgeSpec] = [
        ("s", "h"),
        edge("h", "b", action="more"),
        ("b", "h"),
        ("h", "out"),
    ]
    assert lint_blueprint(make_bp(nodes, guarded_back)).issues == ()
    assert lint_blueprint(make_bp(nodes, guarded_inside)).issues == ()
    controller = {"id": "h", "uses": "loop-controller", "params": {"condition": "true"}}
    bare = [("s", "h"), ("h", "b"), ("b", "h"), ("h", "out")]
    assert codes(lint_blueprint(make_bp(["s", controller, "b", "out"], bare))) == []


def test_useless_join_strategy() -> None:
    bp = make_bp(
        [
            {"id": "a", "uses": "task", "config": {"joinStrategy": "any"}},
            "b",
            {"id": "c", "uses": "task", "config": {"joinStrategy": "all"}},
            {"id": "d", "uses": "task", "config": {"joinStrategy": "any"}},
        ],
        [("a", "b"), ("b", "c"), ("a", "d"), ("c", "d")],
    )
    assert lint_blueprint(bp).issues == (
        LintIssue(
            "USELESS_JOIN_STRATEGY",
            "warning",
            "node 'a' sets joinStrategy 'any' but has no predecessor, so there is nothing to join",
            "a",
            None,
            "nodes[0].config.joinStrategy",
        ),
        LintIssue(
            "USELESS_JOIN_STRATEGY",
            "warning",
            "node 'c' sets joinStrategy 'all' but has one predecessor, so there is nothing to join",
            "c",
            None,
            "nodes[2].config.joinStrategy",
        ),
    )


def test_join_strategy_on_a_loop_header_counts_forward_predecessors_only() -> None:
    bp = make_bp(
        [
            "a",
            {
                "id": "L",
                "uses": "loop-controller",
                "params": {"condition": "true"},
                "config": {"joinStrategy": "any"},
            },
            "b",
        ],
        [("a", "L"), edge("L", "b", action="continue"), ("b", "L")],
    )
    assert codes(lint_blueprint(bp)) == [("USELESS_JOIN_STRATEGY", "nodes[1].config.joinStrategy")]


def test_unreachable_action_builtins() -> None:
    loop = {"id": "L", "uses": "loop-controller", "params": {"condition": "true"}}
    bp = make_bp(
        [
            "a",
            loop,
            "b",
            "done",
            {"id": "w", "uses": "wait"},
            {"id": "z", "uses": "sleep", "params": {"duration": 0}},
        ],
        [
            ("a", "L"),
            edge("L", "b", action="continue"),
            ("b", "L"),
            edge("L", "done", action="again"),  # 3
            ("done", "w"),
            edge("w", "z", action="anything"),  # wait: any action
            edge("z", "a", action="wake"),  # 6: sleep returns no action
        ],
        entries=["a"],
    )
    assert lint_blueprint(bp).issues == (
        LintIssue(
            "UNREACHABLE_ACTION",
            "warning",
            "edge 'L' -> 'done' needs action 'again', which 'L' never returns (possible "
            "actions: 'break', 'continue')",
            "L",
            3,
            "edges[3].action",
        ),
        LintIssue(
            "UNREACHABLE_ACTION",
            "warning",
            "edge 'z' -> 'a' needs action 'wake', which 'z' never returns (possible actions: none)",
            "z",
            6,
            "edges[6].action",
        ),
    )


def test_unreachable_action_declared_by_implementations() -> None:
    bp = make_bp(
        [{"id": "d", "uses": "decides"}, "x", "y", "t"],
        [edge("d", "x", action="ok"), edge("d", "y", action="nope"), edge("t", "x", action="k")],
    )
    report = lint_blueprint(bp, REGISTRY)
    assert codes(report) == [("UNREACHABLE_ACTION", "edges[1].action")]
    assert report.issues[0].message == (
        "edge 'd' -> 'y' needs action 'nope', which 'd' never returns (possible actions: "
        "'ok', 'retry')"
    )
    assert lint_blueprint(bp).issues == ()  # without a registry nothing is known


def test_fallback_actions_count_for_the_node() -> None:
    class Other:
        actions = "other"

    registry = {**REGISTRY, "other": Other}
    nodes: list[str | dict[str, Any]] = [
        {"id": "d", "uses": "decides", "config": {"fallback": "fb"}},
        {"id": "fb", "uses": "other"},
        {"id": "e", "uses": "decides", "config": {"fallback": "task"}},
        "x",
    ]
    edges = [edge("d", "x", action="other"), edge("e", "x", action="anything")]
    assert lint_blueprint(make_bp(nodes, edges), registry).issues == ()  # task: undeclared


def test_duplicate_edge() -> None:
    bp = make_bp(
        ["a", "b"],
        [("a", "b"), edge("a", "b", condition="x"), ("a", "b"), edge("a", "b", action="go")],
    )
    assert lint_blueprint(bp).issues == (
        LintIssue(
            "DUPLICATE_EDGE",
            "warning",
            "edge 'a' -> 'b' repeats edges[0] (same action and condition)",
            "a",
            2,
            "edges[2]",
        ),
    )


def test_issues_are_in_document_order() -> None:
    bp = make_bp(
        [{"id": "a", "uses": "nope"}, {"id": "x", "uses": "nope"}, "y", "b"],
        [("x", "y"), ("y", "x"), ("a", "b"), ("a", "b")],
    )
    assert codes(lint_blueprint(bp, REGISTRY)) == [
        ("MISSING_IMPLEMENTATION", "nodes[0].uses"),
        ("MISSING_IMPLEMENTATION", "nodes[1].uses"),  # within a node: in the order of CODES
        ("UNREACHABLE_NODE", "nodes[1]"),
        ("CYCLE_WITHOUT_ENTRY_POINT", "nodes[1]"),
        ("UNREACHABLE_NODE", "nodes[2]"),
        ("DUPLICATE_EDGE", "edges[3]"),
    ]


def test_unknown_edge_endpoints_do_not_crash() -> None:
    bp = make_bp(["a"], [edge("ghost", "a", action="x"), ("a", "ghost")])
    assert lint_blueprint(bp, REGISTRY).issues == ()
    assert str(LintIssue("DUPLICATE_EDGE", "warning", "m", path="edges[1]")) == (
        "edges[1]: warning DUPLICATE_EDGE: m"
    )


def test_duplicate_node_ids_keep_paths_of_the_first_occurrence() -> None:
    bp = make_bp(["a", "b", "a", {"id": "c", "uses": "nope"}], [("a", "b")])
    assert codes(lint_blueprint(bp, REGISTRY)) == [("MISSING_IMPLEMENTATION", "nodes[3].uses")]
