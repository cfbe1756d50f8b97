"""Plans of plain nodes and edges keep only their common attributes per object; the rest read
as class-level defaults (issue 6: memory of a million-node plan). Nodes and edges that set one
carry it, and both kinds read the same."""

from __future__ import annotations

import sys

from flowcraft_core import load_blueprint
from flowcraft_core.runtime.plan import BACK, FORWARD, EdgePlan, NodePlan, get_plan

from .support import bp, edge, node

NODE_DEFAULTS = {
    "join_any": False,
    "loops": (),
    "is_header": False,
    "is_loop_controller": False,
    "loop_condition": None,
    "fallback_node": None,
    "fallback_key": None,
    "is_fallback": False,
    "is_scatter": False,
    "is_gather": False,
    "scatter_of_gather": None,
    "has_expressions": False,
    "exit_edges": (),
}
EDGE_DEFAULTS = {
    "action": None,
    "condition_text": None,
    "condition": None,
    "transform_text": None,
    "transform": None,
    "kind": FORWARD,
    "common": 0,
    "enter": 0,
    "exit_header": None,
}


def test_plain_nodes_and_edges_are_compact_and_read_defaults() -> None:
    plan = get_plan(load_blueprint(bp([node("a"), node("b")], [edge("a", "b")])))
    a, b = plan.nodes
    assert type(a) is NodePlan and type(b) is NodePlan
    assert type(plan.edges[0]) is EdgePlan
    for name, default in NODE_DEFAULTS.items():
        assert getattr(a, name) == default
    for name, default in EDGE_DEFAULTS.items():
        assert getattr(plan.edges[0], name) == default
    assert a.out_edges == (plan.edges[0],) and b.preds == (0,)
    assert plan.by_id == {"a": 0, "b": 1}
    assert a.params == {} and b.index == 1


def test_nodes_and_edges_that_set_rare_attributes_carry_them() -> None:
    doc = bp(
        [
            node("start", config={"fallback": "backup_impl", "joinStrategy": "any"}),
            node("loop", "loop-controller", params={"condition": "true"}),
            node("body"),
            node("done"),
            node("after"),
        ],
        [
            edge("start", "loop"),
            edge("loop", "body", action="continue"),
            edge("body", "loop"),
            edge("loop", "done", action="break", transform="input"),
            edge("done", "after"),
        ],
    )
    plan = get_plan(load_blueprint(doc))
    start, loop, body, done, _ = plan.nodes
    assert start.join_any and start.fallback_key == "backup_impl"
    assert loop.is_loop_controller and loop.is_header and loop.has_expressions
    assert loop.loop_condition is not None and loop.loops == (1,) and body.loops == (1,)
    assert done.loops == () and type(done) is NodePlan
    back = plan.edges[2]
    assert back.kind == BACK and back.source == 2 and back.target == 1
    leave = plan.edges[3]
    assert leave.action == "break" and leave.transform is not None
    assert leave.exit_header == 1 and leave.common == 0
    assert loop.exit_edges == (leave,)
    # A compact plan object really has fewer slots than one carrying the rare attributes.
    assert sys.getsizeof(done) < sys.getsizeof(loop)
    assert plan.edges[0].enter == 1  # into the loop: not a plain edge
    assert type(plan.edges[4]) is EdgePlan
    assert sys.getsizeof(plan.edges[4]) < sys.getsizeof(leave)
