"""SPEC 1.6 `Flow`: the builder writes the loader's JSON tree and yields the loader's Blueprint."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from spec_examples import ORDER_REVIEW

from flowcraft_core import (
    BaseNode,
    Blueprint,
    BlueprintError,
    Flow,
    FlowRuntime,
    InMemoryEventBus,
    NodeContext,
    NodeRegistry,
    RegistryError,
    load_blueprint,
)
from flowcraft_core.blueprint import NodeConfig
from flowcraft_core.registry import default_key


async def fetch(ctx: NodeContext) -> dict[str, Any]:
    return {"output": {"score": ctx.params.get("score", 0.5), "customer": {"email": "a@b.c"}}}


def approve(ctx: NodeContext) -> dict[str, Any]:  # plain: runs in a worker thread
    return {"output": {"approved": ctx.input}}


async def reject(ctx: NodeContext) -> dict[str, Any]:
    return {"output": {"rejected": ctx.input}}


async def notify(ctx: NodeContext) -> dict[str, Any]:
    return {"output": ctx.input}


async def fetch_cached(ctx: NodeContext) -> dict[str, Any]:
    return {"output": {"score": 0.9, "cached": True}}


class Score(BaseNode):
    async def exec(self, prep_result: Any, ctx: NodeContext) -> Any:
        return {"output": {"score": prep_result["order"]["score"]}}


def key(impl: object) -> str:
    return f"{impl.__module__}.{getattr(impl, '__qualname__', '')}"


def order_review_flow(score: float = 0.9) -> Flow:
    """SPEC 1.2's example, with node code given as objects."""
    return (
        Flow("order-review")
        .metadata(version="2")
        .node(
            "fetch",
            fetch,
            params={"score": score},
            config={"max_retries": 3, "retryDelay": 500, "timeout": 10000, "fallback": "fc"},
        )
        .node("fc", fetch_cached)
        .node("score", Score, inputs={"order": "fetch", "threshold": "_threshold"})
        .wait("manual")
        .node("approve", approve)
        .node("reject", reject, inputs="fetch.customer.email")
        .node("notify", notify, config={"join_strategy": "any"})
        .edge("fetch", "score")
        .edge("score", "approve", condition="result.output.score >= 0.8")
        .edge(
            "score",
            "manual",
            condition="result.output.score >= 0.5 and result.output.score < 0.8",
        )
        .edge("score", "reject", condition="result.output.score < 0.5")
        .edge("manual", "approve", action="approve")
        .edge("manual", "reject", action="reject")
        .edge("approve", "notify", transform="{'status': 'approved', 'order': input}")
        .edge("reject", "notify", transform="{'status': 'rejected'}")
    )


def order_review_json(score: float = 0.9) -> str:
    """SPEC 1.2's example with the builder's keys; its edges are the SPEC's."""
    return json.dumps(
        {
            "id": "order-review",
            "metadata": {"version": "2"},
            "nodes": [
                {
                    "id": "fetch",
                    "uses": key(fetch),
                    "params": {"score": score},
                    "config": {
                        "maxRetries": 3,
                        "retryDelay": 500,
                        "timeout": 10000,
                        "fallback": "fc",
                    },
                },
                {"id": "fc", "uses": key(fetch_cached)},
                {
                    "id": "score",
                    "uses": key(Score),
                    "inputs": {"order": "fetch", "threshold": "_threshold"},
                },
                {"id": "manual", "uses": "wait"},
                {"id": "approve", "uses": key(approve)},
                {"id": "reject", "uses": key(reject), "inputs": "fetch.customer.email"},
                {"id": "notify", "uses": key(notify), "config": {"joinStrategy": "any"}},
            ],
            "edges": ORDER_REVIEW["edges"],
        }
    )


# ---------------------------------------------------------------------- same blueprint as JSON


def test_flow_and_json_give_equal_blueprints() -> None:
    built = order_review_flow().to_blueprint()
    loaded = load_blueprint(order_review_json())

    assert isinstance(built, Blueprint)
    assert built == loaded
    assert built.to_dict() == loaded.to_dict()
    assert order_review_flow().to_dict() == json.loads(order_review_json())
    assert built.node("fetch").config.max_retries == 3
    assert built.node("notify").config.join_strategy == "any"


def test_registry_holds_each_object_under_module_qualname() -> None:
    registry = order_review_flow().registry()

    assert isinstance(registry, NodeRegistry)
    assert dict(registry) == {
        key(fetch): fetch,
        key(fetch_cached): fetch_cached,
        key(Score): Score,
        key(approve): approve,
        key(reject): reject,
        key(notify): notify,
    }
    assert key(Score) == default_key(Score)
    assert "wait" not in registry


