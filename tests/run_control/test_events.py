"""Named events (`wait` with `params.event`, `send_event`): in-process, through LocalCluster,
and on Redis (by run id and by correlation key, before and after the wait starts; the CLI)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import control_nodes as nodes
import pytest
from bullmq_processes import adapter
from control_nodes import e, n, registry

from flowcraft_core import (
    BlueprintError,
    FlowRuntime,
    RunNotAwaitingError,
    RunNotFoundError,
    load_blueprint,
)
from flowcraft_core.cli import main
from flowcraft_core.distributed import LocalCluster

PAID = {"amount": 42, "currency": "EUR"}
#: a -> w (waits on payment.received) -> b;  a -> s (waits on shipped) (a second wait)
ORDER = {
    "id": "order",
    "nodes": [
        n("a"),
        n("w", "wait", params={"event": "payment.received"}),
        n("b"),
        n("s", "wait", params={"event": "shipped"}),
    ],
    "edges": [e("a", "w"), e("w", "b"), e("a", "s")],
}
#: a -> g (a gate) -> w (waits on payment.received) -> b
GATED_ORDER = {
    "id": "gated-order",
    "nodes": [n("a"), n("g", "gate"), n("w", "wait", params={"event": "payment.received"}), n("b")],
    "edges": [e("a", "g"), e("g", "w"), e("w", "b")],
}
ALL = [ORDER, GATED_ORDER]


def test_the_event_parameter_is_checked_when_the_blueprint_loads() -> None:
    bad = {"id": "x", "nodes": [n("w", "wait", params={"event": ""})], "edges": []}
    with pytest.raises(BlueprintError, match=r"params\.event"):
        load_blueprint(bad)
    with pytest.raises(BlueprintError, match="unknown parameter"):
        load_blueprint({"id": "x", "nodes": [n("w", "wait", params={"evnt": "a"})], "edges": []})


async def test_in_process() -> None:
    runtime = FlowRuntime(registry=registry, blueprints=ALL)
    waiting = await runtime.run("order")
    assert waiting.status == "awaiting"
    details = waiting.context["_awaitingDetails"]["w"]
    assert (details["reason"], details["event"]) == ("event", "payment.received")
    with pytest.raises(ValueError, match="no wait node"):
        await runtime.send_event("order", waiting.serialized_context, "refund.issued")
    paid = await runtime.send_event("order", waiting.serialized_context, "payment.received", PAID)
    assert paid.status == "awaiting"  # s still waits on "shipped"
    assert paid.context["_outputs.w"] == PAID and paid.context["_outputs.b"] == f"b:{PAID}"
    with pytest.raises(RunNotAwaitingError):  # w no longer waits
        await runtime.send_event("order", paid.serialized_context, "payment.received", PAID)
    done = await runtime.send_event("order", paid.serialized_context, "shipped", "parcel 7")
    assert done.status == "completed" and done.context["_outputs.s"] == "parcel 7"


async def test_local_cluster_keeps_an_early_event() -> None:
    cluster = LocalCluster(registry=registry, blueprints=ALL)
    run_id = await cluster.start_run("order")
    assert await cluster.send_event(run_id, "payment.received", PAID) == "buffered"
    await cluster.drain()
    result = await cluster.result(run_id)
    assert result.status == "awaiting" and result.context["_awaitingNodeIds"] == ["s"]
    assert result.context["_outputs.b"] == f"b:{PAID}"
    assert await cluster.send_event(run_id, "shipped", 1) == "resumed"
    await cluster.drain()
    local = await FlowRuntime(registry=registry, blueprints=ALL).run("order", run_id=run_id)
    local = await FlowRuntime(registry=registry, blueprints=ALL).send_event(
        "order", local.serialized_context, "payment.received", PAID
    )
    local = await FlowRuntime(registry=registry, blueprints=ALL).send_event(
        "order", local.serialized_context, "shipped", 1
    )
    final = await cluster.result(run_id)
    assert final.status == local.status == "completed"
    assert final.context == {k: v for k, v in local.context.items() if k != "_runState"}


async def test_on_redis_by_correlation_key_before_and_after_the_wait(
    redis_url: str, prefix: str, tmp_path: Path
) -> None:
    nodes.reset()
    async with adapter(redis_url, prefix, blueprints=ALL, registry=registry) as a:
        run_id = await a.start_run("gated-order", idempotency_key="order-42")
        await nodes.started.setdefault("g", asyncio.Event()).wait()
        # Before the run reaches its wait: kept, delivered when the wait starts.
        assert await a.send_event("order-42", "payment.received", PAID) == "buffered"
        nodes.gates.setdefault("g", asyncio.Event()).set()
        result = await a.wait_for_result(run_id, timeout_s=20)
        assert result.status == "completed" and result.context["_outputs.w"] == PAID

        # After the wait started: resumes it (by run id), then the CLI.
        other = await a.start_run("order")
        assert (await a.wait_for_result(other, timeout_s=20)).status == "awaiting"
        assert await a.send_event(other, "payment.received", PAID) == "resumed"
        bp_dir = tmp_path / "bps"
        bp_dir.mkdir()
        for doc in ALL:
            (bp_dir / f"{doc['id']}.json").write_text(json.dumps(doc), encoding="utf-8")
        argv = ["send-event", other, "shipped", "--payload", '"parcel 7"', "--redis", redis_url,
                "--prefix", prefix, "--blueprints", str(bp_dir)]  # fmt: skip
        assert await asyncio.to_thread(main, argv) == 0
        done = await a.wait_for_result(other, timeout_s=20)
        assert done.status == "completed" and done.context["_outputs.s"] == "parcel 7"

        with pytest.raises(RunNotAwaitingError):
            await a.send_event(other, "shipped", 1)  # finished
        with pytest.raises(ValueError, match="no wait node"):
            await a.send_event("order-42", "nope", 1)
        with pytest.raises(RunNotFoundError):
            await a.send_event("no-such-key", "shipped", 1)
    nodes.reset()


def _config_spelling(doc: dict[str, Any]) -> dict[str, Any]:
    """The same blueprint with each wait's event written as `config.event` (issue 8)."""
    nodes_ = []
    for node in doc["nodes"]:
        event = node.get("params", {}).get("event")
        if event is None:
            nodes_.append(node)
        else:
            nodes_.append({**node, "params": {}, "config": {"event": event}})
    return {**doc, "id": doc["id"] + "-config", "nodes": nodes_}


