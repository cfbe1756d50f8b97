"""SPEC 3.7 loops and 5.2 `loop-controller`: trace, iterations, nesting, joins, guards, exits."""

from __future__ import annotations

import asyncio
from typing import Any

import flow_maps
import pytest
from builtins_support import echo, make_runtime, of_type, started, trace
from flow_maps import flow

from flowcraft_core import LoopLimitError


async def set_zero(ctx: Any) -> dict[str, Any]:
    await ctx.context.set("count", 0)
    return {"output": 0}


async def increment(ctx: Any) -> dict[str, Any]:
    count = await ctx.context.get("count") + 1
    await ctx.context.set("count", count)
    return {"output": count}


def builder_loop(
    condition: str, *, max_iterations: int | None = None, body: str = "increment"
) -> dict[str, Any]:
    """The builder's loop (a→L→b→L, L→done) over this file's node keys."""
    return flow_maps.builder_loop(
        condition, start="set_zero", body=body, done="echo", max_iterations=max_iterations
    )


IMPLS = {"set_zero": set_zero, "increment": increment, "echo": echo}


async def test_builder_loop_trace() -> None:
    runtime, bus = make_runtime(IMPLS, concurrency=1)
    result = await runtime.run(builder_loop("count < 3"))

    assert result.status == "completed"
    assert result.errors == []
    assert trace(bus) == [
        ("node:start", "a", ()),
        ("node:finish", "a", ()),
        ("node:start", "L", (0,)),
        ("node:finish", "L", (0,)),
        ("node:start", "b", (0,)),
        ("node:finish", "b", (0,)),
        ("node:start", "L", (1,)),
        ("node:finish", "L", (1,)),
        ("node:start", "b", (1,)),
        ("node:finish", "b", (1,)),
        ("node:start", "L", (2,)),
        ("node:finish", "L", (2,)),
        ("node:start", "b", (2,)),
        ("node:finish", "b", (2,)),
        ("node:start", "L", (3,)),
        ("node:finish", "L", (3,)),
        ("node:skipped", "b", (3,), "dead_path"),
        ("node:start", "done", ()),
        ("node:finish", "done", ()),
    ]
    controller = [
        (e.iteration, e.result.action, e.result.output)
        for e in of_type(bus, "node:finish")
        if e.node_id == "L"
    ]
    assert controller == [
        ((0,), "continue", 0),
        ((1,), "continue", 1),
        ((2,), "continue", 2),
        ((3,), "break", 3),
    ]
    ctx = result.context
    assert ctx["count"] == 3
    assert ctx["_outputs.b"] == 3
    assert ctx["_outputs.L"] == 3
    assert ctx["_outputs.done"] == 3
    assert ctx["_inputs.done"] == 3
    assert [e.status for e in of_type(bus, "workflow:finish")] == ["completed"]


async def test_ctx_iteration_and_controller_iteration_scope() -> None:
    seen: list[tuple[str, tuple[int, ...], Any]] = []

    async def body(ctx: Any) -> dict[str, Any]:
        seen.append((ctx.node_id, ctx.iteration, ctx.input))
        return {"output": f"out{ctx.iteration[0]}"}

    runtime, bus = make_runtime({**IMPLS, "body": body})
    result = await runtime.run(builder_loop("iteration < 4", body="body"))
    assert result.status == "completed"
    assert seen == [("b", (0,), 0), ("b", (1,), "out0"), ("b", (2,), "out1"), ("b", (3,), "out2")]
    assert result.context["_outputs.b"] == "out3"
    assert result.context["_outputs.done"] == "out3"
    assert started(bus, "L") == [(0,), (1,), (2,), (3,), (4,)]


NESTED = flow(
    "nested",
    "start:echo L1 pre:record L2 b:record post:record done:record",
    "start>L1 L1>pre:continue pre>L2 L2>b:continue b>L2 L2>post:break post>L1 L1>done:break",
    loops={"L1": "iteration < 2", "L2": "iteration < 3"},
)


