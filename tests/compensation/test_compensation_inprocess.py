"""Compensation (saga rollback, issue 8) in the in-process runtime."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from saga_nodes import chain, looping_saga, registry, saga

from flowcraft_core import (
    BlueprintError,
    FlowRuntime,
    NodeRegistry,
    RunStatus,
    lint_blueprint,
    load_blueprint,
)


async def run(doc: dict[str, Any], context: dict[str, Any], **kwargs: Any) -> Any:
    return await FlowRuntime(registry=registry).run(load_blueprint(doc), context, **kwargs)


def undo_order(result: Any) -> list[tuple[str, tuple[int, ...]]]:
    return [(node, tuple(it)) for node, it, _ in result.context.get("undoLog", [])]


async def test_a_failed_run_undoes_completed_nodes_newest_first() -> None:
    result = await run(saga(), {"failAt": "ship"})
    assert result.status == RunStatus.FAILED
    assert [e.node_id for e in result.errors] == ["ship"]  # compensation adds no run error
    assert result.compensated == ["charge", "reserve"]
    assert result.compensation_failed == []
    assert undo_order(result) == [("charge", ()), ("reserve", ())]
    # each compensation received its node's output, and may write the context
    assert result.context["undone.charge"] == result.context["_outputs.charge"]
    assert result.context["undone.reserve"]["node"] == "reserve"
    ids = [activation for _, _, activation in result.context["undoLog"]]
    assert ids == [
        f"{result.run_id}-charge-0-~compensate",
        f"{result.run_id}-reserve-0-~compensate",
    ]


async def test_a_completed_run_compensates_nothing() -> None:
    result = await run(saga(), {})
    assert result.status == RunStatus.COMPLETED
    assert result.compensated == [] and "undoLog" not in result.context


async def test_a_run_can_opt_out() -> None:
    result = await run(saga(), {"failAt": "ship"}, compensate=False)
    assert result.status == RunStatus.FAILED
    assert result.compensated == [] and "undoLog" not in result.context


async def test_a_failing_compensation_is_recorded_and_the_rest_still_run() -> None:
    doc = saga(compensations={"reserve": "saga.undo", "charge": "saga.undo_broken"})
    result = await run(doc, {"failAt": "notify"})
    assert result.compensated == ["reserve"]
    [failure] = result.compensation_failed
    assert (failure.node_id, failure.type, failure.message) == (
        "charge",
        "RuntimeError",
        "cannot undo charge",
    )
    assert [e.node_id for e in result.errors] == ["notify"]


async def test_compensations_use_the_nodes_retry_settings() -> None:
    doc = saga(compensations={"reserve": "saga.undo_flaky"}, retries=2)
    result = await run(doc, {"failAt": "charge"})
    assert result.compensated == ["reserve"]
    single = saga(compensations={"reserve": "saga.undo_flaky"})
    once = await run(single, {"failAt": "charge"})
    assert once.compensated == [] and once.compensation_failed[0].type == "ConnectionError"
    assert once.compensation_failed[0].attempts == 1


async def test_every_loop_iteration_is_compensated_in_reverse() -> None:
    result = await run(looping_saga(), {"failAt": "loop-2"})
    assert result.status == RunStatus.FAILED
    assert undo_order(result) == [("book", (1,)), ("book", (0,)), ("start", ())]
    assert result.context["undone.book"]["iteration"] == [0]  # the last one undone


async def test_an_awaiting_run_remembers_what_to_compensate_across_resume() -> None:
    doc = saga(compensations={"reserve": "saga.undo", "charge": "saga.undo"})
    doc["nodes"].insert(2, {"id": "approve", "uses": "wait"})
    doc["edges"] = [
        {"source": "reserve", "target": "charge"},
        {"source": "charge", "target": "approve"},
        {"source": "approve", "target": "ship"},
        {"source": "ship", "target": "notify"},
    ]
    runtime = FlowRuntime(registry=registry)
    bp = load_blueprint(doc)
    paused = await runtime.run(bp, {"failAt": "ship"})
    assert paused.status == RunStatus.AWAITING and paused.compensated == []
    done = await runtime.resume(bp, paused.serialized_context, output="ok")
    assert done.status == RunStatus.FAILED
    assert done.compensated == ["charge", "reserve"]
    opted_out = await runtime.run(bp, {"failAt": "ship"}, compensate=False)
    again = await runtime.resume(bp, opted_out.serialized_context, output="ok")
    assert again.status == RunStatus.FAILED and again.compensated == []


async def test_an_unregistered_compensation_is_refused_before_the_run() -> None:
    doc = saga(compensations={"charge": "saga.nope"})
    with pytest.raises(BlueprintError) as caught:
        await run(doc, {})
    assert [(p.path, p.code) for p in caught.value.problems] == [
        ("nodes[1].config.compensate", "MISSING_IMPLEMENTATION")
    ]
    issues = lint_blueprint(load_blueprint(doc), NodeRegistry()).issues
    assert any(i.path == "nodes[1].config.compensate" for i in issues)


@given(
    marks=st.lists(st.booleans(), min_size=1, max_size=7),
    fail_at=st.integers(min_value=0, max_value=7),
)
async def test_compensated_nodes_are_the_completed_ones_reversed(
    marks: list[bool], fail_at: int
) -> None:
    names = [f"n{i}" for i in range(len(marks))]
    doc = chain(names, {n: "saga.undo" for n, m in zip(names, marks, strict=True) if m})
    failing = names[fail_at] if fail_at < len(names) else None
    result = await run(doc, {"failAt": failing})
    completed = names[:fail_at] if failing else names
    expected = [n for n, m in zip(names, marks, strict=True) if m and n in completed][::-1]
    assert result.compensated == (expected if failing else [])
    assert result.status == (RunStatus.FAILED if failing else RunStatus.COMPLETED)