async def _run_both(score: float) -> tuple[Any, Any, list[Any], list[Any]]:
    results = []
    traces = []
    flow = order_review_flow(score)
    for blueprint in (flow.to_blueprint(), load_blueprint(order_review_json(score))):
        bus = InMemoryEventBus()
        runtime = FlowRuntime(registry=flow.registry(), event_bus=bus, concurrency=1)
        results.append(await runtime.run(blueprint, {"_threshold": 0.8}, run_id="same-run"))
        traces.append([(e.type, getattr(e, "node_id", None)) for e in bus.events])
    return results[0], results[1], traces[0], traces[1]


async def test_flow_and_json_run_identically_when_approved() -> None:
    built, loaded, built_trace, loaded_trace = await _run_both(0.9)

    assert built.status == loaded.status == "completed"
    assert built.context == loaded.context
    assert built_trace == loaded_trace
    assert built.outputs["notify"] == {
        "status": "approved",
        "order": {"approved": {"score": 0.9}},
    }
    assert "_outputs.manual" not in built.context


async def test_flow_and_json_run_identically_when_waiting_then_rejected() -> None:
    built, loaded, built_trace, loaded_trace = await _run_both(0.6)

    assert built.status == loaded.status == "awaiting"
    assert built.context["_awaitingNodeIds"] == ["manual"]
    assert built_trace == loaded_trace

    flow = order_review_flow(0.6)
    runtime = FlowRuntime(registry=flow.registry())
    resumed = await runtime.resume(
        flow.to_blueprint(), loaded.serialized_context, node_id="manual", action="reject"
    )
    assert resumed.status == "completed"
    assert resumed.run_id == "same-run"
    assert resumed.outputs["reject"] == {"rejected": "a@b.c"}
    assert resumed.outputs["notify"] == {"status": "rejected"}
    assert "_outputs.approve" not in resumed.context


# ---------------------------------------------------------------------- nodes and config


def test_string_key_is_used_as_is_and_not_registered() -> None:
    flow = Flow("f").node("a", "orders.fetch").node("b", fetch)

    assert [n["uses"] for n in flow.to_dict()["nodes"]] == ["orders.fetch", key(fetch)]
    assert list(flow.registry()) == [key(fetch)]


def test_same_object_twice_is_registered_once() -> None:
    flow = Flow("f").node("a", notify).node("b", notify)

    assert list(flow.registry()) == [key(notify)]
    assert {n.uses for n in flow.to_blueprint().nodes} == {key(notify)}


def test_two_objects_with_the_same_key_are_refused() -> None:
    first = lambda ctx: None  # noqa: E731
    second = lambda ctx: None  # noqa: E731
    flow = Flow("f").node("a", first)

    with pytest.raises(RegistryError, match="already registered"):
        flow.node("b", second)


def test_non_callable_implementation_is_refused() -> None:
    with pytest.raises(RegistryError):
        Flow("f").node("a", 42)


def test_registry_is_a_copy() -> None:
    flow = Flow("f").node("a", fetch)
    registry = flow.registry()
    registry.register("extra", notify)

    assert "extra" not in flow.registry()


#: One node config in the loader's JSON names.
CONFIG_JSON = {
    "maxRetries": 4,
    "retryDelay": 25,
    "backoff": "exponential",
    "timeout": 1000,
    "fallback": "b",
    "joinStrategy": "any",
}


@pytest.mark.parametrize(
    "config",
    [
        {
            "max_retries": 4,
            "retry_delay": 25,
            "backoff": "exponential",
            "timeout": 1000,
            "fallback": "b",
            "join_strategy": "any",
        },
        {**CONFIG_JSON},  # a copy: the expected value below stays untouched
        NodeConfig(
            max_retries=4,
            retry_delay=25,
            backoff="exponential",
            timeout=1000,
            fallback="b",
            join_strategy="any",
        ),
    ],
    ids=["snake_case", "json_names", "NodeConfig"],
)
def test_config_accepts_snake_case_json_names_or_a_node_config(config: Any) -> None:
    flow = Flow("f").node("a", "impl", config=config).node("b", "impl")

    assert flow.to_dict()["nodes"][0]["config"] == CONFIG_JSON
    conf = flow.to_blueprint().node("a").config
    assert (conf.max_retries, conf.retry_delay, conf.timeout) == (4, 25, 1000)
    assert (conf.backoff, conf.fallback, conf.join_strategy) == ("exponential", "b", "any")


def test_callable_fallback_is_registered_and_named_by_its_key() -> None:
    flow = Flow("f").node("a", fetch, config={"fallback": fetch_cached})

    assert flow.to_blueprint().node("a").config.fallback == key(fetch_cached)
    assert flow.registry()[key(fetch_cached)] is fetch_cached


def test_unknown_config_name_is_a_load_problem_with_its_path() -> None:
    flow = Flow("f").node("a", "impl", config={"max_retry": 3})

    with pytest.raises(BlueprintError) as info:
        flow.to_blueprint()
    assert [(p.path, p.code) for p in info.value.problems] == [
        ("nodes[0].config.max_retry", "UNKNOWN_FIELD")
    ]


