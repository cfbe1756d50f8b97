"""SPEC 4.1-4.3 and 2.2: attempts, backoff delays, timeouts, error kinds, worker threads."""

from __future__ import annotations

import asyncio
import contextvars
import itertools
import threading
import time
from typing import Any

import pytest

from flowcraft_core import (
    FatalNodeError,
    NodeCancelledError,
    NodeTimeoutError,
    NonRetryableError,
)

from .support import Calls, Timer, bp, echo, edge, make_runtime, node, of_type, wait_until


def failing(calls: Calls, exc: BaseException, succeed_on: int | None = None) -> Any:
    """Raises `exc` on every attempt before `succeed_on` (never succeeds when None)."""

    async def impl(ctx: Any) -> dict[str, Any]:
        calls.add((ctx.node_id, ctx.attempt, time.perf_counter()))
        if succeed_on is not None and ctx.attempt >= succeed_on:
            return {"output": f"ok@{ctx.attempt}"}
        raise exc

    return impl


# --------------------------------------------------------------------------- attempts


@pytest.mark.parametrize("max_retries", [1, 2, 5])
async def test_max_retries_is_the_total_number_of_attempts(max_retries: int) -> None:
    calls = Calls()
    runtime, bus = make_runtime({"f": failing(calls, ValueError("boom"))})
    blueprint = bp([node("n", "f", config={"maxRetries": max_retries})])
    result = await runtime.run(blueprint)

    assert result.status == "failed"
    assert [attempt for _, attempt, _ in calls.log] == list(range(1, max_retries + 1))
    (record,) = result.errors
    assert (record.node_id, record.type, record.message) == ("n", "ValueError", "boom")
    assert record.attempts == max_retries
    retries = of_type(bus, "node:retry")
    assert [(e.node_id, e.attempt, e.delay_ms) for e in retries] == [
        ("n", k, 0) for k in range(1, max_retries)
    ]
    assert all(isinstance(e.error, ValueError) for e in retries)
    assert len(of_type(bus, "node:error")) == 1


async def test_attempt_that_succeeds_ends_the_retries() -> None:
    calls = Calls()
    runtime, bus = make_runtime({"f": failing(calls, ValueError("flaky"), succeed_on=3)})
    result = await runtime.run(bp([node("n", "f", config={"maxRetries": 5})]))
    assert result.status == "completed"
    assert result.errors == []
    assert [a for _, a, _ in calls.log] == [1, 2, 3]
    assert result.context["_outputs.n"] == "ok@3"
    assert [e.attempt for e in of_type(bus, "node:retry")] == [1, 2]
    assert of_type(bus, "node:error") == []


async def test_fixed_delay_is_really_waited_before_each_retry() -> None:
    calls = Calls()
    runtime, bus = make_runtime({"f": failing(calls, ValueError("x"), succeed_on=3)})
    config = {"maxRetries": 3, "retryDelay": 100}
    result = await runtime.run(bp([node("n", "f", config=config)]))
    assert result.status == "completed"
    times = [t for _, _, t in calls.log]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert all(0.09 <= gap < 1.0 for gap in gaps), gaps
    assert [e.delay_ms for e in of_type(bus, "node:retry")] == [100, 100]


async def test_exponential_delay_doubles() -> None:
    calls = Calls()
    runtime, bus = make_runtime({"f": failing(calls, ValueError("x"), succeed_on=4)})
    config = {"maxRetries": 4, "retryDelay": 60, "backoff": "exponential"}
    result = await runtime.run(bp([node("n", "f", config=config)]))
    assert result.status == "completed"
    assert [e.delay_ms for e in of_type(bus, "node:retry")] == [60, 120, 240]
    times = [t for _, _, t in calls.log]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    for gap, expected in zip(gaps, (0.06, 0.12, 0.24), strict=True):
        assert expected * 0.9 <= gap < expected + 0.5, gaps
    assert times[-1] - times[0] >= 0.4


async def test_non_retryable_error_stops_retries_but_fallback_still_runs() -> None:
    calls = Calls()

    async def backup(ctx: Any) -> dict[str, Any]:
        calls.add("backup")
        return {"output": "from-backup"}

    runtime, _ = make_runtime(
        {"f": failing(calls, NonRetryableError("no point")), "backup": backup}
    )
    config = {"maxRetries": 5, "retryDelay": 5000, "fallback": "backup"}
    with Timer() as timer:
        result = await runtime.run(bp([node("n", "f", config=config)]))
    assert timer.elapsed < 2
    assert result.status == "completed"
    assert [c[1] for c in calls.log if c != "backup"] == [1]
    assert calls.count("backup") == 1
    assert result.context["_outputs.n"] == "from-backup"


