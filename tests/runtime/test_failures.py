"""SPEC 3.4, 3.5, 3.9 and 3.10: failures, blocked successors, status and error records."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from flowcraft_core import ErrorRecord

from .support import Calls, bp, chain, echo, edge, index_of, make_runtime, node, skipped, started


class Boom(Exception):
    pass


async def boom(ctx: Any) -> None:
    raise Boom(f"boom in {ctx.node_id}")


def recorder(calls: Calls, delay_s: float = 0.0) -> Any:
    async def impl(ctx: Any) -> dict[str, Any]:
        calls.add(ctx.node_id)
        if delay_s:
            await asyncio.sleep(delay_s)
        return {"output": ctx.node_id}

    return impl


async def test_failed_node_gives_failed_status_with_the_original_error() -> None:
    runtime, bus = make_runtime({"boom": boom})
    before = datetime.now(UTC)
    result = await runtime.run(bp([node("n", "boom", config={"maxRetries": 2})]))
    assert result.status == "failed"
    (record,) = result.errors
    assert isinstance(record, ErrorRecord)
    assert (record.node_id, record.type, record.message, record.attempts, record.iteration) == (
        "n",
        "Boom",
        "boom in n",
        2,
        (),
    )
    assert record.fallback_error is None
    assert isinstance(record.exception, Boom)
    assert before <= record.timestamp <= datetime.now(UTC)
    as_json = record.to_json()
    assert as_json["nodeId"] == "n" and as_json["type"] == "Boom" and as_json["attempts"] == 2
    assert "exception" not in as_json
    (error_event,) = [e for e in bus.events if e.type == "node:error"]
    assert error_event.error == record
    (finish,) = [e for e in bus.events if e.type == "workflow:finish"]
    assert finish.status == "failed" and list(finish.errors) == [record]


async def test_independent_branches_run_to_completion() -> None:
    calls = Calls()
    runtime, bus = make_runtime({"boom": boom, "rec": recorder(calls, 0.01)})
    blueprint = bp(
        [
            node("bad", "boom"),
            node("bad_next", "rec"),
            node("good1", "rec"),
            node("good2", "rec"),
            node("good3", "rec"),
        ],
        [edge("bad", "bad_next"), *chain("good1", "good2", "good3")],
    )
    result = await runtime.run(blueprint)
    assert result.status == "failed"
    assert calls.log == ["good1", "good2", "good3"]
    assert result.context["_outputs.good3"] == "good3"
    assert [r.node_id for r in result.errors] == ["bad"]
    assert skipped(bus) == {"bad_next": "upstream_failed"}


async def test_all_join_successors_of_a_failed_node_are_blocked_transitively() -> None:
    calls = Calls()
    runtime, bus = make_runtime({"boom": boom, "rec": recorder(calls)})
    blueprint = bp(
        [
            node("A", "rec"),
            node("B", "boom"),
            node("C", "rec"),
            node("D", "rec"),
            node("E", "rec"),
        ],
        [edge("A", "B"), edge("A", "C"), edge("B", "D"), edge("C", "D"), edge("D", "E")],
    )
    result = await runtime.run(blueprint)
    assert result.status == "failed"
    assert sorted(calls.log) == ["A", "C"]
    assert skipped(bus) == {"D": "upstream_failed", "E": "upstream_failed"}
    assert "_outputs.D" not in result.context


async def test_all_join_is_blocked_as_soon_as_a_predecessor_fails() -> None:
    calls = Calls()
    runtime, bus = make_runtime(
        {"boom": boom, "rec": recorder(calls), "slow": recorder(calls, 0.2)}
    )
    blueprint = bp(
        [node("bad", "boom"), node("slow", "slow"), node("J", "rec")],
        [edge("bad", "J"), edge("slow", "J")],
    )
    result = await runtime.run(blueprint)
    assert result.status == "failed"
    assert "J" not in calls.log
    assert index_of(bus, "node:skipped", "J") < index_of(bus, "node:finish", "slow")


async def test_any_join_is_blocked_when_a_failure_arrives_before_any_taken_edge() -> None:
    calls = Calls()
    runtime, bus = make_runtime(
        {"boom": boom, "rec": recorder(calls), "slow": recorder(calls, 0.1)}
    )
    blueprint = bp(
        [
            node("bad", "boom"),
            node("slow", "slow"),
            node("J", "rec", config={"joinStrategy": "any"}),
        ],
        [edge("bad", "J"), edge("slow", "J")],
    )
    result = await runtime.run(blueprint)
    assert result.status == "failed"
    assert "J" not in calls.log
    assert skipped(bus) == {"J": "upstream_failed"}


async def test_any_join_that_already_fired_ignores_a_later_failure() -> None:
    calls = Calls()

    async def late_boom(ctx: Any) -> None:
        await asyncio.sleep(0.1)
        raise Boom("late")

    runtime, bus = make_runtime({"late": late_boom, "rec": recorder(calls)})
    blueprint = bp(
        [
            node("fast", "rec"),
            node("bad", "late"),
            node("J", "rec", config={"joinStrategy": "any"}),
        ],
        [edge("fast", "J"), edge("bad", "J")],
    )
    result = await runtime.run(blueprint)
    assert result.status == "failed"
    assert calls.log.count("J") == 1
    assert "J" not in skipped(bus)


async def test_skipped_and_blocked_nodes_do_not_prevent_completion() -> None:
    runtime, bus = make_runtime({"echo": echo})
    blueprint = bp(
        [node("a"), node("b"), node("c"), node("d")],
        [edge("a", "b", condition="false"), edge("b", "c"), edge("a", "d")],
    )
    result = await runtime.run(blueprint)
    assert result.status == "completed"
    assert skipped(bus) == {"b": "dead_path", "c": "dead_path"}


async def test_unreachable_nodes_never_run_and_emit_nothing() -> None:
    calls = Calls()
    runtime, bus = make_runtime({"rec": recorder(calls)})
    # x <-> y is a cycle entered from nowhere while a start node exists: unreachable.
    blueprint = bp(
        [node("a", "rec"), node("x", "rec"), node("y", "rec"), node("z", "rec")],
        [edge("x", "y"), edge("y", "x"), edge("y", "z"), edge("a", "z")],
    )
    result = await runtime.run(blueprint)
    assert result.status == "completed", result.errors
    assert calls.log == ["a", "z"]
    assert not any(getattr(e, "node_id", None) in {"x", "y"} for e in bus.events)


async def test_long_dead_chain_is_skipped_iteratively() -> None:
    runtime, bus = make_runtime({"echo": echo})
    ids = [f"n{i}" for i in range(3000)]
    blueprint = bp(
        [node("root"), *(node(i) for i in ids)],
        [edge("root", ids[0], condition="false"), *chain(*ids)],
    )
    result = await runtime.run(blueprint)
    assert result.status == "completed"
    assert len(skipped(bus)) == 3000
    assert started(bus) == ["root"]


async def test_parallel_edges_from_a_failed_node_block_the_target_once() -> None:
    runtime, bus = make_runtime({"boom": boom, "echo": echo})
    blueprint = bp(
        [node("A", "boom"), node("B"), node("C")],
        [edge("A", "B"), edge("A", "B", action="x"), edge("B", "C")],
    )
    result = await runtime.run(blueprint)
    assert result.status == "failed"
    rows = [(e.node_id, e.reason) for e in bus.events if e.type == "node:skipped"]
    # Each activation ends exactly once (SPEC 3.2): one node:skipped per node.
    assert rows == [("B", "upstream_failed"), ("C", "upstream_failed")]


async def test_parallel_edges_from_a_skipped_node_skip_the_target_once() -> None:
    runtime, bus = make_runtime({"echo": echo})
    blueprint = bp(
        [node("A"), node("B"), node("C"), node("D")],
        [edge("A", "B", condition="false"), edge("B", "C"), edge("B", "C"), edge("C", "D")],
    )
    result = await runtime.run(blueprint)
    assert result.status == "completed"
    rows = [(e.node_id, e.reason) for e in bus.events if e.type == "node:skipped"]
    assert rows == [("B", "dead_path"), ("C", "dead_path"), ("D", "dead_path")]


def test_error_record_equality_ignores_the_exception_object() -> None:
    first = ErrorRecord.from_exception(Boom("x"), node_id="n", attempts=1)
    second = ErrorRecord(
        node_id="n", type="Boom", message="x", attempts=1, timestamp=first.timestamp
    )
    assert first == second
    assert first.exception is not None and second.exception is None
