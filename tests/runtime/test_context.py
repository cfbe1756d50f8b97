"""SPEC 2.4-2.6: context views, buffered writes, reserved keys, JSON-only values, outputs."""

from __future__ import annotations

import asyncio
import json
import math
from datetime import UTC, datetime
from typing import Any

import pytest

from flowcraft_core import JsonSerializer, ReservedKeyError, SerializationError

from .support import Calls, bp, echo, edge, make_runtime, node, of_type, user_keys


async def test_writes_of_a_failed_attempt_are_discarded() -> None:
    seen: list[Any] = []

    async def flaky(ctx: Any) -> dict[str, Any]:
        seen.append((ctx.attempt, await ctx.context.has("x"), await ctx.context.get("x")))
        await ctx.context.set("x", ctx.attempt)
        await ctx.context.set(f"only{ctx.attempt}", True)
        if ctx.attempt == 1:
            raise ValueError("first attempt fails")
        return {"output": "ok"}

    runtime, bus = make_runtime({"flaky": flaky})
    result = await runtime.run(bp([node("n", "flaky", config={"maxRetries": 2})]))
    assert result.status == "completed"
    assert seen == [(1, False, None), (2, False, None)]
    assert user_keys(result) == {"x": 2, "only2": True}
    changes = [(e.key, e.op, e.value) for e in of_type(bus, "context:change")]
    assert ("only1", "set", True) not in changes
    assert ("x", "set", 2) in changes


async def test_writes_of_a_failed_node_never_reach_the_context() -> None:
    async def fails(ctx: Any) -> None:
        await ctx.context.set("doomed", 1)
        await ctx.context.delete("keep")
        raise ValueError("no")

    runtime, _ = make_runtime({"fails": fails})
    result = await runtime.run(bp([node("n", "fails")]), {"keep": "still here"})
    assert result.status == "failed"
    assert user_keys(result) == {"keep": "still here"}


async def test_node_reads_its_own_writes_and_successors_see_the_commit() -> None:
    report: dict[str, Any] = {}

    async def writer(ctx: Any) -> None:
        await ctx.context.set("a", 1)
        await ctx.context.set("a", 2)
        await ctx.context.set("b", {"nested": [1, 2]})
        report["a"] = await ctx.context.get("a")
        report["deleted_existed"] = await ctx.context.delete("initial")
        report["has_initial"] = await ctx.context.has("initial")
        report["view"] = {
            k: v for k, v in (await ctx.context.to_dict()).items() if not k.startswith("_")
        }

    async def reader(ctx: Any) -> dict[str, Any]:
        return {"output": [await ctx.context.get("a"), await ctx.context.has("initial")]}

    runtime, bus = make_runtime({"writer": writer, "reader": reader})
    blueprint = bp([node("w", "writer"), node("r", "reader")], [edge("w", "r")])
    result = await runtime.run(blueprint, {"initial": 0, "other": "x"})

    assert result.status == "completed"
    assert report == {
        "a": 2,
        "deleted_existed": True,
        "has_initial": False,
        "view": {"a": 2, "b": {"nested": [1, 2]}, "other": "x"},
    }
    assert result.context["_outputs.r"] == [2, False]
    assert "initial" not in result.context
    writes = [(e.source_node, e.key, e.op) for e in of_type(bus, "context:change")]
    assert ("w", "a", "set") in writes
    assert ("w", "initial", "delete") in writes


async def test_uncommitted_writes_are_invisible_to_other_activations() -> None:
    wrote = asyncio.Event()
    checked = asyncio.Event()
    report: dict[str, Any] = {}

    async def writer(ctx: Any) -> None:
        await ctx.context.set("pending", "value")
        wrote.set()
        await checked.wait()

    async def peeker(ctx: Any) -> None:
        await wrote.wait()
        report["has"] = await ctx.context.has("pending")
        report["get"] = await ctx.context.get("pending", "absent")
        checked.set()

    runtime, _ = make_runtime({"writer": writer, "peeker": peeker})
    result = await runtime.run(bp([node("w", "writer"), node("p", "peeker")]))
    assert result.status == "completed"
    assert report == {"has": False, "get": "absent"}
    assert result.context["pending"] == "value"


