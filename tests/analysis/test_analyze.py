"""analyze_blueprint (SPEC 8.1)."""

from __future__ import annotations

from flowcraft_core.analysis import BlueprintAnalysis, analyze_blueprint

from .examples import builder_loop, order_review
from .helpers import make_bp


def test_order_review() -> None:
    assert analyze_blueprint(order_review()) == BlueprintAnalysis(
        start_node_ids=("fetch",),
        entry_node_ids=("fetch",),
        terminal_node_ids=("notify",),
        fallback_node_ids=("fetch_cached",),
        join_node_ids=("approve", "reject", "notify"),
        back_edges=(),
        loop_headers=(),
        cycles=(),
        unreachable_node_ids=(),
        is_dag=True,
        node_count=7,
        edge_count=8,
    )


def test_builder_loop() -> None:
    assert analyze_blueprint(builder_loop()) == BlueprintAnalysis(
        start_node_ids=("a",),
        entry_node_ids=("a",),
        terminal_node_ids=("done",),
        fallback_node_ids=(),
        join_node_ids=(),  # the back edge b -> L does not make L a join
        back_edges=(2,),
        loop_headers=("L",),
        cycles=(("L", "b", "L"),),
        unreachable_node_ids=(),
        is_dag=False,
        node_count=4,
        edge_count=4,
    )


def test_cycles_per_back_edge_in_nested_loops() -> None:
    a = analyze_blueprint(
        make_bp(
            ["s", "O", "I", "b", "c", "done"],
            [
                ("s", "O"),
                ("O", "I"),
                ("I", "b"),
                ("b", "I"),  # 3
                ("I", "c"),
                ("c", "O"),  # 5
                ("O", "done"),
            ],
        )
    )
    assert a.back_edges == (3, 5)
    assert a.loop_headers == ("O", "I")
    assert a.cycles == (("I", "b", "I"), ("O", "I", "c", "O"))


def test_two_back_edges_to_one_header_and_a_self_loop() -> None:
    a = analyze_blueprint(
        make_bp(
            ["s", "h", "x", "y", "z"],
            [("s", "h"), ("h", "x"), ("x", "y"), ("y", "h"), ("x", "h"), ("h", "z"), ("z", "z")],
        )
    )
    assert a.back_edges == (3, 4, 6)
    assert a.cycles == (("h", "x", "y", "h"), ("h", "x", "h"), ("z", "z"))
    assert a.join_node_ids == ()
    assert a.terminal_node_ids == ()  # z has its self-loop


def test_diamond_join_and_terminals() -> None:
    a = analyze_blueprint(
        make_bp(["A", "B", "C", "D"], [("A", "B"), ("A", "C"), ("B", "D"), ("C", "D")])
    )
    assert a.join_node_ids == ("D",)
    assert a.terminal_node_ids == ("D",)
    assert a.is_dag


def test_parallel_edges_do_not_make_a_join() -> None:
    a = analyze_blueprint(make_bp(["A", "B"], [("A", "B"), ("A", "B")]))
    assert a.join_node_ids == ()


def test_unreachable_excludes_fallback_nodes() -> None:
    bp = make_bp(
        [{"id": "a", "uses": "task", "config": {"fallback": "fb"}}, "fb", "x", "y"],
        [("x", "y"), ("y", "x")],
    )
    a = analyze_blueprint(bp)
    assert a.start_node_ids == ("a",)
    assert a.fallback_node_ids == ("fb",)
    assert a.unreachable_node_ids == ("x", "y")
    assert a.terminal_node_ids == ("a",)
    assert a.is_dag is False  # an unreachable cycle is still a cycle
    assert a.back_edges == ()
    assert a.cycles == ()


def test_empty_blueprint() -> None:
    a = analyze_blueprint(make_bp([]))
    assert a.node_count == a.edge_count == 0
    assert a.is_dag
    assert a.start_node_ids == a.terminal_node_ids == ()