async def test_nested_loops_restart_inner_counters() -> None:
    seen: list[tuple[str, tuple[int, ...]]] = []

    async def record(ctx: Any) -> dict[str, Any]:
        seen.append((ctx.node_id, ctx.iteration))
        return {"output": list(ctx.iteration)}

    runtime, bus = make_runtime({"echo": echo, "record": record}, concurrency=1)
    result = await runtime.run(NESTED)
    assert result.status == "completed"
    assert result.errors == []
    assert seen == [
        ("pre", (0,)),
        ("b", (0, 0)),
        ("b", (0, 1)),
        ("b", (0, 2)),
        ("post", (0,)),
        ("pre", (1,)),
        ("b", (1, 0)),
        ("b", (1, 1)),
        ("b", (1, 2)),
        ("post", (1,)),
        ("done", ()),
    ]
    assert started(bus, "L1") == [(0,), (1,), (2,)]
    assert started(bus, "L2") == [(0, 0), (0, 1), (0, 2), (0, 3), (1, 0), (1, 1), (1, 2), (1, 3)]
    skipped = [(e.node_id, e.iteration, e.reason) for e in of_type(bus, "node:skipped")]
    # Each break skips the body of the next inner iteration; the outer break skips the
    # whole body at (2,), inner loop included (skip propagation, 3.5).
    assert skipped == [
        ("b", (0, 3), "dead_path"),
        ("b", (1, 3), "dead_path"),
        ("pre", (2,), "dead_path"),
        ("L2", (2, 0), "dead_path"),
        ("b", (2, 0), "dead_path"),
        ("post", (2,), "dead_path"),
    ]
    assert result.context["_outputs.b"] == [1, 2]
    assert result.context["_outputs.post"] == [1]
    assert result.context["_outputs.done"] == []


DIAMOND_LOOP = flow(
    "diamond-loop",
    "start:echo L a:index b:tag c:tag d:echo even:tag odd:tag j:echo end:echo done:echo",
    "start>L L>a:continue a>b a>c b>d c>d a>even a>odd even>j odd>j d>end j>end end>L L>done:break",
    loops={"L": "iteration < 3"},
    when={"a>even": "result.output % 2 == 0", "a>odd": "result.output % 2 == 1"},
)


async def test_joins_get_fresh_state_each_iteration() -> None:
    async def index(ctx: Any) -> dict[str, Any]:
        return {"output": ctx.iteration[0]}

    async def tag(ctx: Any) -> dict[str, Any]:
        return {"output": f"{ctx.node_id}{ctx.input}"}

    runtime, bus = make_runtime({"echo": echo, "index": index, "tag": tag})
    result = await runtime.run(DIAMOND_LOOP)
    assert result.status == "completed"
    assert result.errors == []

    def inputs(node: str) -> list[tuple[tuple[int, ...], Any]]:
        return [(e.iteration, e.input) for e in of_type(bus, "node:start") if e.node_id == node]

    assert inputs("d") == [
        ((0,), {"b": "b0", "c": "c0"}),
        ((1,), {"b": "b1", "c": "c1"}),
        ((2,), {"b": "b2", "c": "c2"}),
    ]
    assert inputs("j") == [((0,), "even0"), ((1,), "odd1"), ((2,), "even2")]
    assert inputs("end") == [
        ((0,), {"d": {"b": "b0", "c": "c0"}, "j": "even0"}),
        ((1,), {"d": {"b": "b1", "c": "c1"}, "j": "odd1"}),
        ((2,), {"d": {"b": "b2", "c": "c2"}, "j": "even2"}),
    ]
    skipped = [(e.node_id, e.iteration) for e in of_type(bus, "node:skipped")]
    assert [s for s in skipped if s[1] != (3,)] == [("odd", (0,)), ("even", (1,)), ("odd", (2,))]
    # The break at L@(3) skips the whole body of iteration 3.
    assert sorted(s[0] for s in skipped if s[1] == (3,)) == sorted(
        ["a", "b", "c", "d", "even", "odd", "j", "end"]
    )
    assert started(bus, "done") == [()]
    assert result.context["_outputs.d"] == {"b": "b2", "c": "c2"}
    assert result.context["_outputs.j"] == "even2"
    assert result.context["_outputs.odd"] == "odd1"


