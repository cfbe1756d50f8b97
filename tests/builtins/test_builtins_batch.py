"""SPEC 5.1 `batch-scatter` / `batch-gather`: order, in-flight cap, keys, failures, events."""

from __future__ import annotations

import asyncio
import random
import threading
from typing import Any

import flow_maps
import pytest
from builtins_support import (
    Concurrency,
    Timer,
    cancel_midway,
    echo,
    make_runtime,
    of_type,
    ran,
    started,
    still_running,
    trace,
)

from flowcraft_core import BaseNode, BlueprintError, NonRetryableError


def batch_flow(
    scatter: dict[str, Any] | None = None,
    gather: dict[str, Any] | None = None,
    *,
    worker: str = "work",
    scatter_config: dict[str, Any] | None = None,
) -> dict[str, Any]:
    scatter_node: dict[str, Any] = {
        "params": {"workerUsesKey": worker, "gatherNodeId": "g", **(scatter or {})}
    }
    if scatter_config:
        scatter_node["config"] = scatter_config
    return flow_maps.flow(
        "batchy",
        "src:echo s:batch-scatter g:batch-gather after:echo",
        "src>s s>g g>after",
        fields={"s": scatter_node, "g": {"params": gather} if gather else {}},
    )


async def test_results_in_item_order_when_items_finish_out_of_order() -> None:
    rng = random.Random(1234)
    delays = [rng.uniform(0.0, 0.03) for _ in range(12)]
    delays[0] = 0.05  # the first item surely finishes last
    finished: list[int] = []
    seen: list[tuple[str, Any, tuple[int, ...]]] = []

    async def work(ctx: Any) -> dict[str, Any]:
        seen.append((ctx.node_id, ctx.input, ctx.iteration))
        await asyncio.sleep(delays[ctx.input])
        finished.append(ctx.input)
        return {"output": {"item": ctx.input, "square": ctx.input * ctx.input}}

    runtime, bus = make_runtime({"echo": echo, "work": work})
    items = list(range(12))
    result = await runtime.run(batch_flow(), {"_inputs.src": items})

    expected = [{"item": i, "square": i * i} for i in items]
    assert finished != items  # really out of order
    assert finished[-1] == 0
    assert result.status == "completed"
    assert result.errors == []
    ctx = result.context
    assert ctx["_outputs.s"] == {"gatherNodeId": "g", "itemCount": 12}
    assert ctx["_outputs.g"] == expected
    assert ctx["g"] == expected
    assert ctx["_outputs.after"] == expected
    assert sorted(seen) == sorted((f"s[{i}]", i, ()) for i in items)
    # Item outputs are not written to the context.
    assert not any(key.startswith("_outputs.s[") for key in ctx)
    assert started(bus, "g") == [()]
    assert started(bus, "after") == [()]


@pytest.mark.parametrize(("chunk", "count", "expected_max"), [(1, 5, 1), (3, 10, 3), (None, 8, 8)])
async def test_chunk_size_caps_items_in_flight(
    chunk: int | None, count: int, expected_max: int
) -> None:
    gauge = Concurrency()
    order: list[int] = []

    async def work(ctx: Any) -> dict[str, Any]:
        order.append(ctx.input)
        await gauge.hold(0.04)
        return {"output": ctx.input * 10}

    runtime, _ = make_runtime({"echo": echo, "work": work})
    params = {} if chunk is None else {"chunkSize": chunk}
    result = await runtime.run(batch_flow(params), {"_inputs.src": list(range(count))})
    assert result.status == "completed"
    assert gauge.max == expected_max
    assert result.context["_outputs.g"] == [i * 10 for i in range(count)]
    assert sorted(order) == list(range(count))
    if chunk == 1:
        assert order == list(range(count))


@pytest.mark.parametrize(
    ("gather_key", "scatter_key", "expected_key"),
    [("gk", "sk", "gk"), (None, "sk", "sk"), ("gk", None, "gk"), (None, None, "g")],
)
async def test_output_key(
    gather_key: str | None, scatter_key: str | None, expected_key: str
) -> None:
    runtime, bus = make_runtime({"echo": echo, "work": echo})
    scatter = {"outputKey": scatter_key} if scatter_key else {}
    gather = {"outputKey": gather_key} if gather_key else None
    result = await runtime.run(batch_flow(scatter, gather), {"_inputs.src": ["a", "b"]})
    assert result.status == "completed"
    assert result.context[expected_key] == ["a", "b"]
    for key in {"gk", "sk", "g"} - {expected_key}:
        assert key not in result.context
    changes = [(e.source_node, e.key, e.value) for e in of_type(bus, "context:change")]
    assert ("g", expected_key, ["a", "b"]) in changes