async def test_later_commit_wins() -> None:
    async def write(ctx: Any) -> None:
        await ctx.context.set("k", ctx.params["v"])

    runtime, _ = make_runtime({"write": write})
    blueprint = bp(
        [node("a", "write", params={"v": 1}), node("b", "write", params={"v": 2})],
        [edge("a", "b")],
    )
    result = await runtime.run(blueprint)
    assert result.context["k"] == 2


async def test_has_distinguishes_none_from_missing() -> None:
    report: dict[str, Any] = {}

    async def first(ctx: Any) -> None:
        await ctx.context.set("none", None)
        report["own"] = (
            await ctx.context.has("none"),
            await ctx.context.get("none", "default"),
            await ctx.context.has("missing"),
            await ctx.context.get("missing", "default"),
            await ctx.context.get("missing"),
        )

    async def second(ctx: Any) -> None:
        report["committed"] = (
            await ctx.context.has("none"),
            await ctx.context.get("none", "default"),
            await ctx.context.delete("none"),
            await ctx.context.has("none"),
            await ctx.context.delete("never"),
        )

    runtime, _ = make_runtime({"first": first, "second": second})
    result = await runtime.run(bp([node("a", "first"), node("b", "second")], [edge("a", "b")]))
    assert result.status == "completed"
    assert report == {
        "own": (True, None, False, "default", None),
        "committed": (True, None, True, False, False),
    }
    assert "none" not in result.context


@pytest.mark.parametrize(
    "key",
    [
        "_outputs.x",
        "_outputs.n",
        "_inputs.n",
        "_executionId",
        "_catch_error",
        "_awaitingNodeIds",
        "_awaitingDetails",
        "_runState",
    ],
)
async def test_reserved_keys_cannot_be_written(key: str) -> None:
    report: dict[str, str] = {}

    async def writes_reserved(ctx: Any) -> None:
        for name, call in (
            ("set", ctx.context.set(key, 1)),
            ("delete", ctx.context.delete(key)),
            ("patch", ctx.context.patch([{"op": "set", "key": key, "value": 1}])),
        ):
            try:
                await call
            except ReservedKeyError as exc:
                report[name] = exc.key
        await ctx.context.set(key, 1)  # unhandled: fails the activation

    runtime, _ = make_runtime({"w": writes_reserved})
    result = await runtime.run(bp([node("n", "w")]))
    assert report == {"set": key, "delete": key, "patch": key}
    assert result.status == "failed"
    (record,) = result.errors
    assert record.type == "ReservedKeyError"
    assert key in record.message


async def test_other_underscore_keys_are_user_keys() -> None:
    async def w(ctx: Any) -> None:
        await ctx.context.set("_private", 1)
        await ctx.context.set("_outputs", 2)  # no dot: not an output key

    runtime, _ = make_runtime({"w": w})
    result = await runtime.run(bp([node("n", "w")]))
    assert result.status == "completed", result.errors
    assert (result.context["_private"], result.context["_outputs"]) == (1, 2)


NOT_JSON = [
    pytest.param(datetime(2024, 1, 1, tzinfo=UTC), id="datetime"),
    pytest.param({1, 2}, id="set"),
    pytest.param(b"bytes", id="bytes"),
    pytest.param(math.nan, id="nan"),
    pytest.param(math.inf, id="inf"),
    pytest.param({"nested": [1, {"deep": object()}]}, id="nested-object"),
    pytest.param({1: "int key"}, id="int-key"),
]


@pytest.mark.parametrize("value", NOT_JSON)
async def test_non_json_write_fails_the_activation_naming_node_and_key(value: Any) -> None:
    calls = Calls()

    async def w(ctx: Any) -> None:
        calls.add(ctx.attempt)
        await ctx.context.set("fine", 1)
        await ctx.context.set("when", value)

    runtime, _ = make_runtime({"w": w})
    result = await runtime.run(bp([node("writer", "w", config={"maxRetries": 3})]))
    assert result.status == "failed"
    assert calls.log == [1]  # SerializationError is never retried
    (record,) = result.errors
    assert record.type == "SerializationError"
    assert "'writer'" in record.message and "'when'" in record.message
    assert isinstance(record.exception, SerializationError)
    assert (record.exception.node_id, record.exception.key) == ("writer", "when")
    assert "fine" not in result.context


