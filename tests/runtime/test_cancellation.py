"""SPEC 4.5: cancelling a run by token or by cancelling the awaiting task."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

from flowcraft_core import CancellationToken

from .support import Timer, bp, edge, make_runtime, node, of_type, started, wait_until


def build(log: list[str]) -> dict[str, Any]:
    async def commit(ctx: Any) -> dict[str, Any]:
        await ctx.context.set("committed", True)
        log.append("commit done")
        return {"output": "A"}

    async def slow(ctx: Any) -> dict[str, Any]:
        await ctx.context.set("slow_wrote", True)
        log.append("slow started")
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            log.append("slow cancelled")
            raise
        log.append("slow side effect")
        return {"output": "B"}

    async def never(ctx: Any) -> None:
        log.append(f"{ctx.node_id} ran")

    return {"commit": commit, "slow": slow, "never": never}


BLUEPRINT = bp(
    [node("A", "commit"), node("B", "slow"), node("C", "never"), node("D", "never")],
    [edge("A", "B"), edge("B", "C"), edge("A", "D", condition="false")],
)


async def test_token_cancel_mid_run_keeps_committed_context_and_stops_the_run() -> None:
    log: list[str] = []
    runtime, bus = make_runtime(build(log))
    token = CancellationToken()
    task = asyncio.ensure_future(runtime.run(BLUEPRINT, {"initial": 1}, signal=token))
    await wait_until(lambda: "slow started" in log)
    with Timer() as timer:
        token.cancel()
        result = await task

    assert timer.elapsed < 2
    assert result.status == "cancelled"
    assert log == ["commit done", "slow started", "slow cancelled"]
    assert result.context["committed"] is True
    assert result.context["initial"] == 1
    assert result.context["_outputs.A"] == "A"
    assert "slow_wrote" not in result.context
    assert "_outputs.B" not in result.context
    assert "C" not in started(bus)
    finishes = of_type(bus, "workflow:finish")
    assert [f.status for f in finishes] == ["cancelled"]
    assert bus.events[-1].type == "workflow:finish"
    await asyncio.sleep(0.05)
    assert "slow side effect" not in log


async def test_cancelled_before_start_runs_nothing() -> None:
    log: list[str] = []
    runtime, bus = make_runtime(build(log))
    token = CancellationToken()
    token.cancel()
    result = await runtime.run(BLUEPRINT, signal=token)
    assert result.status == "cancelled"
    assert log == []
    assert of_type(bus, "node:start") == []
    assert [e.type for e in bus.events] == ["workflow:start", "workflow:finish"]


async def test_cancelling_the_awaiting_task_propagates_cancelled_error() -> None:
    log: list[str] = []
    runtime, bus = make_runtime(build(log))
    task = asyncio.ensure_future(runtime.run(BLUEPRINT))
    await wait_until(lambda: "slow started" in log)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert log == ["commit done", "slow started", "slow cancelled"]
    finishes = of_type(bus, "workflow:finish")
    assert [f.status for f in finishes] == ["cancelled"]
    assert "C" not in started(bus)


async def test_cancel_ends_a_retry_delay() -> None:
    attempts: list[int] = []

    async def fails(ctx: Any) -> None:
        attempts.append(ctx.attempt)
        raise ValueError("again")

    runtime, _ = make_runtime({"fails": fails})
    token = CancellationToken()
    blueprint = bp([node("n", "fails", config={"maxRetries": 3, "retryDelay": 10_000})])
    task = asyncio.ensure_future(runtime.run(blueprint, signal=token))
    await wait_until(lambda: attempts == [1])
    await asyncio.sleep(0.05)
    with Timer() as timer:
        token.cancel()
        result = await task
    assert timer.elapsed < 2
    assert result.status == "cancelled"
    assert attempts == [1]


async def test_cancel_sets_the_signal_seen_by_a_thread_and_abandons_it() -> None:
    report: dict[str, Any] = {}
    entered = threading.Event()
    done = threading.Event()

    def blocking(ctx: Any) -> dict[str, Any]:
        try:
            entered.set()
            deadline = time.monotonic() + 3
            while not ctx.signal.cancelled and time.monotonic() < deadline:
                time.sleep(0.005)
            report["reason"] = ctx.signal.reason
            try:
                ctx.context.sync.set("late", 1)
            except Exception as exc:
                report["write"] = type(exc).__name__
            return {"output": "late"}
        finally:
            done.set()

    runtime, _ = make_runtime({"b": blocking})
    token = CancellationToken()
    task = asyncio.ensure_future(runtime.run(bp([node("n", "b")]), signal=token))
    await asyncio.to_thread(entered.wait, 5)
    token.cancel()
    result = await task
    await asyncio.to_thread(done.wait, 5)
    assert result.status == "cancelled"
    assert report == {"reason": "cancelled", "write": "NodeCancelledError"}
    assert "late" not in result.context
    assert "_outputs.n" not in result.context


async def test_errors_recorded_before_cancellation_are_kept() -> None:
    started_slow = asyncio.Event()

    async def fails(ctx: Any) -> None:
        raise ValueError("early failure")

    async def slow(ctx: Any) -> None:
        started_slow.set()
        await asyncio.sleep(5)

    runtime, _ = make_runtime({"fails": fails, "slow": slow})
    token = CancellationToken()
    blueprint = bp([node("bad", "fails"), node("slow", "slow")])
    task = asyncio.ensure_future(runtime.run(blueprint, signal=token))
    await started_slow.wait()
    await asyncio.sleep(0.02)
    token.cancel()
    result = await task
    assert result.status == "cancelled"
    assert [(r.node_id, r.message) for r in result.errors] == [("bad", "early failure")]


async def test_cancel_from_another_thread() -> None:
    log: list[str] = []
    runtime, _ = make_runtime(build(log))
    token = CancellationToken()
    task = asyncio.ensure_future(runtime.run(BLUEPRINT, signal=token))
    await wait_until(lambda: "slow started" in log)
    await asyncio.to_thread(token.cancel)
    result = await asyncio.wait_for(task, 2)
    assert result.status == "cancelled"
    assert "slow cancelled" in log


async def test_exceptions_raised_while_cancelled_count_as_cancellation() -> None:
    entered = asyncio.Event()

    async def messy(ctx: Any) -> None:
        entered.set()
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            raise RuntimeError("cleanup failed") from None

    runtime, bus = make_runtime({"messy": messy})
    token = CancellationToken()
    blueprint = bp([node("n", "messy", config={"maxRetries": 3})])
    task = asyncio.ensure_future(runtime.run(blueprint, signal=token))
    await entered.wait()
    token.cancel()
    result = await task
    assert result.status == "cancelled"
    assert result.errors == []
    assert of_type(bus, "node:retry") == []
    assert of_type(bus, "node:error") == []


async def test_events_already_queued_are_delivered_when_a_run_is_cancelled() -> None:
    token = CancellationToken()

    class CancellingBus:
        """An async bus whose consumer cancels the run on seeing `a` finish."""

        def __init__(self) -> None:
            self.events: list[Any] = []

        async def emit(self, event: Any) -> None:
            await asyncio.sleep(0.001)
            self.events.append(event)
            if event.type == "node:finish" and event.node_id == "a":
                token.cancel()

    async def quick(ctx: Any) -> dict[str, Any]:
        return {"output": ctx.node_id}

    bus = CancellingBus()
    runtime, _ = make_runtime({"quick": quick}, event_bus=bus)
    blueprint = bp([node("a", "quick"), node("b", "quick")], [edge("a", "b")])
    result = await runtime.run(blueprint, signal=token)

    assert result.status == "cancelled"
    assert result.context["_outputs.a"] == "a"  # committed before the cancel
    delivered = [(e.type, getattr(e, "key", None)) for e in bus.events]
    # The commit of `a` happened, so its events (queued before the cancel) reach the bus.
    assert ("context:change", "_outputs.a") in delivered, delivered
    assert ("edge:evaluate", None) in delivered, delivered
    assert delivered[-1] == ("workflow:finish", None)
    assert [t for t, _ in delivered].count("workflow:finish") == 1
