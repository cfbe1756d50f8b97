"""The per-node and per-run shortcuts of the in-process engine keep the documented behaviour:
node results, JSON checks, run ids, cancellation through middleware, and no garbage cycles
(docs/performance.md, issue 6)."""

from __future__ import annotations

import asyncio
import gc
import math
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from flowcraft_core import CancellationToken, FlowRuntime, NodeResult, SerializationError
from flowcraft_core.ids import new_run_id
from flowcraft_core.serializer import check_json

from .support import bp, chain, echo, make_runtime, node


async def tuple_output(ctx: Any) -> dict[str, Any]:
    return {"output": (1, (2, 3))}


async def number_action(ctx: Any) -> dict[str, Any]:
    return {"output": 1, "action": 5}


async def extra_key(ctx: Any) -> dict[str, Any]:
    return {"output": 1, "extra": 2}


async def routed(ctx: Any) -> NodeResult:
    return NodeResult(output="x", action="go")


async def nothing(ctx: Any) -> None:
    return None


async def test_node_results_are_checked_as_before() -> None:
    runtime, _ = make_runtime(
        {"t": tuple_output, "a": number_action, "x": extra_key, "r": routed, "n": nothing}
    )
    ok = await runtime.run(bp([node("t", "t"), node("r", "r"), node("n", "n")]))
    assert ok.status == "completed"
    assert ok.context["_outputs.t"] == [1, [2, 3]]  # tuples become lists
    assert ok.context["_outputs.r"] == "x"
    assert ok.context["_outputs.n"] is None
    for uses, message in (("a", "action must be a string"), ("x", "unexpected keys ['extra']")):
        failed = await runtime.run(bp([node("n1", uses)]))
        assert failed.status == "failed"
        (record,) = failed.errors
        assert record.type == "InvalidNodeResultError"
        assert message in record.message


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"a": 1, "b": math.nan}, "not a finite number"),
        ({"a": 1, 2: "x"}, "is not a string"),
        ({"a": {1, 2}}, "not JSON data"),
    ],
)
def test_check_json_still_refuses_flat_dicts_that_are_not_json(
    value: dict[Any, Any], message: str
) -> None:
    with pytest.raises(SerializationError, match=message):
        check_json(value)


def test_check_json_returns_a_flat_dict_of_scalars_itself() -> None:
    value = {"a": 1, "b": "x", "c": None, "d": True, "e": 1.5}
    assert check_json(value) is value


def test_generated_run_ids_are_uuid4_hex() -> None:
    ids = {new_run_id() for _ in range(200)}
    assert len(ids) == 200
    for run_id in ids:
        parsed = uuid.UUID(hex=run_id)
        assert parsed.hex == run_id
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122


@pytest.fixture
def saved_garbage() -> Iterator[list[Any]]:
    """What the cyclic collector finds unreachable while the test runs."""
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        yield gc.garbage
    finally:
        gc.set_debug(0)
        gc.garbage.clear()


@pytest.mark.parametrize("listen", [False, True])
def test_finished_runs_leave_no_reference_cycles(listen: bool, saved_garbage: list[Any]) -> None:
    """Refcounting frees a completed run at once (Engine.release); left to the cyclic
    collector, the engines of short runs made it collect every few runs. (A failed run's
    exception still holds its traceback's frames: that cycle is Python's own.)"""
    runtime, _ = make_runtime({"echo": echo})
    if not listen:
        runtime = FlowRuntime(registry=runtime.registry)
    blueprint = bp([node("a"), node("b"), node("c")], chain("a", "b", "c"))

    async def runs() -> list[str]:
        return [str((await runtime.run(blueprint, {"k": i})).status) for i in range(3)]

    assert asyncio.run(runs()) == ["completed"] * 3
    gc.collect()
    engines = [o for o in saved_garbage if type(o).__name__ in ("Engine", "RunState", "Executor")]
    assert engines == []


class InTask:
    """Runs the rest of the chain in a task of its own."""

    async def around_node(self, *, ctx: Any, call_next: Any) -> Any:
        return await asyncio.create_task(call_next())


async def test_cancel_reaches_node_code_in_a_task_a_middleware_started() -> None:
    entered = asyncio.Event()
    seen: dict[str, Any] = {}

    async def slow(ctx: Any) -> dict[str, Any]:
        entered.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            seen["signal"] = (ctx.signal.cancelled, ctx.signal.reason)
            raise
        return {"output": 1}

    runtime, _ = make_runtime({"slow": slow}, middleware=[InTask()])
    token = CancellationToken()
    task = asyncio.ensure_future(runtime.run(bp([node("s", "slow")]), signal=token))
    await asyncio.wait_for(entered.wait(), 5)
    token.cancel()
    result = await asyncio.wait_for(task, 5)
    assert result.status == "cancelled"
    assert seen == {"signal": (True, "cancelled")}