async def test_empty_list_makes_gather_ready_at_once() -> None:
    calls: list[Any] = []

    async def work(ctx: Any) -> None:
        calls.append(ctx.input)

    runtime, bus = make_runtime({"echo": echo, "work": work})
    result = await runtime.run(batch_flow({"outputKey": "out"}), {"_inputs.src": []})
    assert result.status == "completed"
    assert calls == []
    assert result.context["_outputs.s"] == {"gatherNodeId": "g", "itemCount": 0}
    assert result.context["_outputs.g"] == []
    assert result.context["out"] == []
    assert result.context["_outputs.after"] == []
    assert [(e.batch_id, e.item_count) for e in of_type(bus, "batch:start")] == [("s", 0)]
    assert [(e.batch_id, e.gather_node_id, e.results) for e in of_type(bus, "batch:finish")] == [
        ("s", "g", [])
    ]
    assert trace(bus) == ran("src", "s", "g", "after")


@pytest.mark.parametrize("value", [{"a": 1}, "abc", None, 3])
async def test_non_list_input_fails_scatter_without_retry(value: Any) -> None:
    calls: list[Any] = []

    async def work(ctx: Any) -> None:
        calls.append(ctx.input)

    runtime, bus = make_runtime({"echo": echo, "work": work})
    flow = batch_flow(scatter_config={"maxRetries": 3})
    result = await runtime.run(flow, {"_inputs.src": value})
    assert result.status == "failed"
    assert calls == []
    assert len(result.errors) == 1
    error = result.errors[0]
    assert (error.node_id, error.type, error.attempts) == ("s", "NonRetryableError", 1)
    assert isinstance(error.exception, NonRetryableError)
    assert of_type(bus, "node:retry") == []
    assert of_type(bus, "batch:start") == []
    assert "_outputs.s" not in result.context
    assert [(e.node_id, e.reason) for e in of_type(bus, "node:skipped")] == [
        ("g", "upstream_failed"),
        ("after", "upstream_failed"),
    ]


async def test_failing_item_without_collect_errors_fails_the_run() -> None:
    begun: list[int] = []

    async def work(ctx: Any) -> dict[str, Any]:
        begun.append(ctx.input)
        await asyncio.sleep(0.005)
        if ctx.input == 2:
            raise ValueError("bad item 2")
        return {"output": ctx.input}

    runtime, bus = make_runtime({"echo": echo, "work": work})
    result = await runtime.run(batch_flow({"chunkSize": 1}), {"_inputs.src": [0, 1, 2, 3, 4]})

    assert result.status == "failed"
    assert begun == [0, 1, 2]  # items not started never start
    assert [(e.node_id, e.type, e.message, e.iteration) for e in result.errors] == [
        ("s[2]", "ValueError", "bad item 2", ())
    ]
    assert [e.node_id for e in of_type(bus, "node:error")] == ["s[2]"]
    assert [(e.node_id, e.reason) for e in of_type(bus, "node:skipped")] == [
        ("g", "upstream_failed"),
        ("after", "upstream_failed"),
    ]
    assert of_type(bus, "batch:finish") == []
    for key in ("_outputs.g", "_outputs.after", "g"):
        assert key not in result.context
    assert started(bus, "s[3]") == []
    assert started(bus, "s[4]") == []


async def test_items_in_flight_finish_when_one_fails() -> None:
    ended: list[int] = []

    async def work(ctx: Any) -> dict[str, Any]:
        if ctx.input == 1:
            raise ValueError("item one")
        await asyncio.sleep(0.03)
        ended.append(ctx.input)
        return {"output": ctx.input}

    runtime, bus = make_runtime({"echo": echo, "work": work})
    result = await runtime.run(batch_flow(), {"_inputs.src": [0, 1, 2, 3]})
    assert result.status == "failed"
    assert sorted(ended) == [0, 2, 3]
    assert [(e.node_id, e.message) for e in result.errors] == [("s[1]", "item one")]
    assert [(e.node_id, e.reason) for e in of_type(bus, "node:skipped")] == [
        ("g", "upstream_failed"),
        ("after", "upstream_failed"),
    ]