async def test_config_event_is_the_same_named_event_in_process_and_distributed() -> None:
    doc = _config_spelling(ORDER)
    assert all("event" not in node.get("params", {}) for node in doc["nodes"])
    runtime = FlowRuntime(registry=registry, blueprints=[doc])
    waiting = await runtime.run(doc["id"])
    assert waiting.context["_awaitingDetails"]["w"]["event"] == "payment.received"
    paid = await runtime.send_event(doc["id"], waiting.serialized_context, "payment.received", 1)
    done = await runtime.send_event(doc["id"], paid.serialized_context, "shipped", 2)
    cluster = LocalCluster(registry=registry, blueprints=[doc])
    run_id = await cluster.start_run(doc["id"])
    assert await cluster.send_event(run_id, "payment.received", 1) == "buffered"
    await cluster.drain()
    assert await cluster.send_event(run_id, "shipped", 2) == "resumed"
    await cluster.drain()
    final = await cluster.result(run_id)
    assert done.status == final.status == "completed"
    assert final.context["_outputs.w"] == done.context["_outputs.w"] == 1


def test_config_event_is_refused_off_wait_nodes_and_when_it_contradicts_params() -> None:
    off_wait = {"id": "x", "nodes": [n("a", config={"event": "e"})], "edges": []}
    with pytest.raises(BlueprintError, match=r"nodes\[0\]\.config\.event"):
        load_blueprint(off_wait)
    both = {"event": "e"}
    differ = {
        "id": "x",
        "nodes": [n("w", "wait", params={"event": "f"}, config=both)],
        "edges": [],
    }
    with pytest.raises(BlueprintError, match="differ"):
        load_blueprint(differ)
    same = {"id": "x", "nodes": [n("w", "wait", params={"event": "e"}, config=both)], "edges": []}
    load_blueprint(same)