async def test_max_iterations_with_condition_true() -> None:
    runtime, bus = make_runtime(IMPLS)
    result = await runtime.run(builder_loop("true", max_iterations=5))
    assert result.status == "failed"
    assert result.context["count"] == 5
    assert started(bus, "b") == [(0,), (1,), (2,), (3,), (4,)]
    assert started(bus, "L") == [(0,), (1,), (2,), (3,), (4,), (5,)]
    assert [(e.node_id, e.iteration, e.type) for e in result.errors] == [
        ("L", (5,), "LoopLimitError")
    ]
    assert isinstance(result.errors[0].exception, LoopLimitError)
    assert started(bus, "done") == []
    assert "_outputs.done" not in result.context
    assert [(e.node_id, e.iteration) for e in of_type(bus, "node:error")] == [("L", (5,))]
    # The failed header blocks its body and the exit target.
    assert [(e.node_id, e.iteration, e.reason) for e in of_type(bus, "node:skipped")] == [
        ("b", (5,), "upstream_failed"),
        ("done", (), "upstream_failed"),
    ]
    assert [e.status for e in of_type(bus, "workflow:finish")] == ["failed"]


async def test_max_iterations_not_reached_when_condition_turns_false() -> None:
    runtime, bus = make_runtime(IMPLS)
    result = await runtime.run(builder_loop("count < 3", max_iterations=3))
    assert result.status == "completed"
    assert result.errors == []
    assert started(bus, "b") == [(0,), (1,), (2,)]
    assert [e.result.action for e in of_type(bus, "node:finish") if e.node_id == "L"] == [
        "continue",
        "continue",
        "continue",
        "break",
    ]
    assert result.context["_outputs.done"] == 3


RAW_CYCLE = flow("raw-cycle", "A:echo B:echo", "A>B B>A", metadata={"cycleEntryPoints": ["B"]})


async def test_max_loop_iterations_on_a_raw_cycle() -> None:
    runtime, bus = make_runtime({"echo": echo}, max_loop_iterations=4)
    result = await asyncio.wait_for(runtime.run(RAW_CYCLE), timeout=10)
    assert result.status == "failed"
    # Entered at B (the listed entry point); A -> B is the back edge, taken 4 times.
    assert of_type(bus, "node:start")[0].node_id == "B"
    assert started(bus, "B") == [(0,), (1,), (2,), (3,), (4,)]
    assert started(bus, "A") == [(0,), (1,), (2,), (3,), (4,)]
    assert len(result.errors) == 1
    error = result.errors[0]
    assert (error.node_id, error.type, error.iteration) == ("B", "LoopLimitError", (5,))
    assert isinstance(error.exception, LoopLimitError)
    assert [e.status for e in of_type(bus, "workflow:finish")] == ["failed"]


async def test_failing_node_in_loop_body_fails_the_run() -> None:
    async def body(ctx: Any) -> dict[str, Any]:
        if ctx.iteration == (1,):
            raise RuntimeError("body broke")
        return {"output": ctx.iteration[0]}

    runtime, bus = make_runtime({**IMPLS, "body": body})
    result = await asyncio.wait_for(runtime.run(builder_loop("true", body="body")), timeout=10)
    assert result.status == "failed"
    assert [(e.node_id, e.iteration, e.type, e.message) for e in result.errors] == [
        ("b", (1,), "RuntimeError", "body broke")
    ]
    assert started(bus, "L") == [(0,), (1,)]
    assert started(bus, "b") == [(0,), (1,)]
    assert started(bus, "done") == []
    # No back edge was taken in iteration 1, so the loop ends and its untaken exit is dead.
    assert [(e.node_id, e.iteration, e.reason) for e in of_type(bus, "node:skipped")] == [
        ("done", (), "dead_path")
    ]
    assert [e.status for e in of_type(bus, "workflow:finish")] == ["failed"]


EXIT_FROM_BODY = flow(
    "exit-body",
    "start:set_zero L b:increment out:echo done:echo",
    "start>L L>b:continue b>out b>L L>done:break",
    loops={"L": "count < 4"},
    when={"b>out": "result.output >= 2"},
)


