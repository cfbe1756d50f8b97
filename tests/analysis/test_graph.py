"""compute_structure: entries (SPEC 3.1) and dominator loops (SPEC 3.7) on fixed shapes."""

from __future__ import annotations

import pytest

from flowcraft_core.analysis import GraphStructure, compute_structure

from .helpers import edge, make_bp


def builder_loop() -> GraphStructure:
    # a->L, L->b [continue], b->L, L->done [break]
    return compute_structure(
        make_bp(
            ["a", "L", "b", "done"],
            [
                ("a", "L"),
                edge("L", "b", action="continue"),
                ("b", "L"),
                edge("L", "done", action="break"),
            ],
        )
    )


def test_builder_loop() -> None:
    s = builder_loop()
    assert s.node_ids == ("a", "L", "b", "done")
    assert s.start_ids == ("a",)
    assert s.entry_ids == ("a",)
    assert s.reachable == {"a", "L", "b", "done"}
    assert s.back_edges == {2}
    assert s.loop_headers == ("L",)
    assert dict(s.loop_body) == {"L": {"L", "b"}}
    assert dict(s.loop_parent) == {"L": None}
    assert dict(s.node_loops) == {"a": (), "L": ("L",), "b": ("L",), "done": ()}
    assert dict(s.exit_edges) == {"L": (3,)}
    assert s.irreducible_edges == ()
    assert dict(s.predecessors) == {"a": (), "L": ("a",), "b": ("L",), "done": ("L",)}
    assert s.cyclic_components == (("L", "b"),)
    assert s.closed_cycles_without_entry == ()


def test_nested_loops() -> None:
    s = compute_structure(
        make_bp(
            ["s", "O", "I", "b", "c", "done"],
            [
                ("s", "O"),  # 0
                ("O", "I"),  # 1
                ("I", "b"),  # 2
                ("b", "I"),  # 3 inner back edge
                ("I", "c"),  # 4 inner exit
                ("c", "O"),  # 5 outer back edge
                ("O", "done"),  # 6 outer exit
            ],
        )
    )
    assert s.back_edges == {3, 5}
    assert s.loop_headers == ("O", "I")
    assert dict(s.loop_body) == {"O": {"O", "I", "b", "c"}, "I": {"I", "b"}}
    assert dict(s.loop_parent) == {"O": None, "I": "O"}
    assert s.node_loops["b"] == ("O", "I")
    assert s.node_loops["I"] == ("O", "I")
    assert s.node_loops["c"] == ("O",)
    assert s.node_loops["done"] == ()
    assert dict(s.exit_edges) == {"O": (6,), "I": (4,)}
    assert s.predecessors["O"] == ("s",)
    assert s.predecessors["I"] == ("O",)
    assert s.irreducible_edges == ()


def test_disjoint_loops() -> None:
    s = compute_structure(
        make_bp(
            ["s", "A", "a", "B", "b"],
            [("s", "A"), ("A", "a"), ("a", "A"), ("A", "B"), ("B", "b"), ("b", "B")],
        )
    )
    assert s.back_edges == {2, 5}
    assert s.loop_headers == ("A", "B")
    assert dict(s.loop_body) == {"A": {"A", "a"}, "B": {"B", "b"}}
    assert dict(s.loop_parent) == {"A": None, "B": None}
    assert s.node_loops["B"] == ("B",)
    assert dict(s.exit_edges) == {"A": (3,), "B": ()}


def test_self_loop() -> None:
    s = compute_structure(make_bp(["s", "a", "z"], [("s", "a"), ("a", "a"), ("a", "z")]))
    assert s.back_edges == {1}
    assert s.loop_headers == ("a",)
    assert dict(s.loop_body) == {"a": {"a"}}
    assert s.node_loops["a"] == ("a",)
    assert dict(s.exit_edges) == {"a": (2,)}
    assert s.predecessors["a"] == ("s",)
    assert s.cyclic_components == (("a",),)


def test_irreducible_two_entry_cycle() -> None:
    s = compute_structure(
        make_bp(["s", "a", "b"], [("s", "a"), ("s", "b"), ("a", "b"), ("b", "a")])
    )
    assert s.back_edges == frozenset()
    assert s.loop_headers == ()
    assert s.irreducible_edges == (2, 3)


def test_irreducible_cycle_inside_a_loop() -> None:
    # The loop at h is fine; inside it, a and b form a cycle entered at both a and b.
    s = compute_structure(
        make_bp(
            ["s", "h", "a", "b", "t"],
            [("s", "h"), ("h", "a"), ("h", "b"), ("a", "b"), ("b", "a"), ("b", "t"), ("t", "h")],
        )
    )
    assert s.back_edges == {6}
    assert s.irreducible_edges == (3, 4)


