"""SPEC 1.2: the order-review example, in its JSON and YAML forms."""

from __future__ import annotations

import json
from typing import Any

import pytest
from builtins_support import ENGINE_AWAIT_KEYS, assert_not_awaiting, make_runtime, of_type, trace
from spec_examples import ORDER_REVIEW_JSON, ORDER_REVIEW_YAML

from flowcraft_core import Blueprint, load_blueprint

FORMS = {"json": ORDER_REVIEW_JSON, "yaml": ORDER_REVIEW_YAML}


def order(score: float) -> dict[str, Any]:
    return {"id": "o-1", "score": score, "customer": {"email": "ann@example.com"}}


class Orders:
    """Implementations of the example's `orders.*` keys; every call is recorded."""

    def __init__(self, *, fetch_fails: bool = False) -> None:
        self.fetch_fails = fetch_fails
        self.calls: list[tuple[str, Any]] = []
        self.fetch_attempts: list[int] = []

    def impls(self) -> dict[str, Any]:
        return {
            "orders.fetch": self.fetch,
            "orders.fetch_cached": self.fetch_cached,
            "orders.score": self.score,
            "orders.approve": self.approve,
            "orders.reject": self.reject,
            "orders.notify": self.notify,
        }

    async def fetch(self, ctx: Any) -> dict[str, Any]:
        self.fetch_attempts.append(ctx.attempt)
        assert ctx.params == {"source": "api"}
        if self.fetch_fails:
            raise ConnectionError(f"api down (attempt {ctx.attempt})")
        self.calls.append(("fetch", ctx.input))
        return {"output": order(await ctx.context.get("order_score"))}

    async def fetch_cached(self, ctx: Any) -> dict[str, Any]:
        self.calls.append(("fetch_cached", ctx.input))
        return {"output": {**order(0.9), "cached": True}}

    async def score(self, ctx: Any) -> dict[str, Any]:
        self.calls.append(("score", ctx.input))
        return {
            "output": {"score": ctx.input["order"]["score"], "threshold": ctx.input["threshold"]}
        }

    async def approve(self, ctx: Any) -> dict[str, Any]:
        self.calls.append(("approve", ctx.input))
        return {"output": {"approved": True, "basis": ctx.input}}

    async def reject(self, ctx: Any) -> dict[str, Any]:
        self.calls.append(("reject", ctx.input))
        return {"output": {"rejected": ctx.input}}

    async def notify(self, ctx: Any) -> dict[str, Any]:
        self.calls.append(("notify", ctx.input))
        return {"output": {"sent": ctx.input["status"]}}

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]


@pytest.fixture(params=sorted(FORMS))
def blueprint(request: pytest.FixtureRequest) -> Blueprint:
    return load_blueprint(FORMS[request.param])


def test_json_and_yaml_forms_are_the_same_blueprint() -> None:
    from_json = load_blueprint(ORDER_REVIEW_JSON)
    from_yaml = load_blueprint(ORDER_REVIEW_YAML)
    assert from_json.model_dump(by_alias=True) == from_yaml.model_dump(by_alias=True)
    assert from_json.model_dump(by_alias=True) == load_blueprint(
        json.loads(ORDER_REVIEW_JSON)
    ).model_dump(by_alias=True)