async def test_failing_item_with_collect_errors() -> None:
    async def work(ctx: Any) -> dict[str, Any]:
        if ctx.input == "bad":
            raise KeyError("nope")
        if ctx.input == "worse":
            raise NonRetryableError("no way")
        return {"output": ctx.input.upper()}

    runtime, bus = make_runtime({"echo": echo, "work": work})
    flow = batch_flow({"collectErrors": True, "outputKey": "res"})
    result = await runtime.run(flow, {"_inputs.src": ["a", "bad", "c", "worse"]})

    expected = [
        "A",
        {"error": {"type": "KeyError", "message": "'nope'"}},
        "C",
        {"error": {"type": "NonRetryableError", "message": "no way"}},
    ]
    assert result.status == "completed"
    assert result.errors == []
    assert result.context["_outputs.g"] == expected
    assert result.context["res"] == expected
    assert result.context["_outputs.after"] == expected
    node_errors = of_type(bus, "node:error")
    assert [(e.node_id, e.error.node_id, e.error.type) for e in node_errors] == [
        ("s[1]", "s[1]", "KeyError"),
        ("s[3]", "s[3]", "NonRetryableError"),
    ]
    assert of_type(bus, "node:skipped") == []
    assert [e.status for e in of_type(bus, "workflow:finish")] == ["completed"]


async def test_batch_events() -> None:
    async def work(ctx: Any) -> dict[str, Any]:
        return {"output": ctx.input + 1}

    runtime, bus = make_runtime({"echo": echo, "work": work})
    result = await runtime.run(batch_flow(), {"_inputs.src": [1, 2, 3]}, run_id="bev")
    assert result.status == "completed"

    starts = of_type(bus, "batch:start")
    assert [
        (e.run_id, e.blueprint_id, e.batch_id, e.scatter_node_id, e.gather_node_id, e.item_count)
        for e in starts
    ] == [("bev", "batchy", "s", "s", "g", 3)]
    finishes = of_type(bus, "batch:finish")
    assert [(e.run_id, e.batch_id, e.gather_node_id, e.results) for e in finishes] == [
        ("bev", "s", "g", [2, 3, 4])
    ]
    events = bus.events
    index = {id(e): i for i, e in enumerate(events)}
    item_starts = [e for e in of_type(bus, "node:start") if e.node_id.startswith("s[")]
    item_finishes = [e for e in of_type(bus, "node:finish") if e.node_id.startswith("s[")]
    assert sorted(e.node_id for e in item_starts) == ["s[0]", "s[1]", "s[2]"]
    assert sorted((e.node_id, e.result.output) for e in item_finishes) == [
        ("s[0]", 2),
        ("s[1]", 3),
        ("s[2]", 4),
    ]
    assert index[id(starts[0])] < min(index[id(e)] for e in item_starts)
    assert index[id(finishes[0])] > max(index[id(e)] for e in item_finishes)
    scatter_start = next(e for e in of_type(bus, "node:start") if e.node_id == "s")
    gather_start = next(e for e in of_type(bus, "node:start") if e.node_id == "g")
    assert index[id(scatter_start)] < index[id(starts[0])]
    assert index[id(gather_start)] < index[id(finishes[0])]


async def test_worker_params_and_worker_config() -> None:
    attempts: dict[str, list[int]] = {}

    async def work(ctx: Any) -> dict[str, Any]:
        attempts.setdefault(ctx.node_id, []).append(ctx.attempt)
        assert ctx.params == {"factor": 3}
        if ctx.attempt < 3:
            raise RuntimeError(f"flaky {ctx.node_id} attempt {ctx.attempt}")
        return {"output": ctx.input * ctx.params["factor"]}

    runtime, bus = make_runtime({"echo": echo, "work": work})
    flow = batch_flow(
        {"workerParams": {"factor": 3}, "workerConfig": {"maxRetries": 3, "retryDelay": 1}}
    )
    result = await runtime.run(flow, {"_inputs.src": [1, 2]})
    assert result.status == "completed"
    assert result.errors == []
    assert result.context["_outputs.g"] == [3, 6]
    assert attempts == {"s[0]": [1, 2, 3], "s[1]": [1, 2, 3]}
    retries = sorted((e.node_id, e.attempt, e.delay_ms) for e in of_type(bus, "node:retry"))
    assert retries == [("s[0]", 1, 1), ("s[0]", 2, 1), ("s[1]", 1, 1), ("s[1]", 2, 1)]


async def test_worker_config_exhausted_attempts_are_recorded() -> None:
    async def work(ctx: Any) -> None:
        raise RuntimeError(f"always {ctx.attempt}")

    runtime, _ = make_runtime({"echo": echo, "work": work})
    flow = batch_flow({"workerConfig": {"maxRetries": 2}})
    result = await runtime.run(flow, {"_inputs.src": ["x"]})
    assert result.status == "failed"
    assert [(e.node_id, e.message, e.attempts) for e in result.errors] == [("s[0]", "always 2", 2)]