async def test_circular_write_fails_with_serialization_error() -> None:
    async def w(ctx: Any) -> None:
        loop: list[Any] = []
        loop.append(loop)
        await ctx.context.set("loop", loop)

    runtime, _ = make_runtime({"w": w})
    result = await runtime.run(bp([node("n", "w")]))
    assert [(r.type, "'loop'" in r.message) for r in result.errors] == [
        ("SerializationError", True)
    ]


@pytest.mark.parametrize("value", NOT_JSON)
async def test_non_json_output_fails_the_activation_naming_the_node(value: Any) -> None:
    calls = Calls()

    async def out(ctx: Any) -> dict[str, Any]:
        calls.add(ctx.attempt)
        await ctx.context.set("fine", 1)
        return {"output": value}

    runtime, _ = make_runtime({"out": out, "t": echo})
    blueprint = bp([node("n", "out", config={"maxRetries": 2}), node("m", "t")], [edge("n", "m")])
    result = await runtime.run(blueprint)
    assert result.status == "failed"
    assert calls.log == [1]
    (record,) = result.errors
    assert record.type == "SerializationError"
    assert "'n'" in record.message
    assert "_outputs.n" not in result.context
    assert "fine" not in result.context


@pytest.mark.parametrize("value", NOT_JSON)
async def test_non_json_initial_context_is_refused_before_start(value: Any) -> None:
    calls = Calls()

    async def impl(ctx: Any) -> None:
        calls.add(ctx.node_id)

    runtime, bus = make_runtime({"impl": impl})
    with pytest.raises(SerializationError) as info:
        await runtime.run(bp([node("n", "impl")]), {"ok": 1, "bad": value})
    assert "'bad'" in str(info.value)
    assert calls.log == []
    assert bus.events == []


async def test_initial_context_may_be_serialized_text() -> None:
    runtime, _ = make_runtime({"echo": echo})
    result = await runtime.run(
        bp([node("n", inputs="k")]), json.dumps({"k": [1, None], "_inputs.x": 1})
    )
    assert result.status == "completed"
    assert result.context["_outputs.n"] == [1, None]


@pytest.mark.parametrize(
    "key", ["_executionId", "_awaitingNodeIds", "_awaitingDetails", "_runState"]
)
async def test_initial_context_with_engine_state_keys_raises_value_error(key: str) -> None:
    runtime, bus = make_runtime({"echo": echo})
    with pytest.raises(ValueError, match=key):
        await runtime.run(bp([node("n")]), {key: "x"})
    assert bus.events == []


async def test_patch_applies_in_order_as_one_unit() -> None:
    async def patcher(ctx: Any) -> None:
        await ctx.context.patch(
            [
                {"op": "set", "key": "x", "value": 1},
                {"op": "delete", "key": "x"},
                {"op": "delete", "key": "y"},
                {"op": "set", "key": "y", "value": 2},
                {"op": "set", "key": "t", "value": (1, 2)},
                {"op": "delete", "key": "old"},
            ]
        )

    runtime, _ = make_runtime({"p": patcher})
    result = await runtime.run(bp([node("n", "p")]), {"x": 0, "old": 1})
    assert result.status == "completed", result.errors
    assert user_keys(result) == {"y": 2, "t": [1, 2]}


@pytest.mark.parametrize(
    ("bad_op", "error"),
    [
        ({"op": "set", "key": "b", "value": {1, 2}}, SerializationError),
        ({"op": "set", "key": "_outputs.z", "value": 1}, ReservedKeyError),
        ({"op": "rename", "key": "b"}, ValueError),
        ({"op": "set", "key": "b"}, ValueError),
    ],
)
async def test_a_bad_patch_changes_nothing(bad_op: dict[str, Any], error: type) -> None:
    report: dict[str, Any] = {}

    async def patcher(ctx: Any) -> None:
        await ctx.context.set("before", 1)
        try:
            await ctx.context.patch(
                [
                    {"op": "set", "key": "a", "value": 1},
                    {"op": "delete", "key": "before"},
                    bad_op,
                ]
            )
        except error as exc:
            report["error"] = type(exc)
        report["a"] = await ctx.context.has("a")
        report["before"] = await ctx.context.get("before")

    runtime, _ = make_runtime({"p": patcher})
    result = await runtime.run(bp([node("n", "p")]))
    assert result.status == "completed", result.errors
    assert report == {"error": error, "a": False, "before": 1}
    assert user_keys(result) == {"before": 1}