async def test_exit_edge_from_body_delivers_once() -> None:
    runtime, bus = make_runtime(IMPLS, concurrency=1)
    result = await runtime.run(EXIT_FROM_BODY)
    assert result.status == "completed"
    assert result.errors == []
    # b runs 4 times; the exit edge is taken at b@(1), b@(2), b@(3) but `out` runs once.
    assert started(bus, "b") == [(0,), (1,), (2,), (3,)]
    starts = [(e.node_id, e.iteration, e.input) for e in of_type(bus, "node:start")]
    assert [s for s in starts if s[0] == "out"] == [("out", (), 2)]
    assert started(bus, "done") == [()]
    assert result.context["_outputs.out"] == 2
    # Delivered at once: `out` starts before the loop has finished.
    order = [(e.type, e.node_id, e.iteration) for e in bus.events if e.type == "node:start"]
    assert order.index(("node:start", "out", ())) < order.index(("node:start", "L", (4,)))


async def test_exit_edge_never_taken_resolves_dead_when_loop_ends() -> None:
    flow_map = {
        **EXIT_FROM_BODY,
        "edges": [
            {**e, "condition": "result.output > 100"} if e["target"] == "out" else e
            for e in EXIT_FROM_BODY["edges"]
        ],
    }
    runtime, bus = make_runtime(IMPLS)
    result = await runtime.run(flow_map)
    assert result.status == "completed"
    assert started(bus, "out") == []
    assert [
        (e.node_id, e.iteration, e.reason)
        for e in of_type(bus, "node:skipped")
        if e.node_id == "out"
    ] == [("out", (), "dead_path")]


@pytest.mark.parametrize("limit", [1, 3])
async def test_max_iterations_limits_body_runs(limit: int) -> None:
    runtime, bus = make_runtime(IMPLS)
    result = await runtime.run(builder_loop("true", max_iterations=limit))
    assert result.status == "failed"
    assert len(started(bus, "b")) == limit
    assert [(e.node_id, e.iteration) for e in result.errors] == [("L", (limit,))]


async def test_max_loop_iterations_on_a_loop_controller() -> None:
    runtime, bus = make_runtime(IMPLS, max_loop_iterations=3)
    result = await asyncio.wait_for(runtime.run(builder_loop("true")), timeout=10)
    assert result.status == "failed"
    # Back edges are taken 3 times (after b@0..b@2); the 4th traversal fails the header.
    assert started(bus, "b") == [(0,), (1,), (2,), (3,)]
    assert started(bus, "L") == [(0,), (1,), (2,), (3,)]
    assert [(e.node_id, e.iteration, e.type) for e in result.errors] == [
        ("L", (4,), "LoopLimitError")
    ]


async def test_max_loop_iterations_counts_per_loop_entry() -> None:
    async def record(ctx: Any) -> dict[str, Any]:
        return {"output": list(ctx.iteration)}

    # The inner loop takes 3 back edges per entry (6 in all); the limit is per entry.
    runtime, bus = make_runtime({"echo": echo, "record": record}, max_loop_iterations=3)
    result = await runtime.run(NESTED)
    assert result.status == "completed"
    assert result.errors == []
    assert len(started(bus, "b")) == 6


async def test_loop_condition_sees_input() -> None:
    flow_map = flow_maps.builder_loop(
        "input < 3", start="zero", body="plus_one", done="echo", flow_id="input-loop"
    )

    async def zero(ctx: Any) -> dict[str, Any]:
        return {"output": 0}

    async def plus_one(ctx: Any) -> dict[str, Any]:
        return {"output": ctx.input + 1}

    runtime, bus = make_runtime({"echo": echo, "zero": zero, "plus_one": plus_one})
    result = await runtime.run(flow_map)
    assert result.status == "completed"
    assert [(e.iteration, e.input) for e in of_type(bus, "node:start") if e.node_id == "b"] == [
        ((0,), 0),
        ((1,), 1),
        ((2,), 2),
    ]
    assert result.context["_outputs.done"] == 3