def test_to_blueprint_reports_every_problem_like_the_loader() -> None:
    flow = (
        Flow("bad")
        .node("a", "impl", config={"max_retries": 0})
        .edge("a", "nowhere")
        .edge("a", "a", condition="1 +")
    )

    with pytest.raises(BlueprintError) as info:
        flow.to_blueprint()
    with pytest.raises(BlueprintError) as loaded:
        load_blueprint(flow.to_dict())
    assert info.value.problems == loaded.value.problems
    assert {p.code for p in info.value.problems} >= {
        "INVALID_VALUE",
        "UNKNOWN_EDGE_TARGET",
        "INVALID_EXPRESSION",
    }


def test_reused_ids_are_refused_at_once() -> None:
    flow = Flow("f").node("a", "impl").batch("b", "worker", input_key="a")

    with pytest.raises(ValueError, match="'a' is already used"):
        flow.node("a", "impl")
    with pytest.raises(ValueError, match="'b' is already used"):
        flow.wait("b")
    with pytest.raises(ValueError, match="'b_scatter' is already used"):
        flow.node("b_scatter", "impl")


def test_to_dict_returns_fresh_copies() -> None:
    params = {"nested": {"x": 1}}
    flow = Flow("f").node("a", "impl", params=params)
    params["nested"]["x"] = 2
    first = flow.to_dict()
    first["nodes"][0]["params"]["nested"]["x"] = 99

    assert flow.to_dict()["nodes"][0]["params"] == {"nested": {"x": 1}}


def test_metadata_accepts_snake_case_and_free_keys() -> None:
    flow = (
        Flow("f")
        .node("a", "impl")
        .node("b", "impl")
        .edge("a", "b")
        .edge("b", "a")
        .metadata(version="3", cycle_entry_points=("a",), owner="team")
    )

    assert flow.to_dict()["metadata"] == {
        "version": "3",
        "cycleEntryPoints": ["a"],
        "owner": "team",
    }
    bp = flow.to_blueprint()
    assert bp.version == "3"
    assert bp.metadata.cycle_entry_points == ("a",)


def test_empty_flow_is_a_valid_blueprint() -> None:
    bp = Flow("empty").to_blueprint()

    assert bp == load_blueprint({"id": "empty", "nodes": []})
    assert Flow("empty").to_dict() == {"id": "empty", "nodes": [], "edges": []}


# ---------------------------------------------------------------------- sleep, wait, webhook


@pytest.mark.parametrize(
    ("duration", "expected"),
    [(250, 250), ("10s", "10s"), (timedelta(seconds=1.5), 1500.0)],
)
def test_sleep_node(duration: Any, expected: Any) -> None:
    flow = Flow("f").sleep("pause", duration)

    assert flow.to_dict()["nodes"] == [
        {"id": "pause", "uses": "sleep", "params": {"duration": expected}}
    ]
    assert flow.to_blueprint().node("pause").uses == "sleep"


def test_invalid_sleep_duration_is_a_param_problem() -> None:
    with pytest.raises(BlueprintError) as info:
        Flow("f").sleep("pause", "ten seconds").to_blueprint()
    assert [(p.path, p.code) for p in info.value.problems] == [
        ("nodes[0].params.duration", "INVALID_PARAM")
    ]


def test_wait_and_webhook_nodes() -> None:
    flow = Flow("f").wait("w", inputs="x").webhook("hook")

    assert flow.to_dict()["nodes"] == [
        {"id": "w", "uses": "wait", "inputs": "x"},
        {"id": "hook", "uses": "webhook"},
    ]


async def test_sleep_then_wait_runs_to_awaiting_and_resumes() -> None:
    flow = Flow("f").node("a", fetch).sleep("pause", "1ms").wait("w").node("b", notify)
    flow.edge("a", "pause").edge("pause", "w").edge("w", "b")
    runtime = FlowRuntime(registry=flow.registry())
    bp = flow.to_blueprint()

    first = await runtime.run(bp)
    assert first.status == "awaiting"
    assert first.outputs["pause"] == first.outputs["a"]

    done = await runtime.resume(bp, first.serialized_context, output={"ok": True})
    assert done.status == "completed"
    assert done.outputs["b"] == {"ok": True}


def test_subflow_node() -> None:
    flow = Flow("parent").subflow(
        "child", "child-bp", inputs={"x": "a"}, outputs={"y": "z"}, config={"fallback": "c"}
    )
    flow.node("c", "impl")

    assert flow.to_dict()["nodes"][0] == {
        "id": "child",
        "uses": "subflow",
        "params": {"blueprintId": "child-bp", "inputs": {"x": "a"}, "outputs": {"y": "z"}},
        "config": {"fallback": "c"},
    }
    assert flow.to_blueprint().node("child").params["blueprintId"] == "child-bp"