async def test_tuples_become_lists() -> None:
    async def w(ctx: Any) -> dict[str, Any]:
        await ctx.context.set("t", (1, (2, 3)))
        return {"output": (4, 5)}

    runtime, _ = make_runtime({"w": w})
    result = await runtime.run(bp([node("n", "w")]))
    assert result.context["t"] == [1, [2, 3]]
    assert result.context["_outputs.n"] == [4, 5]


async def test_none_output_is_stored_and_reads_back_as_null() -> None:
    async def nothing(ctx: Any) -> None:
        return None

    async def probe(ctx: Any) -> dict[str, Any]:
        return {
            "output": {
                "has": await ctx.context.has("_outputs.n"),
                "value": await ctx.context.get("_outputs.n", "default"),
                "input": ctx.input,
            }
        }

    runtime, _ = make_runtime({"nothing": nothing, "probe": probe})
    result = await runtime.run(bp([node("n", "nothing"), node("p", "probe")], [edge("n", "p")]))
    assert result.status == "completed"
    assert "_outputs.n" in result.context and result.context["_outputs.n"] is None
    assert result.context["_outputs.p"] == {"has": True, "value": None, "input": None}
    decoded = JsonSerializer().deserialize(result.serialized_context)
    assert "_outputs.n" in decoded and decoded["_outputs.n"] is None
    assert decoded == result.context


async def test_sync_view_offers_the_same_methods_from_a_thread() -> None:
    report: dict[str, Any] = {}

    def blocking(ctx: Any) -> None:
        view = ctx.context.sync
        view.set("a", None)
        report["has_a"] = view.has("a")
        report["get_a"] = view.get("a", "d")
        report["get_missing"] = view.get("missing", "d")
        report["delete_init"] = view.delete("init")
        report["delete_never"] = view.delete("never")
        view.patch([{"op": "set", "key": "p", "value": [1]}])
        report["dict"] = {k: v for k, v in view.to_dict().items() if not k.startswith("_")}
        try:
            view.set("_outputs.q", 1)
        except ReservedKeyError:
            report["reserved"] = True

    runtime, _ = make_runtime({"b": blocking})
    result = await runtime.run(bp([node("n", "b")]), {"init": 1})
    assert result.status == "completed", result.errors
    assert report == {
        "has_a": True,
        "get_a": None,
        "get_missing": "d",
        "delete_init": True,
        "delete_never": False,
        "dict": {"a": None, "p": [1]},
        "reserved": True,
    }
    assert user_keys(result) == {"a": None, "p": [1]}


async def test_node_context_fields() -> None:
    seen: dict[str, Any] = {}

    async def impl(ctx: Any) -> None:
        seen.update(
            run_id=ctx.run_id,
            blueprint_id=ctx.blueprint_id,
            node_id=ctx.node_id,
            iteration=ctx.iteration,
            attempt=ctx.attempt,
            params=dict(ctx.params),
            dependencies=ctx.dependencies,
            activation_id=ctx.activation_id,
            cancelled=ctx.signal.cancelled,
        )
        with pytest.raises(TypeError):
            ctx.params["new"] = 1
        with pytest.raises(AttributeError):
            ctx.input = 1

    deps = {"db": object()}
    runtime, _ = make_runtime({"impl": impl}, dependencies=deps)
    result = await runtime.run(bp([node("n", "impl")], id="ctx-bp"), run_id="run-1")
    assert result.status == "completed", result.errors
    assert seen == {
        "run_id": "run-1",
        "blueprint_id": "ctx-bp",
        "node_id": "n",
        "iteration": (),
        "attempt": 1,
        "params": {},
        "dependencies": deps,
        "activation_id": "run-1-n-0",
        "cancelled": False,
    }
    assert seen["dependencies"] is deps
    assert result.run_id == "run-1"
    assert result.context["_executionId"] == "run-1"
