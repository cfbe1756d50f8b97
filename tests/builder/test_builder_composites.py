"""SPEC 1.6 composites: `Flow.batch` (scatter/gather with rewired edges) and `Flow.loop`."""

from __future__ import annotations

from typing import Any

import pytest

from flowcraft_core import (
    BlueprintError,
    Flow,
    FlowRuntime,
    InMemoryEventBus,
    NodeContext,
    load_blueprint,
)


def key(impl: object) -> str:
    return f"{impl.__module__}.{getattr(impl, '__qualname__', '')}"


async def numbers(ctx: NodeContext) -> dict[str, Any]:
    return {"output": [3, 1, 2]}


async def square(ctx: NodeContext) -> dict[str, Any]:
    return {"output": ctx.input * ctx.input}


async def total(ctx: NodeContext) -> dict[str, Any]:
    return {"output": sum(ctx.input)}


async def start_count(ctx: NodeContext) -> dict[str, Any]:
    await ctx.context.set("count", 0)
    return {"output": "started"}


async def increment(ctx: NodeContext) -> dict[str, Any]:
    count = await ctx.context.get("count") + 1
    await ctx.context.set("count", count)
    return {"output": count}


async def echo(ctx: NodeContext) -> dict[str, Any]:
    return {"output": ctx.input}


# ---------------------------------------------------------------------- batch


def test_batch_adds_scatter_and_gather_joined_by_one_edge() -> None:
    flow = Flow("etl").batch(
        "squares", square, input_key="numbers", output_key="squared", chunk_size=2
    )

    assert flow.to_dict() == {
        "id": "etl",
        "nodes": [
            {
                "id": "squares_scatter",
                "uses": "batch-scatter",
                "params": {
                    "workerUsesKey": key(square),
                    "gatherNodeId": "squares_gather",
                    "outputKey": "squared",
                    "chunkSize": 2,
                },
                "inputs": "numbers",
            },
            {"id": "squares_gather", "uses": "batch-gather"},
        ],
        "edges": [{"source": "squares_scatter", "target": "squares_gather"}],
    }
    assert list(flow.registry()) == [key(square)]


def test_batch_optional_settings() -> None:
    flow = Flow("etl").batch(
        "b",
        "worker.key",
        input_key="items",
        collect_errors=True,
        worker_params={"factor": 2},
        worker_config={"max_retries": 3, "retryDelay": 5},
    )

    params = flow.to_blueprint().node("b_scatter").params
    assert params == {
        "workerUsesKey": "worker.key",
        "gatherNodeId": "b_gather",
        "collectErrors": True,
        "workerParams": {"factor": 2},
        "workerConfig": {"maxRetries": 3, "retryDelay": 5},
    }
    assert len(flow.registry()) == 0


def test_edges_into_the_batch_reach_the_scatter_and_edges_out_leave_the_gather() -> None:
    # Edges naming the batch are declared before and after the batch itself: order is kept.
    flow = (
        Flow("etl")
        .node("extract", numbers)
        .edge("extract", "squares")
        .batch("squares", square, input_key="extract")
        .node("load", total)
        .edge("squares", "load", transform="input")
    )

    assert flow.to_dict()["edges"] == [
        {"source": "extract", "target": "squares_scatter"},
        {"source": "squares_scatter", "target": "squares_gather"},
        {"source": "squares_gather", "target": "load", "transform": "input"},
    ]
    assert [n.id for n in flow.to_blueprint().nodes] == [
        "extract",
        "squares_scatter",
        "squares_gather",
        "load",
    ]


def test_batch_equals_the_same_json() -> None:
    flow = (
        Flow("etl")
        .node("extract", "etl.extract")
        .batch("t", "etl.transform", input_key="extract", output_key="rows")
        .node("load", "etl.load")
        .edge("extract", "t")
        .edge("t", "load")
    )
    text = """
    id: etl
    nodes:
      - {id: extract, uses: etl.extract}
      - id: t_scatter
        uses: batch-scatter
        inputs: extract
        params: {workerUsesKey: etl.transform, gatherNodeId: t_gather, outputKey: rows}
      - {id: t_gather, uses: batch-gather}
      - {id: load, uses: etl.load}
    edges:
      - {source: t_scatter, target: t_gather}
      - {source: extract, target: t_scatter}
      - {source: t_gather, target: load}
    """
    assert flow.to_blueprint() == load_blueprint(text)