async def test_fatal_error_stops_retries_and_skips_every_fallback() -> None:
    calls = Calls()

    async def backup(ctx: Any) -> dict[str, Any]:
        calls.add("backup")
        return {"output": "from-backup"}

    runtime, bus = make_runtime({"f": failing(calls, FatalNodeError("dead")), "backup": backup})
    blueprint = bp(
        [
            node("n", "f", config={"maxRetries": 5, "fallback": "F"}),
            node("F", "backup"),
            node("m", "f", config={"maxRetries": 5, "fallback": "backup"}),
        ]
    )
    result = await runtime.run(blueprint)
    assert result.status == "failed"
    assert calls.count("backup") == 0
    assert sorted((r.node_id, r.type, r.message, r.attempts) for r in result.errors) == [
        ("m", "FatalNodeError", "dead", 1),
        ("n", "FatalNodeError", "dead", 1),
    ]
    assert of_type(bus, "node:fallback") == []
    assert all(r.fallback_error is None for r in result.errors)


@pytest.mark.parametrize(
    "bad",
    [42, "text", ["output"], {"output": 1, "extra": 2}, {"action": 3}],
)
async def test_invalid_result_fails_without_retry(bad: Any) -> None:
    calls = Calls()

    async def impl(ctx: Any) -> Any:
        calls.add(ctx.attempt)
        return bad

    runtime, _ = make_runtime({"f": impl})
    result = await runtime.run(bp([node("n", "f", config={"maxRetries": 3})]))
    assert result.status == "failed"
    assert calls.log == [1]
    (record,) = result.errors
    assert (record.type, record.attempts) == ("InvalidNodeResultError", 1)
    assert "'n'" in record.message


@pytest.mark.parametrize("value", [None, {}, {"output": None}, {"action": None}])
async def test_none_and_partial_mappings_are_valid_results(value: Any) -> None:
    async def impl(ctx: Any) -> Any:
        return value

    runtime, _ = make_runtime({"f": impl, "echo": echo})
    result = await runtime.run(bp([node("n", "f"), node("m")], [edge("n", "m")]))
    assert result.status == "completed"
    assert "_outputs.n" in result.context
    assert result.context["_outputs.n"] is None
    assert result.context["_outputs.m"] is None


# --------------------------------------------------------------------------- timeouts


async def test_timeout_cancels_an_async_attempt_and_is_retryable() -> None:
    seen: list[str] = []

    async def slow(ctx: Any) -> dict[str, Any]:
        seen.append(f"start{ctx.attempt}")
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            seen.append(f"cancelled{ctx.attempt}")
            raise
        seen.append("side effect")  # must never happen
        return {"output": "late"}

    runtime, bus = make_runtime({"slow": slow})
    config = {"maxRetries": 2, "timeout": 100}
    with Timer() as timer:
        result = await runtime.run(bp([node("n", "slow", config=config)]))

    assert timer.elapsed < 2
    assert seen == ["start1", "cancelled1", "start2", "cancelled2"]
    assert result.status == "failed"
    (record,) = result.errors
    assert (record.type, record.attempts) == ("NodeTimeoutError", 2)
    assert isinstance(record.exception, NodeTimeoutError)
    assert "'n'" in record.message
    (retry,) = of_type(bus, "node:retry")
    assert isinstance(retry.error, NodeTimeoutError)
    await asyncio.sleep(0.05)
    assert "side effect" not in seen


async def test_timed_out_attempt_is_followed_by_a_successful_retry() -> None:
    async def sometimes_slow(ctx: Any) -> dict[str, Any]:
        await ctx.context.set("attempt_write", ctx.attempt)
        if ctx.attempt == 1:
            await asyncio.sleep(5)
        return {"output": ctx.attempt}

    runtime, _ = make_runtime({"f": sometimes_slow})
    result = await runtime.run(bp([node("n", "f", config={"maxRetries": 2, "timeout": 80})]))
    assert result.status == "completed"
    assert result.context["_outputs.n"] == 2
    assert result.context["attempt_write"] == 2


async def test_blocking_node_over_its_timeout_is_abandoned() -> None:
    report: dict[str, Any] = {}
    finished = threading.Event()

    def blocking(ctx: Any) -> dict[str, Any]:
        try:
            ctx.context.sync.set("early", 1)
            deadline = time.monotonic() + 3
            while not ctx.signal.cancelled and time.monotonic() < deadline:
                time.sleep(0.005)
            report["cancelled"] = ctx.signal.cancelled
            report["reason"] = ctx.signal.reason
            for name, call in (
                ("set", lambda: ctx.context.sync.set("late", 1)),
                ("get", lambda: ctx.context.sync.get("early")),
                ("has", lambda: ctx.context.sync.has("early")),
            ):
                try:
                    call()
                except NodeCancelledError:
                    report[name] = "NodeCancelledError"
                except Exception as exc:  # pragma: no cover - reported below
                    report[name] = type(exc).__name__
                else:
                    report[name] = "no error"
            return {"output": "discarded"}
        finally:
            finished.set()

    runtime, bus = make_runtime({"blocking": blocking, "echo": echo})
    blueprint = bp(
        [node("n", "blocking", config={"timeout": 100}), node("after")], [edge("n", "after")]
    )
    with Timer() as timer:
        result = await runtime.run(blueprint)
    assert timer.elapsed < 2
    await asyncio.to_thread(finished.wait, 5)

    assert result.status == "failed"
    (record,) = result.errors
    assert (record.node_id, record.type) == ("n", "NodeTimeoutError")
    assert report == {
        "cancelled": True,
        "reason": "timeout",
        "set": "NodeCancelledError",
        "get": "NodeCancelledError",
        "has": "NodeCancelledError",
    }
    assert "early" not in result.context
    assert "late" not in result.context
    assert "_outputs.n" not in result.context
    assert "after" not in [e.node_id for e in of_type(bus, "node:start")]


