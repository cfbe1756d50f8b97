"""`retry_mode="queue"` (SPEC 9.5): BullMQ runs the retries, with `attempts = maxRetries` and
the node's backoff; attempt numbers, `node:retry`, timeouts, fallbacks and outcomes are those of
the in-process runtime."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from distributed.test_memory_parity import CASES, comparable, e, make_registry, n
from test_sleep_resume_adapter import adapter

from flowcraft_core import FlowRuntime, InMemoryEventBus, NodeRegistry


def registry_with_probes(calls: list[tuple[str, int, float]]) -> NodeRegistry:
    """The parity registry plus nodes that record (node id, attempt, time) of every call."""
    registry = make_registry()

    @registry.node("third_time")
    async def third_time(ctx: Any) -> dict[str, Any]:
        calls.append((ctx.node_id, ctx.attempt, time.monotonic()))
        if ctx.attempt < 3:
            raise RuntimeError(f"attempt {ctx.attempt} failed")
        return {"output": ctx.attempt}

    @registry.node("always")
    async def always(ctx: Any) -> None:
        calls.append((ctx.node_id, ctx.attempt, time.monotonic()))
        raise ValueError(f"no luck on attempt {ctx.attempt}")

    @registry.node("slow")
    async def slow(ctx: Any) -> None:
        calls.append((ctx.node_id, ctx.attempt, time.monotonic()))
        await asyncio.sleep(5)

    return registry


RETRIES = {
    "id": "retries",
    "nodes": [
        n("t", "third_time", config={"maxRetries": 3, "retryDelay": 100, "backoff": "exponential"}),
        n("f", "always", config={"maxRetries": 2, "retryDelay": 50, "fallback": "fb"}),
        n("fb", "inc"),
        n("x", "always", config={"maxRetries": 2}),
        n("s", "slow", config={"maxRetries": 2, "timeout": 50}),
        n("end", "sum"),
    ],
    "edges": [e("t", "f"), e("f", "end")],
}


def events(bus: InMemoryEventBus, run_id: str) -> list[tuple[Any, ...]]:
    """Node events, in a comparable form (attempts and delays of node:retry included)."""
    out = []
    for event in bus.events:
        if getattr(event, "run_id", None) != run_id or not event.type.startswith("node:"):
            continue
        out.append(
            (
                event.type,
                event.node_id,
                getattr(event, "attempt", None),
                getattr(event, "delay_ms", None),
            )
        )
    return sorted(out, key=repr)


@pytest.mark.parametrize("name", sorted(CASES))
async def test_same_result_as_in_process(name: str, redis_url: str, prefix: str) -> None:
    blueprint, context = CASES[name]
    local = await FlowRuntime(registry=make_registry(), blueprints=[blueprint]).run(
        blueprint["id"], context, run_id="run1"
    )
    async with adapter(redis_url, prefix, [blueprint], retry_mode="queue") as a:
        run_id = await a.start_run(blueprint["id"], context, run_id="run1")
        result = await a.wait_for_result(run_id, timeout_s=20)
    assert comparable(result) == comparable(local)


async def test_attempts_delays_events_and_outcomes_match_in_process(
    redis_url: str, prefix: str
) -> None:
    local_calls: list[tuple[str, int, float]] = []
    local_bus = InMemoryEventBus()
    local = await FlowRuntime(
        registry=registry_with_probes(local_calls), blueprints=[RETRIES], event_bus=local_bus
    ).run("retries", run_id="r1")

    calls: list[tuple[str, int, float]] = []
    bus = InMemoryEventBus()
    registry = registry_with_probes(calls)
    async with adapter(
        redis_url, prefix, [RETRIES], registry=registry, retry_mode="queue", event_bus=bus
    ) as a:
        run_id = await a.start_run("retries", run_id="r1")
        result = await a.wait_for_result(run_id, timeout_s=20)
        job = await a._queue.getJob("r1-t-0")
        assert job.opts["attempts"] == 3
        assert job.opts["backoff"] == {"type": "exponential", "delay": 100}
        # BullMQ ran the retries: two failed attempts, then the third one completed.
        assert job.attemptsMade == 3 and job.failedReason.startswith("attempt 2 failed")
        timed_out = await a._queue.getJob("r1-s-0")  # its last attempt completes it (failed)
        assert (timed_out.attemptsMade, await timed_out.getState()) == (2, "completed")

    assert comparable(result) == comparable(local)
    assert result.status == "failed"  # x always fails; s times out
    assert {(e.node_id, e.type, e.attempts) for e in result.errors} == {
        ("x", "ValueError", 2),
        ("s", "NodeTimeoutError", 2),
    }
    assert result.context["_outputs.f"] == result.context["_outputs.fb"] == 4  # the stand-in
    assert sorted((c[0], c[1]) for c in calls) == sorted((c[0], c[1]) for c in local_calls)
    assert events(bus, "r1") == events(local_bus, "r1")
    # The queue waited between attempts of t: 100 ms, then 200 ms (exponential).
    times = [when for node_id, _, when in sorted(calls) if node_id == "t"]
    assert times[1] - times[0] >= 0.09 and times[2] - times[1] >= 0.19


ITEM_RETRIES = {
    "id": "item-retries",
    "nodes": [
        n(
            "s",
            "batch-scatter",
            inputs="items",
            params={
                "workerUsesKey": "third_time",
                "gatherNodeId": "g",
                "workerConfig": {"maxRetries": 3, "retryDelay": 100, "backoff": "exponential"},
            },
        ),
        n("g", "batch-gather"),
    ],
    "edges": [e("s", "g")],
}


async def test_batch_items_are_retried_by_the_queue_with_their_worker_config(
    redis_url: str, prefix: str
) -> None:
    """An item job gets its scatter's `workerConfig` as BullMQ options; BullMQ runs the
    retries, with the same attempts and events as in-process."""
    context = {"items": ["a", "b"]}
    local_calls: list[tuple[str, int, float]] = []
    local_bus = InMemoryEventBus()
    local = await FlowRuntime(
        registry=registry_with_probes(local_calls), blueprints=[ITEM_RETRIES], event_bus=local_bus
    ).run("item-retries", context, run_id="r1")

    calls: list[tuple[str, int, float]] = []
    bus = InMemoryEventBus()
    registry = registry_with_probes(calls)
    async with adapter(
        redis_url, prefix, [ITEM_RETRIES], registry=registry, retry_mode="queue", event_bus=bus
    ) as a:
        run_id = await a.start_run("item-retries", context, run_id="r1")
        result = await a.wait_for_result(run_id, timeout_s=20)
        job = await a._queue.getJob("r1-s~5b1~5d-0")
        assert job.opts["attempts"] == 3
        assert job.opts["backoff"] == {"type": "exponential", "delay": 100}
        assert job.attemptsMade == 3 and job.failedReason.startswith("attempt 2 failed")

    assert comparable(result) == comparable(local)
    assert result.context["_outputs.g"] == [3, 3]
    assert sorted((c[0], c[1]) for c in calls) == sorted((c[0], c[1]) for c in local_calls)
    assert events(bus, "r1") == events(local_bus, "r1")
    times = [when for node_id, _, when in sorted(calls) if node_id == "s[1]"]
    assert times[1] - times[0] >= 0.09 and times[2] - times[1] >= 0.19