async def test_batch_runs_every_item_and_gathers_in_order() -> None:
    flow = (
        Flow("etl")
        .node("extract", numbers)
        .batch("squares", square, input_key="extract", output_key="squared", chunk_size=2)
        .node("load", total)
        .edge("extract", "squares")
        .edge("squares", "load")
    )
    bus = InMemoryEventBus()
    result = await FlowRuntime(registry=flow.registry(), event_bus=bus).run(flow.to_blueprint())

    assert result.status == "completed", result.errors
    assert result.context["squared"] == [9, 1, 4]
    assert result.outputs["squares_gather"] == [9, 1, 4]
    assert result.outputs["load"] == 14
    items = sorted(e.node_id for e in bus.of_type("node:finish") if "[" in e.node_id)
    assert items == ["squares_scatter[0]", "squares_scatter[1]", "squares_scatter[2]"]


# ---------------------------------------------------------------------- loop


def counting_loop(condition: str, max_iterations: int | None = None) -> Flow:
    return (
        Flow("loop")
        .node("a", start_count)
        .node("b", increment)
        .node("done", echo)
        .loop("L", start_node_id="b", end_node_id="b", condition=condition, **_max(max_iterations))
        .edge("a", "L")
        .edge("L", "done")
    )


def _max(value: int | None) -> dict[str, Any]:
    return {} if value is None else {"max_iterations": value}


def test_loop_adds_controller_continue_edge_and_break_exits() -> None:
    flow = counting_loop("count < 3", max_iterations=10)

    data = flow.to_dict()
    assert data["nodes"][3] == {
        "id": "L",
        "uses": "loop-controller",
        "params": {"condition": "count < 3", "maxIterations": 10},
    }
    assert data["edges"] == [
        {"source": "b", "target": "L"},
        {"source": "L", "target": "b", "action": "continue"},
        {"source": "a", "target": "L"},
        {"source": "L", "target": "done", "action": "break"},
    ]


def test_loop_keeps_an_explicit_action_and_conditions() -> None:
    flow = counting_loop("count < 3")
    flow.node("extra", echo).edge("L", "extra", action="continue", condition="count > 1")

    assert flow.to_dict()["edges"][-1] == {
        "source": "L",
        "target": "extra",
        "action": "continue",
        "condition": "count > 1",
    }


def test_loop_equals_the_spec_shape() -> None:
    loaded = load_blueprint(
        {
            "id": "loop",
            "nodes": [
                {"id": "a", "uses": key(start_count)},
                {"id": "b", "uses": key(increment)},
                {"id": "done", "uses": key(echo)},
                {"id": "L", "uses": "loop-controller", "params": {"condition": "count < 3"}},
            ],
            "edges": [
                {"source": "b", "target": "L"},
                {"source": "L", "target": "b", "action": "continue"},
                {"source": "a", "target": "L"},
                {"source": "L", "target": "done", "action": "break"},
            ],
        }
    )
    assert counting_loop("count < 3").to_blueprint() == loaded


async def test_loop_runs_the_body_until_the_condition_fails() -> None:
    flow = counting_loop("count < 3")
    bus = InMemoryEventBus()
    runtime = FlowRuntime(registry=flow.registry(), event_bus=bus, concurrency=1)

    result = await runtime.run(flow.to_blueprint())

    assert result.status == "completed", result.errors
    assert result.context["count"] == 3
    body = [tuple(e.iteration) for e in bus.of_type("node:start") if e.node_id == "b"]
    assert body == [(0,), (1,), (2,)]
    assert [e.node_id for e in bus.of_type("node:start")].count("done") == 1
    assert result.outputs["done"] == 3


async def test_loop_max_iterations_fails_the_run() -> None:
    flow = counting_loop("true", max_iterations=2)
    result = await FlowRuntime(registry=flow.registry()).run(flow.to_blueprint())

    assert result.status == "failed"
    assert [(e.node_id, e.type) for e in result.errors] == [("L", "LoopLimitError")]
    assert result.context["count"] == 2


def test_loop_around_a_batch_rewires_both_ends() -> None:
    flow = (
        Flow("f")
        .node("a", numbers)
        .batch("sq", square, input_key="a")
        .loop("L", start_node_id="sq", end_node_id="sq", condition="false")
        .edge("a", "L")
    )

    assert flow.to_dict()["edges"] == [
        {"source": "sq_scatter", "target": "sq_gather"},
        {"source": "sq_gather", "target": "L"},
        {"source": "L", "target": "sq_scatter", "action": "continue"},
        {"source": "a", "target": "L"},
    ]
    flow.to_blueprint()


@pytest.mark.parametrize("bad", ["", "count <"])
def test_invalid_loop_condition_is_a_load_problem(bad: str) -> None:
    with pytest.raises(BlueprintError) as info:
        counting_loop(bad).to_blueprint()
    assert [p.path for p in info.value.problems] == ["nodes[3].params.condition"]
