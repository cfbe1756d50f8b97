"""A worker that dies mid-job: BullMQ redelivers the job to another worker once its lock
expires, the node runs again, and only one completion counts; a job that stalls more often
than `max_stalled_count` fails its activation with WorkerLostError (SPEC 9.4), which blocks
what depends on it."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from adapter_support import adapter, e, n
from distributed.test_memory_parity import make_registry

from flowcraft_bullmq import BullMQAdapter
from flowcraft_core import InMemoryEventBus

FAST_RECOVERY: dict[str, Any] = {"lock_duration_s": 1, "stalled_interval_s": 0.5}


def _registry(calls: list[str], started: asyncio.Event) -> Any:
    registry = make_registry()

    @registry.node("slow")
    async def slow(ctx: Any) -> dict[str, Any]:
        calls.append(ctx.activation_id)
        started.set()
        await asyncio.sleep(0.5)
        return {"output": "done"}

    return registry


BLUEPRINT = {
    "id": "crashy",
    "nodes": [n("a", "inc"), n("s", "slow"), n("b", "inc")],
    "edges": [e("a", "s"), e("s", "b")],
}


async def _kill_mid_job(
    redis_url: str, prefix: str, registry: Any, started: asyncio.Event, **options: Any
) -> str:
    """Start a run, then stop the worker abruptly while `s` runs (its job stays active)."""
    doomed = BullMQAdapter(
        connection=redis_url, registry=registry, blueprints=[BLUEPRINT], prefix=prefix, **options
    )
    try:
        await doomed.start()
        run_id = await doomed.start_run("crashy")
        await asyncio.wait_for(started.wait(), 10)
    finally:
        closing = asyncio.ensure_future(doomed.close())
        doomed.abort_close()  # like a SIGKILL: in-flight activations are cancelled, not acked
        await closing
    return run_id


async def test_job_of_a_dead_worker_is_redelivered_and_counted_once(
    redis_url: str, prefix: str
) -> None:
    calls: list[str] = []
    started = asyncio.Event()
    registry = _registry(calls, started)
    run_id = await _kill_mid_job(redis_url, prefix, registry, started, **FAST_RECOVERY)
    assert len(calls) == 1
    async with adapter(
        redis_url, prefix, registry=registry, blueprints=[BLUEPRINT], **FAST_RECOVERY
    ) as survivor:
        result = await survivor.wait_for_result(run_id, timeout_s=15)
    assert result.status == "completed"
    assert calls == [f"{run_id}-s-0"] * 2  # at-least-once: the node body ran again
    assert (result.context["_outputs.s"], result.context["_outputs.b"]) == ("done", 1)
    assert not result.errors


async def test_job_that_stalls_too_often_fails_its_activation(redis_url: str, prefix: str) -> None:
    calls: list[str] = []
    started = asyncio.Event()
    registry = _registry(calls, started)
    options = {**FAST_RECOVERY, "max_stalled_count": 0}
    run_id = await _kill_mid_job(redis_url, prefix, registry, started, **options)
    bus = InMemoryEventBus()
    async with adapter(
        redis_url, prefix, registry=registry, blueprints=[BLUEPRINT], event_bus=bus, **options
    ) as survivor:
        result = await survivor.wait_for_result(run_id, timeout_s=15)
    assert result.status == "failed"
    assert [(err.node_id, err.type) for err in result.errors] == [("s", "WorkerLostError")]
    assert "stalled more than 0 times" in result.errors[0].message
    assert len(calls) == 1
    # Only the activation failed: routing went on and blocked its successor, as in-process.
    skipped = [(ev.node_id, ev.reason) for ev in bus.of_type("node:skipped")]
    assert skipped == [("b", "upstream_failed")]
    assert [ev.node_id for ev in bus.of_type("node:error")] == ["s"]


async def test_infrastructure_errors_are_retried_then_fail_the_run(
    redis_url: str, prefix: str, caplog: Any
) -> None:
    """An exception out of the job handler (not a node failure) is retried by BullMQ with
    backoff; the last attempt fails the run, loudly."""
    registry = _registry([], asyncio.Event())
    async with adapter(redis_url, prefix, registry=registry, blueprints=[BLUEPRINT]) as a:
        assert a._worker is not None
        handle = a._worker.handle
        attempts: list[str] = []

        async def flaky_redis(job: Any) -> None:
            if job.node_id == "s":
                attempts.append(job.node_id)
                raise ConnectionError("redis went away")
            await handle(job)

        a._worker.handle = flaky_redis  # type: ignore[method-assign]
        run_id = await a.start_run("crashy")
        result = await a.wait_for_result(run_id, timeout_s=15)
    assert result.status == "failed"
    assert [(err.node_id, err.type, err.message) for err in result.errors] == [
        ("s", "ConnectionError", "redis went away")
    ]
    assert attempts == ["s"] * 3
    messages = [r.getMessage() for r in caplog.records if r.name == "flowcraft_bullmq.adapter"]
    assert sum("BullMQ will retry it" in m for m in messages) == 2
    assert sum("failing the run" in m for m in messages) == 1


class Gauge:
    """A dependency the item node updates: calls per activation, items running now, peak."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.running = 0
        self.peak = 0


GAUGED_BATCH: dict[str, Any] = {
    "id": "gauged",
    "nodes": [
        n(
            "s",
            "batch-scatter",
            inputs="items",
            params={"workerUsesKey": "gauged", "gatherNodeId": "g", "chunkSize": 3},
        ),
        n("g", "batch-gather", params={"outputKey": "out"}),
    ],
    "edges": [e("s", "g")],
}


async def test_a_redelivered_item_job_changes_nothing_and_chunk_size_holds(
    redis_url: str, prefix: str
) -> None:
    """Every item job is handled twice (BullMQ redelivery after the first completed): the
    second replays the recorded next item, so no item runs twice, none is counted twice, and
    never more than `chunkSize` items run at once (concurrency 10)."""
    registry = make_registry()

    @registry.node("gauged")
    async def gauged(ctx: Any) -> dict[str, Any]:
        gauge: Gauge = ctx.dependencies["gauge"]
        gauge.calls[ctx.activation_id] += 1
        gauge.running += 1
        gauge.peak = max(gauge.peak, gauge.running)
        try:
            await asyncio.sleep(0.3)
        finally:
            gauge.running -= 1
        return {"output": ctx.input * 2}

    gauge = Gauge()
    handled: Counter[str] = Counter()
    async with adapter(
        redis_url,
        prefix,
        registry=registry,
        blueprints=[GAUGED_BATCH],
        dependencies={"gauge": gauge},
        concurrency=10,
    ) as a:
        assert a._worker is not None
        handle = a._worker.handle

        async def twice(job: Any, **options: Any) -> None:
            await handle(job, **options)
            if job.node_id.startswith("s["):
                handled[job.node_id] += 1
                await handle(job, **options)  # delivered again

        a._worker.handle = twice  # type: ignore[method-assign]
        items = list(range(8))
        run_id = await a.start_run("gauged", {"items": items})
        result = await a.wait_for_result(run_id, timeout_s=30)
    assert result.status == "completed", result.errors
    assert result.context["out"] == [2 * i for i in items]
    assert handled == {f"s[{i}]": 1 for i in items}
    assert gauge.calls == {f"{run_id}-s~5b{i}~5d-0": 1 for i in items}
    assert gauge.peak == 3