async def test_score_0_9_approves_and_notifies(blueprint: Blueprint) -> None:
    orders = Orders()
    runtime, bus = make_runtime(orders.impls())
    result = await runtime.run(blueprint, {"order_score": 0.9, "_threshold": 0.8}, run_id="r-09")

    assert result.status == "completed"
    assert result.errors == []
    assert result.run_id == "r-09"
    assert result.context["_executionId"] == "r-09"
    assert_not_awaiting(result)

    score_out = {"score": 0.9, "threshold": 0.8}
    approve_out = {"approved": True, "basis": score_out}
    assert orders.calls == [
        ("fetch", None),
        ("score", {"order": order(0.9), "threshold": 0.8}),
        ("approve", score_out),
        ("notify", {"status": "approved", "order": approve_out}),
    ]
    ctx = result.context
    assert ctx["_outputs.fetch"] == order(0.9)
    assert ctx["_outputs.score"] == score_out
    assert ctx["_outputs.approve"] == approve_out
    assert ctx["_inputs.notify"] == {"status": "approved", "order": approve_out}
    assert ctx["_outputs.notify"] == {"sent": "approved"}
    for absent in ("manual", "reject", "fetch_cached"):
        assert f"_outputs.{absent}" not in ctx

    assert trace(bus) == [
        ("node:start", "fetch", ()),
        ("node:finish", "fetch", ()),
        ("node:start", "score", ()),
        ("node:finish", "score", ()),
        ("node:skipped", "manual", (), "dead_path"),
        ("node:skipped", "reject", (), "dead_path"),
        ("node:start", "approve", ()),
        ("node:finish", "approve", ()),
        ("node:start", "notify", ()),
        ("node:finish", "notify", ()),
    ]
    finishes = of_type(bus, "workflow:finish")
    assert [(e.status, e.errors) for e in finishes] == [("completed", ())]


async def test_score_0_6_awaits_at_manual(blueprint: Blueprint) -> None:
    orders = Orders()
    runtime, bus = make_runtime(orders.impls())
    result = await runtime.run(blueprint, {"order_score": 0.6, "_threshold": 0.8}, run_id="r-06")

    assert result.status == "awaiting"
    assert result.errors == []
    assert orders.names() == ["fetch", "score"]
    ctx = result.context
    assert ctx["_awaitingNodeIds"] == ["manual"]
    assert ctx["_awaitingDetails"]["manual"]["reason"] == "external_event"
    assert ctx["_awaitingDetails"] == {"manual": {"reason": "external_event", "iteration": []}}
    assert "_runState" in ctx
    assert ctx["_executionId"] == "r-06"
    assert "_outputs.manual" not in ctx
    assert json.loads(result.serialized_context) == ctx

    awaiting = of_type(bus, "node:awaiting")
    assert [(e.node_id, e.iteration, e.details) for e in awaiting] == [
        ("manual", (), {"reason": "external_event", "iteration": []})
    ]
    assert trace(bus)[-2:] == [("node:start", "manual", ()), ("node:awaiting", "manual", ())]
    assert [e.status for e in of_type(bus, "workflow:finish")] == ["awaiting"]


async def test_score_0_6_resume_with_reject(blueprint: Blueprint) -> None:
    orders = Orders()
    runtime, bus = make_runtime(orders.impls())
    paused = await runtime.run(blueprint, {"order_score": 0.6, "_threshold": 0.8}, run_id="r-rej")
    assert paused.status == "awaiting"
    bus.clear()

    result = await runtime.resume(
        blueprint, paused.serialized_context, action="reject", output={"reviewer": "bob"}
    )

    assert result.status == "completed"
    assert result.errors == []
    assert result.run_id == "r-rej"
    assert result.context["_executionId"] == "r-rej"
    assert_not_awaiting(result)
    assert orders.names() == ["fetch", "score", "reject", "notify"]
    assert orders.calls[2:] == [
        ("reject", "ann@example.com"),
        ("notify", {"status": "rejected"}),
    ]
    ctx = result.context
    assert ctx["_outputs.manual"] == {"reviewer": "bob"}
    assert ctx["_outputs.reject"] == {"rejected": "ann@example.com"}
    assert ctx["_outputs.notify"] == {"sent": "rejected"}
    assert "_outputs.approve" not in ctx

    assert bus.events[0].type == "workflow:resume"
    assert bus.events[0].node_id == "manual"
    assert bus.events[-1].type == "workflow:finish"
    assert bus.events[-1].status == "completed"
    assert [e.type for e in bus.events].count("workflow:finish") == 1
    assert of_type(bus, "workflow:start") == []
    sequence = [
        (
            e.type,
            getattr(e, "node_id", None) or getattr(e, "key", None) or getattr(e, "target", None),
        )
        for e in bus.events
    ]
    assert sequence == [
        ("workflow:resume", "manual"),
        ("node:finish", "manual"),
        ("context:change", "_outputs.manual"),
        ("edge:evaluate", "approve"),
        ("edge:evaluate", "reject"),
        ("node:skipped", "approve"),
        ("node:start", "reject"),
        ("node:finish", "reject"),
        ("context:change", "_outputs.reject"),
        ("edge:evaluate", "notify"),
        ("node:start", "notify"),
        ("node:finish", "notify"),
        ("context:change", "_outputs.notify"),
        ("workflow:finish", None),
    ]
    edges = [(e.source, e.target, e.result) for e in of_type(bus, "edge:evaluate")]
    assert edges == [
        ("manual", "approve", False),
        ("manual", "reject", True),
        ("reject", "notify", True),
    ]
    assert trace(bus) == [
        ("node:finish", "manual", ()),
        ("node:skipped", "approve", (), "dead_path"),
        ("node:start", "reject", ()),
        ("node:finish", "reject", ()),
        ("node:start", "notify", ()),
        ("node:finish", "notify", ()),
    ]