async def test_worker_default_is_one_attempt() -> None:
    calls: list[int] = []

    async def work(ctx: Any) -> None:
        calls.append(ctx.attempt)
        raise RuntimeError("once")

    runtime, _ = make_runtime({"echo": echo, "work": work})
    result = await runtime.run(batch_flow(), {"_inputs.src": ["x"]})
    assert result.status == "failed"
    assert calls == [1]
    assert [(e.node_id, e.attempts) for e in result.errors] == [("s[0]", 1)]


BATCH_IN_LOOP = flow_maps.flow(
    "batch-loop",
    "start:echo L mk:make_items s:batch-scatter g:batch-gather done:echo",
    "start>L L>mk:continue mk>s s>g g>L L>done:break",
    loops={"L": "iteration < 3"},
    params={"s": {"workerUsesKey": "work", "gatherNodeId": "g", "outputKey": "latest"}},
)


async def test_batch_inside_a_loop_body_runs_per_iteration() -> None:
    seen: list[tuple[str, Any, tuple[int, ...]]] = []

    async def make_items(ctx: Any) -> dict[str, Any]:
        base = ctx.iteration[0] * 10
        return {"output": [base, base + 1, base + 2]}

    async def work(ctx: Any) -> dict[str, Any]:
        seen.append((ctx.node_id, ctx.input, ctx.iteration))
        await asyncio.sleep(0.001 * (3 - ctx.input % 10))
        return {"output": ctx.input * 2}

    runtime, bus = make_runtime({"echo": echo, "make_items": make_items, "work": work})
    result = await runtime.run(BATCH_IN_LOOP)
    assert result.status == "completed"
    assert result.errors == []
    assert sorted(seen) == sorted(
        (f"s[{i}]", it * 10 + i, (it,)) for it in range(3) for i in range(3)
    )
    gathers = [
        (e.iteration, e.result.output) for e in of_type(bus, "node:finish") if e.node_id == "g"
    ]
    assert gathers == [((0,), [0, 2, 4]), ((1,), [20, 22, 24]), ((2,), [40, 42, 44])]
    assert [e.item_count for e in of_type(bus, "batch:start")] == [3, 3, 3]
    assert [e.results for e in of_type(bus, "batch:finish")] == [
        [0, 2, 4],
        [20, 22, 24],
        [40, 42, 44],
    ]
    assert result.context["_outputs.g"] == [40, 42, 44]
    assert result.context["latest"] == [40, 42, 44]
    assert result.context["_outputs.done"] == [40, 42, 44]
    assert started(bus, "L") == [(0,), (1,), (2,), (3,)]
    assert started(bus, "done") == [()]


async def test_item_identity_and_timeout_per_item() -> None:
    ids: list[tuple[str, str, Any]] = []

    async def work(ctx: Any) -> dict[str, Any]:
        ids.append((ctx.node_id, ctx.activation_id, ctx.input))
        if ctx.input == "slow":
            await asyncio.sleep(5)
        return {"output": ctx.input}

    runtime, _ = make_runtime({"echo": echo, "work": work})
    flow = batch_flow({"collectErrors": True, "workerConfig": {"timeout": 50}})
    with Timer() as timer:
        result = await runtime.run(flow, {"_inputs.src": ["a", "slow"]}, run_id="ids")
    assert timer.elapsed < 2.0
    assert result.status == "completed"
    assert sorted(ids) == [("s[0]", "ids-s~5b0~5d-0", "a"), ("s[1]", "ids-s~5b1~5d-0", "slow")]
    first, second = result.context["_outputs.g"]
    assert first == "a"
    assert second["error"]["type"] == "NodeTimeoutError"
    assert set(second["error"]) == {"type", "message"}


async def test_class_and_thread_workers() -> None:
    class Triple(BaseNode):
        async def exec(self, prep_result: Any, ctx: Any) -> dict[str, Any]:
            assert self.node_id == ctx.node_id
            return {"output": prep_result * self.params["k"]}

    def plain(ctx: Any) -> dict[str, Any]:
        return {"output": [ctx.input, threading.current_thread() is threading.main_thread()]}

    runtime, _ = make_runtime({"echo": echo, "triple": Triple, "plain": plain})
    result = await runtime.run(
        batch_flow({"workerParams": {"k": 3}}, worker="triple"), {"_inputs.src": [1, 2]}
    )
    assert result.status == "completed"
    assert result.context["_outputs.g"] == [3, 6]
    result = await runtime.run(batch_flow(worker="plain"), {"_inputs.src": ["x", "y"]})
    assert result.status == "completed"
    assert result.context["_outputs.g"] == [["x", False], ["y", False]]


