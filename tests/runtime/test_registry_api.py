"""SPEC 2.1, 3 (run API), 3.8 scheduling and 1.4's zero-node rule."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from flowcraft_core import (
    BaseNode,
    BlueprintError,
    FlowRuntime,
    NodeRegistry,
    RegistryError,
    load_blueprint,
)

from .support import Calls, InFlight, bp, echo, edge, make_runtime, node

BUILTINS = [
    "batch-scatter",
    "batch-gather",
    "loop-controller",
    "sleep",
    "wait",
    "subflow",
    "webhook",
]


async def one(ctx: Any) -> dict[str, Any]:
    return {"output": 1}


async def two(ctx: Any) -> dict[str, Any]:
    return {"output": 2}


# --------------------------------------------------------------------------- registry


def test_duplicate_registration_raises_unless_replace() -> None:
    registry = NodeRegistry()
    registry.register("x", one)
    with pytest.raises(RegistryError, match="'x'"):
        registry.register("x", two)
    assert registry["x"] is one
    registry.register("x", two, replace=True)
    assert registry["x"] is two


def test_decorator_registers_under_name_or_module_qualname() -> None:
    registry = NodeRegistry()

    @registry.node("named")
    async def a(ctx: Any) -> None:
        return None

    @registry.node()
    async def b(ctx: Any) -> None:
        return None

    assert registry["named"] is a
    assert registry[f"{__name__}.{b.__qualname__}"] is b
    assert set(registry) == {"named", f"{__name__}.{b.__qualname__}"}
    assert len(registry) == 2


@pytest.mark.parametrize("name", BUILTINS)
def test_builtin_names_are_reserved(name: str) -> None:
    with pytest.raises(RegistryError):
        NodeRegistry().register(name, one)
    with pytest.raises(RegistryError):
        NodeRegistry().register(name, one, replace=True)
    with pytest.raises(RegistryError):
        FlowRuntime(registry={"fine": one, name: one})


@pytest.mark.parametrize("impl", [42, "text", None, object])
def test_non_callables_and_non_node_classes_are_refused(impl: Any) -> None:
    with pytest.raises(RegistryError):
        NodeRegistry().register("x", impl)
    with pytest.raises(RegistryError):
        FlowRuntime(registry={"x": impl})


async def test_plain_mapping_registry_works() -> None:
    class Cls(BaseNode):
        async def exec(self, prep_result: Any, ctx: Any) -> Any:
            return {"output": "cls"}

    runtime = FlowRuntime(registry={"fn": one, "cls": Cls})
    result = await runtime.run(bp([node("a", "fn"), node("b", "cls")]))
    assert result.status == "completed"
    assert (result.context["_outputs.a"], result.context["_outputs.b"]) == (1, "cls")


async def test_missing_implementations_are_reported_before_any_node_runs() -> None:
    calls = Calls()

    async def rec(ctx: Any) -> None:
        calls.add(ctx.node_id)

    runtime, bus = make_runtime({"rec": rec})
    blueprint = bp(
        [
            node("first", "rec", config={"fallback": "no.such.fallback"}),
            node("second", "no.such.impl"),
            node("third", "rec"),
        ],
        [edge("first", "second")],
        id="broken",
    )
    with pytest.raises(BlueprintError) as info:
        await runtime.run(blueprint)
    err = info.value
    assert err.blueprint_id == "broken"
    assert [(p.path, p.code) for p in err.problems] == [
        ("nodes[0].config.fallback", "MISSING_IMPLEMENTATION"),
        ("nodes[1].uses", "MISSING_IMPLEMENTATION"),
    ]
    assert "no.such.impl" in str(err) and "no.such.fallback" in str(err)
    assert calls.log == []
    assert bus.events == []


async def test_invalid_blueprint_mapping_raises_blueprint_error() -> None:
    runtime, bus = make_runtime({"echo": echo})
    with pytest.raises(BlueprintError):
        await runtime.run({"id": "bad", "nodes": [{"id": "a"}]})
    assert bus.events == []


# --------------------------------------------------------------------------- run API


def test_run_sync_runs_outside_a_loop() -> None:
    runtime, _ = make_runtime({"one": one})
    result = runtime.run_sync(bp([node("n", "one")]), {"k": 1}, run_id="sync-run")
    assert result.status == "completed"
    assert result.run_id == "sync-run"
    assert result.context["_outputs.n"] == 1


async def test_run_sync_inside_a_running_loop_raises() -> None:
    runtime, _ = make_runtime({"one": one})
    with pytest.raises(RuntimeError):
        runtime.run_sync(bp([node("n", "one")]))


@pytest.mark.parametrize("value", [0, -1])
async def test_concurrency_below_one_is_refused(value: int) -> None:
    with pytest.raises(ValueError):
        FlowRuntime(concurrency=value)
    runtime, _ = make_runtime({"one": one})
    with pytest.raises(ValueError):
        await runtime.run(bp([node("n", "one")]), concurrency=value)


async def test_invalid_run_id_is_refused() -> None:
    runtime, _ = make_runtime({"one": one})
    with pytest.raises(ValueError):
        await runtime.run(bp([node("n", "one")]), run_id="has space")


def fifo_blueprint() -> dict[str, Any]:
    return bp(
        [node(i, "rec") for i in ("A", "B", "C", "D", "E", "F")],
        [
            edge("A", "B"),
            edge("A", "C"),
            edge("A", "D"),
            edge("B", "E"),
            edge("C", "F"),
        ],
    )


async def test_concurrency_one_runs_in_deterministic_fifo_order() -> None:
    orders = []
    for _ in range(5):
        calls = Calls()

        async def rec(ctx: Any, calls: Calls = calls) -> None:
            calls.add(ctx.node_id)
            await asyncio.sleep(0)

        runtime, _ = make_runtime({"rec": rec}, concurrency=1)
        result = await runtime.run(fifo_blueprint())
        assert result.status == "completed"
        orders.append(calls.log)
    assert orders == [["A", "B", "C", "D", "E", "F"]] * 5


async def test_concurrency_limits_activations_in_flight() -> None:
    flight = InFlight()

    async def hold(ctx: Any) -> None:
        await flight.hold(0.03)

    blueprint = bp([node(f"n{i}", "hold") for i in range(8)])
    runtime, _ = make_runtime({"hold": hold}, concurrency=2)
    assert (await runtime.run(blueprint)).status == "completed"
    assert flight.max == 2

    flight.max = 0
    assert (await runtime.run(blueprint, concurrency=5)).status == "completed"
    assert flight.max == 5

    flight.max = 0
    unlimited, _ = make_runtime({"hold": hold})
    assert (await unlimited.run(blueprint)).status == "completed"
    assert flight.max == 8


async def test_blueprint_given_by_id_is_looked_up() -> None:
    loaded = load_blueprint(bp([node("n", "one")], id="by-id"))
    runtime = FlowRuntime(registry={"one": one}, blueprints={"by-id": loaded})
    result = await runtime.run("by-id")
    assert result.status == "completed"
    assert result.context["_outputs.n"] == 1

    from_iterable = FlowRuntime(registry={"one": one}, blueprints=[loaded])
    assert (await from_iterable.run("by-id")).status == "completed"

    with pytest.raises(BlueprintError):
        await runtime.run("unknown-id")


def test_blueprints_key_must_match_the_id() -> None:
    with pytest.raises(ValueError):
        FlowRuntime(registry={"one": one}, blueprints={"other": bp([node("n", "one")], id="x")})


async def test_zero_node_blueprint_completes_at_once() -> None:
    runtime, bus = make_runtime()
    result = await runtime.run(bp([]), {"keep": [1, 2]}, run_id="empty")
    assert result.status == "completed"
    assert result.errors == []
    assert result.context == {"keep": [1, 2], "_executionId": "empty"}
    assert [e.type for e in bus.events] == ["workflow:start", "workflow:finish"]


async def test_status_compares_equal_to_lowercase_strings() -> None:
    runtime, _ = make_runtime({"one": one})
    result = await runtime.run(bp([node("n", "one")]))
    assert result.status == "completed"
    assert str(result.status) == "completed"


async def test_runs_of_one_runtime_are_independent() -> None:
    async def slow_write(ctx: Any) -> dict[str, Any]:
        await asyncio.sleep(0.02)
        await ctx.context.set("mine", ctx.input)
        return {"output": ctx.input}

    runtime, _ = make_runtime({"w": slow_write})
    blueprint = bp([node("n", "w")])
    results = await asyncio.gather(*(runtime.run(blueprint, {"_inputs.n": i}) for i in range(10)))
    assert [r.context["mine"] for r in results] == list(range(10))
    assert len({r.run_id for r in results}) == 10


async def test_any_callable_is_a_function_node() -> None:
    import functools
    import threading

    loop_thread = threading.get_ident()

    class AsyncCallable:
        async def __call__(self, ctx: Any) -> dict[str, Any]:
            return {"output": "async object"}

    class SyncCallable:
        def __call__(self, ctx: Any) -> dict[str, Any]:
            return {"output": threading.get_ident() != loop_thread}

    async def with_extra(ctx: Any, extra: int) -> dict[str, Any]:
        return {"output": extra}

    def blocking(ctx: Any) -> dict[str, Any]:
        return {"output": threading.get_ident() != loop_thread}

    runtime, _ = make_runtime(
        {
            "aobj": AsyncCallable(),
            "sobj": SyncCallable(),
            "partial": functools.partial(with_extra, extra=5),
            "plain": blocking,
            "lambda": lambda ctx: {"output": "lambda"},
        }
    )
    blueprint = bp([node(key, key) for key in ("aobj", "sobj", "partial", "plain", "lambda")])
    result = await runtime.run(blueprint)
    assert result.status == "completed", result.errors
    assert result.outputs == {
        "aobj": "async object",
        "sobj": True,
        "partial": 5,
        "plain": True,
        "lambda": "lambda",
    }
