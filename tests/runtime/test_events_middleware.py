"""SPEC 7: events (order, records, buses), middleware hooks, serializer and logging."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from typing import Any

import pytest

from flowcraft_core import InMemoryEventBus, JsonSerializer, NodeResult, SerializationError

from .support import Calls, bp, echo, edge, make_runtime, node, of_type, skipped


async def flaky_writer(ctx: Any) -> dict[str, Any]:
    if ctx.attempt == 1:
        raise ValueError("first")
    await ctx.context.set("k", "v")
    return {"output": 1}


ORDER_BP = bp(
    [node("A", "flaky", config={"maxRetries": 2}), node("B"), node("C"), node("D")],
    [
        edge("A", "B", condition="result.output == 1"),
        edge("A", "C", condition="result.output == 2"),
        edge("C", "D"),
    ],
)


def rows(bus: InMemoryEventBus) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = []
    for e in bus.events:
        if e.type in ("workflow:start", "workflow:finish"):
            out.append((e.type,))
        elif e.type == "edge:evaluate":
            out.append((e.type, e.source, e.target, e.result))
        elif e.type == "context:change":
            out.append((e.type, e.source_node, e.key, e.op))
        elif e.type == "node:skipped":
            out.append((e.type, e.node_id, e.reason))
        elif e.type == "node:retry":
            out.append((e.type, e.node_id, e.attempt))
        else:
            out.append((e.type, e.node_id))
    return out


async def test_event_order_per_activation() -> None:
    runtime, bus = make_runtime({"flaky": flaky_writer, "echo": echo})
    result = await runtime.run(ORDER_BP)
    assert result.status == "completed"
    assert rows(bus) == [
        ("workflow:start",),
        ("node:start", "A"),
        ("node:retry", "A", 1),
        ("node:finish", "A"),
        ("context:change", "A", "k", "set"),
        ("context:change", "A", "_outputs.A", "set"),
        ("edge:evaluate", "A", "B", True),
        ("edge:evaluate", "A", "C", False),
        ("node:skipped", "C", "dead_path"),
        ("node:skipped", "D", "dead_path"),
        ("node:start", "B"),
        ("node:finish", "B"),
        ("context:change", "B", "_outputs.B", "set"),
        ("workflow:finish",),
    ]
    assert {e.run_id for e in bus.events} == {result.run_id}
    assert {e.blueprint_id for e in bus.events} == {"test"}
    start_b = next(e for e in of_type(bus, "node:start") if e.node_id == "B")
    assert (start_b.input, start_b.iteration) == (1, ())
    finish_a = next(e for e in of_type(bus, "node:finish") if e.node_id == "A")
    assert finish_a.result == NodeResult(output=1)
    assert finish_a.duration_ms >= 0
    change = next(e for e in of_type(bus, "context:change") if e.key == "k")
    assert change.value == "v"
    timestamps = [e.timestamp for e in bus.events]
    assert timestamps == sorted(timestamps)
    assert all(t.tzinfo is not None for t in timestamps)


async def test_failed_activation_events() -> None:
    async def fails(ctx: Any) -> None:
        raise ValueError("nope")

    runtime, bus = make_runtime({"fails": fails, "echo": echo})
    await runtime.run(
        bp([node("A", "fails", config={"maxRetries": 2}), node("B")], [edge("A", "B")])
    )
    assert rows(bus) == [
        ("workflow:start",),
        ("node:start", "A"),
        ("node:retry", "A", 1),
        ("node:error", "A"),
        ("node:skipped", "B", "upstream_failed"),
        ("workflow:finish",),
    ]


async def test_events_are_frozen_keyword_only_records() -> None:
    runtime, bus = make_runtime({"flaky": flaky_writer, "echo": echo})
    await runtime.run(ORDER_BP)
    for event in bus.events:
        assert dataclasses.is_dataclass(event)
        first_field = dataclasses.fields(event)[0].name
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(event, first_field, "changed")
        values = [getattr(event, f.name) for f in dataclasses.fields(event)]
        with pytest.raises(TypeError):
            type(event)(*values)
        assert type(event)(**{f.name: getattr(event, f.name) for f in dataclasses.fields(event)})


async def test_result_records_are_frozen() -> None:
    runtime, _ = make_runtime({"echo": echo})
    result = await runtime.run(bp([node("n")]))
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.status = "failed"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        NodeResult(1).output = 2  # type: ignore[misc]


async def test_bus_exceptions_never_fail_a_run(caplog: pytest.LogCaptureFixture) -> None:
    class BrokenBus:
        def __init__(self) -> None:
            self.calls = 0

        def emit(self, event: Any) -> None:
            self.calls += 1
            raise RuntimeError("bus down")

    bus = BrokenBus()
    runtime, _ = make_runtime({"flaky": flaky_writer, "echo": echo}, event_bus=bus)
    with caplog.at_level(logging.ERROR, logger="flowcraft_core"):
        result = await runtime.run(ORDER_BP)
    assert result.status == "completed"
    assert result.context["_outputs.B"] == 1
    reference_runtime, reference_bus = make_runtime({"flaky": flaky_writer, "echo": echo})
    await reference_runtime.run(ORDER_BP)
    assert bus.calls == len(reference_bus.events)  # every event was still offered
    assert any("bus down" in (r.exc_text or "") or r.exc_info for r in caplog.records)


async def test_async_bus_receives_the_same_events_in_order() -> None:
    class AsyncBus:
        def __init__(self) -> None:
            self.events: list[Any] = []

        async def emit(self, event: Any) -> None:
            await asyncio.sleep(0)
            self.events.append(event)

    class FailingAsyncBus:
        async def emit(self, event: Any) -> None:
            await asyncio.sleep(0)
            raise RuntimeError("async bus down")

    sync_runtime, sync_bus = make_runtime({"flaky": flaky_writer, "echo": echo})
    await sync_runtime.run(ORDER_BP)
    abus = AsyncBus()
    async_runtime, _ = make_runtime({"flaky": flaky_writer, "echo": echo}, event_bus=abus)
    result = await async_runtime.run(ORDER_BP)
    assert result.status == "completed"
    assert [e.type for e in abus.events] == sync_bus.types()

    failing_runtime, _ = make_runtime(
        {"flaky": flaky_writer, "echo": echo}, event_bus=FailingAsyncBus()
    )
    result = await failing_runtime.run(ORDER_BP)
    assert result.status == "completed"


async def test_node_start_follows_completion_events_of_its_predecessors() -> None:
    async def slow(ctx: Any) -> dict[str, Any]:
        await asyncio.sleep(ctx.params.get("d", 0))
        return {"output": ctx.node_id}

    runtime, bus = make_runtime({"slow": slow})
    blueprint = bp(
        [
            node("a", "slow"),
            node("b", "slow", params={"d": 0.02}),
            node("c", "slow", params={"d": 0.01}),
            node("j", "slow"),
        ],
        [edge("a", "b"), edge("a", "c"), edge("b", "j"), edge("c", "j")],
    )
    await runtime.run(blueprint)
    types = [(e.type, getattr(e, "node_id", getattr(e, "source", None))) for e in bus.events]
    j_start = types.index(("node:start", "j"))
    for pred in ("b", "c"):
        assert types.index(("node:finish", pred)) < j_start
        assert types.index(("edge:evaluate", pred)) < j_start


# --------------------------------------------------------------------------- middleware


class Hooks:
    def __init__(self, name: str, log: list[str]) -> None:
        self.name = name
        self.log = log

    async def before_node(self, *, ctx: Any) -> None:
        self.log.append(f"before{self.name}:{ctx.node_id}")

    async def after_node(self, *, ctx: Any, result: Any, error: Any) -> None:
        self.log.append(f"after{self.name}:{ctx.node_id}:{result!r}:{type(error).__name__}")


class Around:
    def __init__(self, log: list[str], name: str = "") -> None:
        self.log = log
        self.name = name

    async def around_node(self, *, ctx: Any, call_next: Any) -> Any:
        self.log.append(f"around{self.name}-pre:{ctx.node_id}")
        result = await call_next()
        self.log.append(f"around{self.name}-post:{ctx.node_id}")
        return result


async def test_middleware_order() -> None:
    log: list[str] = []

    async def impl(ctx: Any) -> dict[str, Any]:
        log.append(f"node:{ctx.node_id}")
        return {"output": 1}

    middleware = [Around(log), Hooks("1", log), Hooks("2", log)]
    runtime, _ = make_runtime({"impl": impl}, middleware=middleware)
    result = await runtime.run(bp([node("n", "impl")]))
    assert result.status == "completed"
    assert log == [
        "around-pre:n",
        "before1:n",
        "before2:n",
        "node:n",
        "after2:n:NodeResult(output=1, action=None):NoneType",
        "after1:n:NodeResult(output=1, action=None):NoneType",
        "around-post:n",
    ]


async def test_first_around_is_outermost() -> None:
    log: list[str] = []
    runtime, _ = make_runtime({"echo": echo}, middleware=[Around(log, "A"), Around(log, "B")])
    await runtime.run(bp([node("n")]))
    assert log == ["aroundA-pre:n", "aroundB-pre:n", "aroundB-post:n", "aroundA-post:n"]


async def test_hooks_run_once_per_activation_around_all_attempts_and_fallback() -> None:
    log: list[str] = []

    async def fails(ctx: Any) -> None:
        log.append(f"attempt{ctx.attempt}")
        raise ValueError("x")

    async def backup(ctx: Any) -> dict[str, Any]:
        log.append("backup")
        return {"output": "b"}

    runtime, _ = make_runtime(
        {"fails": fails, "backup": backup}, middleware=[Around(log), Hooks("1", log)]
    )
    config = {"maxRetries": 3, "fallback": "backup"}
    result = await runtime.run(bp([node("n", "fails", config=config)]))
    assert result.status == "completed"
    assert log == [
        "around-pre:n",
        "before1:n",
        "attempt1",
        "attempt2",
        "attempt3",
        "backup",
        "after1:n:NodeResult(output='b', action=None):NoneType",
        "around-post:n",
    ]


async def test_after_hook_sees_the_error() -> None:
    log: list[str] = []

    async def fails(ctx: Any) -> None:
        raise KeyError("k")

    runtime, _ = make_runtime({"fails": fails}, middleware=[Hooks("1", log)])
    result = await runtime.run(bp([node("n", "fails")]))
    assert result.status == "failed"
    assert log == ["before1:n", "after1:n:None:KeyError"]


async def test_around_can_modify_the_result() -> None:
    class Doubler:
        async def around_node(self, *, ctx: Any, call_next: Any) -> Any:
            result = await call_next()
            if ctx.node_id != "n":
                return result
            return NodeResult(output=result.output * 2, action="doubled")

    calls = Calls()

    async def after(ctx: Any) -> None:
        calls.add(ctx.input)

    async def five(ctx: Any) -> dict[str, Any]:
        return {"output": 5}

    runtime, _ = make_runtime({"five": five, "after": after}, middleware=[Doubler()])
    blueprint = bp([node("n", "five"), node("m", "after")], [edge("n", "m", action="doubled")])
    result = await runtime.run(blueprint)
    assert result.status == "completed", result.errors
    assert result.context["_outputs.n"] == 10
    assert calls.log == [10]


async def test_around_can_short_circuit() -> None:
    calls = Calls()

    async def impl(ctx: Any) -> dict[str, Any]:
        calls.add(ctx.node_id)
        return {"output": "real"}

    class Cache:
        async def around_node(self, *, ctx: Any, call_next: Any) -> Any:
            if ctx.node_id == "cached":
                return NodeResult(output="from cache")
            return await call_next()

    runtime, bus = make_runtime({"impl": impl}, middleware=[Cache()])
    blueprint = bp([node("cached", "impl"), node("real", "impl")], [edge("cached", "real")])
    result = await runtime.run(blueprint)
    assert result.status == "completed"
    assert calls.log == ["real"]
    assert result.context["_outputs.cached"] == "from cache"
    assert result.context["_inputs.real"] == "from cache"
    assert [e.node_id for e in of_type(bus, "node:finish")] == ["cached", "real"]


async def test_around_can_recover_from_an_error() -> None:
    async def fails(ctx: Any) -> None:
        await ctx.context.set("partial", 1)
        raise ValueError("broken")

    class Recover:
        async def around_node(self, *, ctx: Any, call_next: Any) -> Any:
            try:
                return await call_next()
            except ValueError as exc:
                return NodeResult(output=f"recovered: {exc}", action="recovered")

    runtime, bus = make_runtime({"fails": fails, "echo": echo}, middleware=[Recover()])
    blueprint = bp(
        [node("n", "fails", config={"maxRetries": 2}), node("ok"), node("default")],
        [edge("n", "ok", action="recovered"), edge("n", "default")],
    )
    result = await runtime.run(blueprint)
    assert result.status == "completed"
    assert result.errors == []
    assert result.context["_outputs.n"] == "recovered: broken"
    assert result.context["_outputs.ok"] == "recovered: broken"
    assert skipped(bus) == {"default": "dead_path"}
    assert of_type(bus, "node:error") == []
    assert "partial" not in result.context


async def test_sync_middleware_hooks_are_accepted() -> None:
    log: list[str] = []

    class SyncHooks:
        def before_node(self, *, ctx: Any) -> None:
            log.append("before")

        def after_node(self, *, ctx: Any, result: Any, error: Any) -> None:
            log.append("after")

    runtime, _ = make_runtime({"echo": echo}, middleware=[SyncHooks()])
    result = await runtime.run(bp([node("n")]))
    assert result.status == "completed"
    assert log == ["before", "after"]


# --------------------------------------------------------------------------- serializer, logs


@pytest.mark.parametrize(
    "value",
    [None, True, 0, -3, 1.5, "", "ü", [], {}, {"a": [1, None, {"b": False}]}],
)
def test_serializer_round_trips_json_data(value: Any) -> None:
    serializer = JsonSerializer()
    assert serializer.deserialize(serializer.serialize(value)) == value
    assert serializer.deserialize(serializer.serialize({"k": value})) == {"k": value}


@pytest.mark.parametrize("value", [{1, 2}, float("nan"), b"x", object()])
def test_serializer_refuses_non_json_values(value: Any) -> None:
    with pytest.raises(SerializationError):
        JsonSerializer().serialize({"k": value})


def test_serializer_refuses_invalid_text() -> None:
    with pytest.raises(SerializationError):
        JsonSerializer().deserialize("{not json")


async def test_serialized_context_matches_context() -> None:
    runtime, _ = make_runtime({"flaky": flaky_writer, "echo": echo})
    result = await runtime.run(ORDER_BP, {"init": [1, {"x": None}]})
    assert JsonSerializer().deserialize(result.serialized_context) == result.context


async def test_logging_levels_and_extras(caplog: pytest.LogCaptureFixture) -> None:
    async def fails(ctx: Any) -> None:
        raise ValueError("bad")

    runtime, _ = make_runtime({"flaky": flaky_writer, "fails": fails, "echo": echo})
    blueprint = bp([node("f", "flaky", config={"maxRetries": 2}), node("x", "fails")])
    with caplog.at_level(logging.DEBUG, logger="flowcraft_core"):
        result = await runtime.run(blueprint)
    records = [r for r in caplog.records if r.name.startswith("flowcraft_core")]
    assert records
    assert all(getattr(r, "run_id", None) == result.run_id for r in records)
    assert all(hasattr(r, "node_id") for r in records)
    by_node = {(r.levelname, r.node_id) for r in records}
    assert ("WARNING", "f") in by_node  # retry
    assert ("ERROR", "x") in by_node  # unrecovered failure
    assert ("DEBUG", "f") in by_node  # node start/finish
    infos = [r for r in records if r.levelno == logging.INFO]
    assert len(infos) >= 2  # run start and finish
    assert logging.getLogger("flowcraft_core").handlers == [] or all(
        isinstance(h, logging.NullHandler) for h in logging.getLogger("flowcraft_core").handlers
    )


class PassThrough:
    async def before_node(self, *, ctx: Any) -> None:
        return None

    async def around_node(self, *, ctx: Any, call_next: Any) -> Any:
        return await call_next()

    async def after_node(self, *, ctx: Any, result: Any, error: Any) -> None:
        return None


async def test_pass_through_middleware_changes_nothing() -> None:
    """Writes, retries, timeouts, class nodes and stand-ins behave the same inside the chain."""
    from flowcraft_core import BaseNode

    class Cls(BaseNode):
        async def prep(self, ctx: Any) -> Any:
            await ctx.context.set("prep", ctx.node_id)
            return 1

        async def exec(self, prep_result: Any, ctx: Any) -> Any:
            await ctx.context.set(f"exec{ctx.attempt}", True)
            if ctx.attempt == 1:
                raise ValueError("once")
            return {"output": prep_result + 1}

    async def slow_first(ctx: Any) -> dict[str, Any]:
        await ctx.context.set(f"slow{ctx.attempt}", True)
        if ctx.attempt == 1:
            await asyncio.sleep(2)
        return {"output": "slow done"}

    async def fails(ctx: Any) -> None:
        await ctx.context.set("failing_write", True)
        raise ValueError("down")

    async def stand_in(ctx: Any) -> dict[str, Any]:
        await ctx.context.set("stand_in_write", ctx.input)
        return {"output": "standing in", "action": "fb"}

    impls = {
        "flaky": flaky_writer,
        "echo": echo,
        "cls": Cls,
        "slow": slow_first,
        "fails": fails,
        "stand_in": stand_in,
    }
    blueprint = bp(
        [
            node("A", "flaky", config={"maxRetries": 2}),
            node("B"),
            node("C", "cls", config={"maxRetries": 2}),
            node("S", "slow", config={"maxRetries": 2, "timeout": 50}),
            node("N", "fails", config={"fallback": "F"}),
            node("F", "stand_in"),
            node("after_fb"),
        ],
        [edge("A", "B"), edge("B", "C"), edge("C", "S"), edge("N", "after_fb", action="fb")],
    )
    plain_runtime, plain_bus = make_runtime(impls, concurrency=1)
    wrapped_runtime, wrapped_bus = make_runtime(impls, concurrency=1, middleware=[PassThrough()])
    plain = await plain_runtime.run(blueprint, {"_inputs.N": "n-in"}, run_id="same")
    wrapped = await wrapped_runtime.run(blueprint, {"_inputs.N": "n-in"}, run_id="same")

    assert plain.status == "completed", plain.errors
    assert wrapped.status == "completed", wrapped.errors
    assert wrapped.context == plain.context
    assert plain.context["exec2"] is True and "exec1" not in plain.context
    assert plain.context["slow2"] is True and "slow1" not in plain.context
    assert plain.context["stand_in_write"] == "n-in"
    assert plain.context["_outputs.F"] == plain.context["_outputs.N"] == "standing in"
    assert "failing_write" not in plain.context
    assert rows(wrapped_bus) == rows(plain_bus)