async def test_gather_accepts_builder_compatibility_params() -> None:
    runtime, _ = make_runtime({"echo": echo, "work": echo})
    flow = batch_flow(gather={"gatherNodeId": "s", "joinStrategy": "any", "outputKey": "got"})
    result = await runtime.run(flow, {"_inputs.src": [1, 2, 3]})
    assert result.status == "completed"
    assert result.context["got"] == [1, 2, 3]


async def test_failing_item_in_a_loop_fails_the_run_without_hanging() -> None:
    async def make_items(ctx: Any) -> dict[str, Any]:
        return {"output": [ctx.iteration[0], 100]}

    async def work(ctx: Any) -> dict[str, Any]:
        if ctx.input == 1:
            raise ValueError("item 1 of iteration 1")
        return {"output": ctx.input}

    runtime, bus = make_runtime({"echo": echo, "make_items": make_items, "work": work})
    result = await asyncio.wait_for(runtime.run(BATCH_IN_LOOP), timeout=10)
    assert result.status == "failed"
    assert [(e.node_id, e.iteration, e.message) for e in result.errors] == [
        ("s[0]", (1,), "item 1 of iteration 1")
    ]
    assert [(e.node_id, e.iteration, e.reason) for e in of_type(bus, "node:skipped")][:1] == [
        ("g", (1,), "upstream_failed")
    ]
    assert started(bus, "L") == [(0,), (1,)]
    assert started(bus, "done") == []


async def test_unregistered_worker_is_a_blueprint_error_before_anything_runs() -> None:
    calls: list[Any] = []

    async def src(ctx: Any) -> None:
        calls.append(ctx.node_id)

    runtime, bus = make_runtime({"echo": src})
    with pytest.raises(BlueprintError) as info:
        await runtime.run(batch_flow(worker="missing.worker"), {"_inputs.src": [1]})
    assert [(p.path, p.code) for p in info.value.problems] == [
        ("nodes[1].params.workerUsesKey", "MISSING_IMPLEMENTATION")
    ]
    assert calls == []
    assert of_type(bus, "node:start") == []


async def test_cancellation_during_a_batch() -> None:
    begun: list[int] = []

    async def work(ctx: Any) -> dict[str, Any]:
        begun.append(ctx.input)
        await asyncio.sleep(30 if ctx.input == 2 else 0.01)
        return {"output": ctx.input}

    runtime, bus = make_runtime({"echo": echo, "work": work})
    result = await cancel_midway(
        lambda token: runtime.run(
            batch_flow({"chunkSize": 2}), {"_inputs.src": [0, 1, 2, 3, 4, 5]}, signal=token
        ),
        after_s=0.2,
        while_running=still_running,
    )
    assert result.status == "cancelled"
    assert result.errors == []
    assert 2 in begun
    assert started(bus, "g") == []
    assert "_outputs.g" not in result.context
    assert [e.status for e in of_type(bus, "workflow:finish")] == ["cancelled"]


async def test_runtime_concurrency_caps_items() -> None:
    gauge = Concurrency()

    async def work(ctx: Any) -> dict[str, Any]:
        await gauge.hold(0.02)
        return {"output": ctx.input}

    runtime, _ = make_runtime({"echo": echo, "work": work}, concurrency=2)
    result = await runtime.run(batch_flow(), {"_inputs.src": list(range(6))})
    assert result.status == "completed"
    assert result.context["_outputs.g"] == list(range(6))
    assert gauge.max == 2


async def test_middleware_applies_to_item_activations() -> None:
    # SPEC 5 (middleware applies to built-ins), 5.1 (each item is an activation
    # `<scatterId>[<i>]`) and 7.2 (before_node once per activation, after_node in a finally).
    before: list[str] = []
    after: list[tuple[str, Any]] = []

    class Recorder:
        async def before_node(self, *, ctx: Any) -> None:
            before.append(ctx.node_id)

        async def after_node(self, *, ctx: Any, result: Any, error: Any) -> None:
            after.append((ctx.node_id, result.output if result is not None else None))

    runtime, _ = make_runtime({"echo": echo, "work": echo}, middleware=[Recorder()])
    result = await runtime.run(batch_flow(), {"_inputs.src": ["p", "q"]})
    assert result.status == "completed"
    assert sorted(before) == sorted(["src", "s", "s[0]", "s[1]", "g", "after"])
    assert ("s[0]", "p") in after
    assert ("s[1]", "q") in after
