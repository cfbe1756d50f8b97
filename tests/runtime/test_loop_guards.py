"""SPEC 3.7 seen from the runtime: builder-style loops run their body exactly N times, and both
guards (maxIterations, max_loop_iterations) fail the run instead of hanging."""

from __future__ import annotations

from typing import Any

import pytest

from flowcraft_core import LoopLimitError

from .support import Calls, Timer, bp, edge, make_runtime, node, of_type, skipped


def loop_blueprint(condition: str, max_iterations: int | None = None) -> dict[str, Any]:
    params: dict[str, Any] = {"condition": condition}
    if max_iterations is not None:
        params["maxIterations"] = max_iterations
    return bp(
        [
            node("a", "init"),
            node("L", "loop-controller", params=params),
            node("b", "body"),
            node("done", "rec"),
        ],
        [
            edge("a", "L"),
            edge("L", "b", action="continue"),
            edge("b", "L"),
            edge("L", "done", action="break"),
        ],
    )


def impls(calls: Calls) -> dict[str, Any]:
    async def init(ctx: Any) -> dict[str, Any]:
        await ctx.context.set("count", 0)
        return {"output": 0}

    async def body(ctx: Any) -> dict[str, Any]:
        calls.add(("b", ctx.iteration))
        count = await ctx.context.get("count") + 1
        await ctx.context.set("count", count)
        return {"output": count}

    async def rec(ctx: Any) -> dict[str, Any]:
        calls.add((ctx.node_id, ctx.iteration))
        return {"output": ctx.input}

    return {"init": init, "body": body, "rec": rec}


@pytest.mark.parametrize("n", [0, 1, 3, 7])
async def test_builder_loop_runs_body_exactly_n_times_and_done_once(n: int) -> None:
    calls = Calls()
    runtime, bus = make_runtime(impls(calls))
    result = await runtime.run(loop_blueprint(f"count < {n}"))

    assert result.status == "completed", result.errors
    assert [c for c in calls.log if c[0] == "b"] == [("b", (i,)) for i in range(n)]
    assert [c for c in calls.log if c[0] == "done"] == [("done", ())]
    assert result.context["count"] == n
    assert result.context["_outputs.done"] == n
    l_starts = [e.iteration for e in of_type(bus, "node:start") if e.node_id == "L"]
    assert l_starts == [(i,) for i in range(n + 1)]
    skips = [(e.node_id, e.iteration, e.reason) for e in of_type(bus, "node:skipped")]
    assert skips == [("b", (n,), "dead_path")]


async def test_max_iterations_guard_fails_the_header_instead_of_looping_forever() -> None:
    calls = Calls()
    runtime, bus = make_runtime(impls(calls))
    with Timer() as timer:
        result = await runtime.run(loop_blueprint("true", max_iterations=5))
    assert timer.elapsed < 5
    assert result.status == "failed"
    assert [c for c in calls.log if c[0] == "b"] == [("b", (i,)) for i in range(5)]
    assert not [c for c in calls.log if c[0] == "done"]
    (record,) = result.errors
    assert (record.node_id, record.type, record.iteration) == ("L", "LoopLimitError", (5,))
    assert isinstance(record.exception, LoopLimitError)
    assert skipped(bus).get("done") == "upstream_failed"


async def test_max_iterations_is_not_an_error_when_the_condition_turns_false_in_time() -> None:
    calls = Calls()
    runtime, _ = make_runtime(impls(calls))
    result = await runtime.run(loop_blueprint("count < 3", max_iterations=3))
    assert result.status == "completed", result.errors
    assert len([c for c in calls.log if c[0] == "b"]) == 3
    assert [c for c in calls.log if c[0] == "done"] == [("done", ())]


async def test_runtime_max_loop_iterations_guard() -> None:
    calls = Calls()
    runtime, _ = make_runtime(impls(calls), max_loop_iterations=4)
    with Timer() as timer:
        result = await runtime.run(loop_blueprint("true"))
    assert timer.elapsed < 5
    assert result.status == "failed"
    (record,) = result.errors
    assert (record.node_id, record.type) == ("L", "LoopLimitError")
    # Back edges may be taken 4 times: the body runs at iterations 0..4.
    assert [c for c in calls.log if c[0] == "b"] == [("b", (i,)) for i in range(5)]


async def test_raw_cycle_is_stopped_by_the_runtime_guard() -> None:
    calls = Calls()

    async def step(ctx: Any) -> dict[str, Any]:
        calls.add((ctx.node_id, ctx.iteration))
        return {"output": None}

    runtime, _ = make_runtime({"step": step}, max_loop_iterations=20)
    blueprint = bp([node("x", "step"), node("y", "step")], [edge("x", "y"), edge("y", "x")])
    with Timer() as timer:
        result = await runtime.run(blueprint)
    assert timer.elapsed < 5
    assert result.status == "failed"
    assert [r.type for r in result.errors] == ["LoopLimitError"]
    assert calls.count(("x", (20,))) == 1
    assert ("x", (21,)) not in calls.log


async def test_independent_branch_finishes_when_a_loop_hits_its_guard() -> None:
    calls = Calls()
    runtime, _ = make_runtime(impls(calls))
    blueprint = loop_blueprint("true", max_iterations=2)
    blueprint["nodes"].append(node("side", "rec"))
    result = await runtime.run(blueprint)
    assert result.status == "failed"
    assert ("side", ()) in calls.log