def test_closed_cycle_without_entry_is_unreachable_when_there_are_starts() -> None:
    s = compute_structure(make_bp(["s", "x", "y"], [("x", "y"), ("y", "x")]))
    assert s.start_ids == ("s",)
    assert s.entry_ids == ("s",)
    assert s.closed_cycles_without_entry == (("x", "y"),)
    assert s.reachable == {"s"}
    assert s.back_edges == frozenset()
    assert "x" not in s.node_loops
    assert s.predecessors["x"] == ("y",)  # unreachable edges are never back edges


def test_closed_cycle_with_listed_entry() -> None:
    s = compute_structure(
        make_bp(["s", "x", "y", "z"], [("x", "y"), ("y", "z"), ("z", "x")], entries=["z", "y"])
    )
    assert s.entry_ids == ("s", "z")  # the first listed, not the first in blueprint order
    assert s.closed_cycles_without_entry == ()
    assert s.back_edges == {1}  # y -> z
    assert s.loop_headers == ("z",)
    assert dict(s.loop_body) == {"z": {"x", "y", "z"}}
    assert s.predecessors["z"] == ()


def test_closed_cycle_without_starts_enters_at_first_node() -> None:
    s = compute_structure(make_bp(["y", "x"], [("x", "y"), ("y", "x")]))
    assert s.start_ids == ()
    assert s.entry_ids == ("y",)
    assert s.closed_cycles_without_entry == (("y", "x"),)
    assert s.back_edges == {0}  # x -> y
    assert s.reachable == {"x", "y"}


def test_entered_cycle_is_not_closed() -> None:
    s = compute_structure(make_bp(["s", "x", "y"], [("s", "x"), ("x", "y"), ("y", "x")]))
    assert s.entry_ids == ("s",)
    assert s.closed_cycles_without_entry == ()


def test_single_node_without_self_loop_is_not_a_cycle() -> None:
    s = compute_structure(make_bp(["a"]))
    assert s.start_ids == s.entry_ids == ("a",)
    assert s.cyclic_components == ()


def test_closed_self_loop_is_a_closed_cycle() -> None:
    s = compute_structure(make_bp(["s", "x"], [("x", "x")]))
    assert s.closed_cycles_without_entry == (("x",),)
    s = compute_structure(make_bp(["s", "x"], [("x", "x")], entries=["x"]))
    assert s.entry_ids == ("s", "x")
    assert s.back_edges == {0}


def test_fallback_nodes_are_not_starts() -> None:
    bp = make_bp(
        [
            {"id": "a", "uses": "task", "config": {"fallback": "fb"}},
            "fb",
            {"id": "b", "uses": "task", "config": {"fallback": "some.impl"}},
        ],
        [("a", "b")],
    )
    s = compute_structure(bp)
    assert s.fallback_ids == {"fb"}
    assert s.start_ids == ("a",)
    assert s.entry_ids == ("a",)
    assert s.reachable == {"a", "b"}


def test_fallback_node_with_edges_still_never_starts() -> None:
    bp = make_bp(
        [{"id": "a", "uses": "task", "config": {"fallback": "fb"}}, "fb", "c"],
        [("fb", "c")],
    )
    s = compute_structure(bp)
    assert s.start_ids == ("a",)
    assert s.reachable == {"a"}


def test_unknown_edge_endpoints_are_ignored() -> None:
    s = compute_structure(make_bp(["a", "b"], [("a", "ghost"), ("ghost", "b"), ("a", "b")]))
    assert s.start_ids == ("a",)
    assert s.predecessors["b"] == ("a",)
    assert s.reachable == {"a", "b"}


def test_duplicate_node_ids_do_not_crash() -> None:
    s = compute_structure(make_bp(["a", "b", "a"], [("a", "b")]))
    assert s.node_ids == ("a", "b")


def test_predecessors_are_distinct_in_first_declaration_order() -> None:
    s = compute_structure(
        make_bp(["a", "b", "j"], [("b", "j"), ("a", "b"), ("a", "j"), ("b", "j")])
    )
    assert s.predecessors["j"] == ("b", "a")
    assert len(s.predecessors) == 3
    assert list(s.predecessors) == ["a", "b", "j"]


def test_mappings_are_read_only() -> None:
    s = builder_loop()
    with pytest.raises(TypeError):
        s.loop_body["x"] = frozenset()  # type: ignore[index]
    with pytest.raises(KeyError):
        s.node_loops["missing"]


def test_topological_fast_path_and_reordered_dag_agree() -> None:
    edges = [("a", "b"), ("b", "c"), ("a", "c")]
    s1 = compute_structure(make_bp(["a", "b", "c"], edges))
    s2 = compute_structure(make_bp(["c", "b", "a"], edges))
    assert s1.reachable == s2.reachable == {"a", "b", "c"}
    assert s1.predecessors["c"] == s2.predecessors["c"] == ("b", "a")
    assert s1.back_edges == s2.back_edges == frozenset()
    assert s1.cyclic_components == s2.cyclic_components == ()


def test_empty_blueprint() -> None:
    s = compute_structure(make_bp([]))
    assert s.node_ids == s.entry_ids == ()
    assert s.reachable == frozenset()