TWO_BACK_EDGES = flow(
    "two-back-edges",
    "start:echo L x:slow y:echo z:echo done:echo",
    "start>L L>x:continue L>y:continue L>z:continue x>L y>L z>L L>done:break",
    loops={"L": "iteration < 3"},
    when={"z>L": "false"},
)


async def test_several_taken_back_edges_activate_the_header_once() -> None:
    async def slow(ctx: Any) -> dict[str, Any]:
        await asyncio.sleep(0.01)
        return {"output": ctx.input}

    runtime, bus = make_runtime({"echo": echo, "slow": slow})
    result = await runtime.run(TWO_BACK_EDGES, {"_inputs.start": "s"})
    assert result.status == "completed"
    assert result.errors == []
    assert started(bus, "L") == [(0,), (1,), (2,), (3,)]
    for node in ("x", "y", "z"):
        assert sorted(started(bus, node)) == [(0,), (1,), (2,)]
    assert started(bus, "done") == [()]
    assert result.context["_outputs.done"] == "s"


INNER_BREAK_IS_OUTER_BACK_EDGE = flow(
    "inner-break-outer-back",
    "start:echo L1 L2 b:echo done:echo",
    "start>L1 L1>L2:continue L2>b:continue b>L2 L2>L1:break L1>done:break",
    loops={"L1": "iteration < 2", "L2": "iteration < 2"},
)


async def test_inner_break_edge_that_is_the_outer_back_edge() -> None:
    runtime, bus = make_runtime({"echo": echo}, concurrency=1)
    result = await asyncio.wait_for(
        runtime.run(INNER_BREAK_IS_OUTER_BACK_EDGE, {"_inputs.start": "v"}), timeout=10
    )
    assert result.status == "completed"
    assert result.errors == []
    assert started(bus, "L1") == [(0,), (1,), (2,)]
    assert started(bus, "L2") == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]
    assert started(bus, "b") == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert started(bus, "done") == [()]
    assert result.context["_outputs.done"] == "v"


HEADER_WITH_TWO_ENTRIES = flow(
    "two-entries",
    "a1:echo a2:echo L b:echo done:echo",
    "a1>L a2>L L>b:continue b>L L>done:break",
    loops={"L": "iteration < 2"},
)


async def test_header_joins_its_forward_predecessors_once() -> None:
    runtime, bus = make_runtime({"echo": echo})
    result = await runtime.run(HEADER_WITH_TWO_ENTRIES, {"_inputs.a1": 1, "_inputs.a2": 2})
    assert result.status == "completed"
    both = {"a1": 1, "a2": 2}
    assert [(e.iteration, e.input) for e in of_type(bus, "node:start") if e.node_id == "L"] == [
        ((0,), both),
        ((1,), both),
        ((2,), both),
    ]
    assert started(bus, "b") == [(0,), (1,)]
    assert result.context["_outputs.done"] == both


NOT_IN_LOOP = flow(
    "not-in-loop",
    "start:echo L side:echo x:echo done:echo",
    "start>L L>side:continue L>x:continue x>L L>done:break",
    loops={"L": "iteration < 3"},
)


async def test_node_that_reaches_no_back_edge_is_outside_the_loop() -> None:
    # `side` is not in L's loop (it reaches no back-edge source), so L -> side is an exit
    # edge: taken at L@(0) it is delivered at once, and later takes change nothing.
    runtime, bus = make_runtime({"echo": echo})
    result = await runtime.run(NOT_IN_LOOP, {"_inputs.start": "s"})
    assert result.status == "completed"
    assert started(bus, "side") == [()]
    assert started(bus, "x") == [(0,), (1,), (2,)]
    assert started(bus, "done") == [()]


async def test_controller_condition_error_fails_the_controller() -> None:
    runtime, bus = make_runtime(IMPLS)
    result = await runtime.run(builder_loop("input + 'x'"))
    assert result.status == "failed"
    assert [(e.node_id, e.iteration, e.type) for e in result.errors] == [
        ("L", (0,), "ExpressionError")
    ]
    assert started(bus, "b") == []
    assert [(e.node_id, e.iteration, e.reason) for e in of_type(bus, "node:skipped")] == [
        ("b", (0,), "upstream_failed"),
        ("done", (), "upstream_failed"),
    ]