async def test_abandoned_thread_result_does_not_replace_the_retry_result() -> None:
    release = threading.Event()
    done = threading.Event()

    def blocking(ctx: Any) -> dict[str, Any]:
        if ctx.attempt == 1:
            release.wait(3)
            done.set()
            return {"output": "first (late)"}
        return {"output": "second"}

    runtime, _ = make_runtime({"b": blocking})
    result = await runtime.run(bp([node("n", "b", config={"maxRetries": 2, "timeout": 80})]))
    release.set()
    await asyncio.to_thread(done.wait, 5)
    await asyncio.sleep(0.05)
    assert result.status == "completed"
    assert result.context["_outputs.n"] == "second"


async def test_timeout_does_not_apply_without_config() -> None:
    async def slowish(ctx: Any) -> dict[str, Any]:
        await asyncio.sleep(0.2)
        return {"output": "done"}

    runtime, _ = make_runtime({"f": slowish})
    result = await runtime.run(bp([node("n", "f")]))
    assert result.status == "completed"


# --------------------------------------------------------------------------- threads


async def test_blocking_node_runs_in_a_thread_while_the_loop_keeps_going() -> None:
    loop_thread = threading.get_ident()
    ticks: list[float] = []
    window: dict[str, Any] = {}

    def blocking(ctx: Any) -> dict[str, Any]:
        window["thread"] = threading.get_ident()
        window["start"] = time.perf_counter()
        time.sleep(0.3)
        window["end"] = time.perf_counter()
        ctx.context.sync.set("from_thread", ctx.context.sync.get("seed") + 1)
        return {"output": "slept"}

    async def ticker(ctx: Any) -> dict[str, Any]:
        await wait_until(lambda: "start" in window)
        for _ in range(10):
            ticks.append(time.perf_counter())
            await asyncio.sleep(0.01)
        return {"output": len(ticks)}

    runtime, _ = make_runtime({"blocking": blocking, "ticker": ticker})
    result = await runtime.run(bp([node("sync", "blocking"), node("async", "ticker")]), {"seed": 1})

    assert result.status == "completed"
    assert window["thread"] != loop_thread
    during = [t for t in ticks if window["start"] < t < window["end"]]
    assert len(during) >= 5, (ticks, window)
    assert result.context["from_thread"] == 2


async def test_sync_view_from_the_loop_thread_raises_runtime_error() -> None:
    report: dict[str, str] = {}

    async def misuse(ctx: Any) -> None:
        for name, call in (
            ("get", lambda: ctx.context.sync.get("k")),
            ("set", lambda: ctx.context.sync.set("k", 1)),
        ):
            try:
                call()
            except RuntimeError:
                report[name] = "RuntimeError"
            else:
                report[name] = "no error"

    runtime, _ = make_runtime({"misuse": misuse})
    result = await runtime.run(bp([node("n", "misuse")]))
    assert result.status == "completed"
    assert report == {"get": "RuntimeError", "set": "RuntimeError"}
    assert "k" not in result.context


async def test_blocking_node_sees_the_callers_contextvars() -> None:
    var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="unset")
    token = var.set("req-42")
    try:

        def blocking(ctx: Any) -> dict[str, Any]:
            return {"output": var.get()}

        runtime, _ = make_runtime({"b": blocking})
        result = await runtime.run(bp([node("n", "b")]))
    finally:
        var.reset(token)
    assert result.context["_outputs.n"] == "req-42"


async def test_cancelled_error_raised_by_node_code_is_an_ordinary_failure() -> None:
    calls = Calls()

    async def raises_cancelled(ctx: Any) -> None:
        calls.add(ctx.attempt)
        raise asyncio.CancelledError

    runtime, _ = make_runtime({"f": raises_cancelled, "echo": echo})
    blueprint = bp([node("n", "f", config={"maxRetries": 2}), node("other")])
    result = await runtime.run(blueprint)
    assert result.status == "failed"
    assert calls.log == [1, 2]
    assert [r.node_id for r in result.errors] == ["n"]
    assert result.context["_outputs.other"] is None


async def test_timeout_holds_even_when_node_code_swallows_the_cancellation() -> None:
    async def stubborn(ctx: Any) -> dict[str, Any]:
        try:
            await asyncio.sleep(1)
        except asyncio.CancelledError:
            pass  # misbehaving node code: ignores the cancellation and returns late
        return {"output": "too late"}

    runtime, _ = make_runtime({"stubborn": stubborn})
    result = await runtime.run(bp([node("n", "stubborn", config={"timeout": 50})]))
    # The attempt ran past its limit: it fails with NodeTimeoutError (SPEC 4.2).
    assert result.status == "failed", result.context.get("_outputs.n")
    assert [r.type for r in result.errors] == ["NodeTimeoutError"]
    assert "_outputs.n" not in result.context