async def test_score_0_6_resume_with_approve(blueprint: Blueprint) -> None:
    orders = Orders()
    runtime, _bus = make_runtime(orders.impls())
    paused = await runtime.run(blueprint, {"order_score": 0.6, "_threshold": 0.8}, run_id="r-app")

    result = await runtime.resume(
        blueprint, paused.serialized_context, node_id="manual", action="approve", output="ok"
    )

    assert result.status == "completed"
    assert result.run_id == "r-app"
    approve_out = {"approved": True, "basis": "ok"}
    assert orders.calls[2:] == [
        ("approve", "ok"),
        ("notify", {"status": "approved", "order": approve_out}),
    ]
    assert "_outputs.reject" not in result.context


async def test_three_fetch_failures_use_fetch_cached() -> None:
    blueprint = load_blueprint(ORDER_REVIEW_JSON)
    orders = Orders(fetch_fails=True)
    runtime, bus = make_runtime(orders.impls())
    result = await runtime.run(blueprint, {"order_score": 0.1, "_threshold": 0.8}, run_id="r-fb")

    assert orders.fetch_attempts == [1, 2, 3]
    assert result.status == "completed"
    assert result.errors == []
    cached = {**order(0.9), "cached": True}
    ctx = result.context
    assert ctx["_outputs.fetch_cached"] == cached
    assert ctx["_outputs.fetch"] == cached
    assert ctx["_catch_error"] == {
        "message": "api down (attempt 3)",
        "type": "ConnectionError",
        "nodeId": "fetch",
        "blueprintId": "order-review",
    }
    # The stand-in gets fetch's input; score reads the stand-in's output under `fetch`.
    assert orders.calls[0] == ("fetch_cached", None)
    assert orders.calls[1] == ("score", {"order": cached, "threshold": 0.8})
    assert orders.names() == ["fetch_cached", "score", "approve", "notify"]
    assert ctx["_outputs.notify"] == {"sent": "approved"}

    retries = of_type(bus, "node:retry")
    assert [(e.node_id, e.attempt, e.delay_ms) for e in retries] == [
        ("fetch", 1, 500),
        ("fetch", 2, 500),
    ]
    fallbacks = of_type(bus, "node:fallback")
    assert [(e.node_id, e.fallback, str(e.error)) for e in fallbacks] == [
        ("fetch", "fetch_cached", "api down (attempt 3)")
    ]
    assert trace(bus)[:4] == [
        ("node:start", "fetch", ()),
        ("node:start", "fetch_cached", ()),
        ("node:finish", "fetch_cached", ()),
        ("node:finish", "fetch", ()),
    ]
    assert of_type(bus, "node:error") == []
    assert not any(key in ctx for key in ENGINE_AWAIT_KEYS)
