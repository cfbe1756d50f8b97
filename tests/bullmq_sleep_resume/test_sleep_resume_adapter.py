"""Durable sleeps and buffered resumes through BullMQAdapter, with an in-process worker and a
real Redis (SPEC 5.3, 9.7): parity with FlowRuntime, a sleep holds no worker and survives a
worker restart, resumes that arrive early are buffered and applied when the wait starts."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Any

import pytest
from distributed.test_durable_memory import APPROVAL, TWO_WAITS, in_process, sleepy
from distributed.test_memory_parity import comparable, e, make_registry, n
from redis.asyncio import Redis

from flowcraft_bullmq import BullMQAdapter
from flowcraft_core import RunNotAwaitingError

CHAIN = {
    "id": "chain",
    "nodes": [n("c1", "inc"), n("c2", "inc"), n("c3", "inc")],
    "edges": [e("c1", "c2"), e("c2", "c3")],
}

NAP = {
    "id": "nap",
    "nodes": [
        n("a", "inc"),
        n("z", "sleep", params={"duration": "700ms"}),
        n("ask", "wait"),
        n("yes", "inc"),
        n("no", "inc"),
    ],
    "edges": [
        e("a", "z"),
        e("z", "ask"),
        e("ask", "yes", action="approve"),
        e("ask", "no", action="reject"),
    ],
}


@contextlib.asynccontextmanager
async def adapter(
    redis_url: str,
    prefix: str,
    blueprints: Iterable[Any] | Mapping[str, Any],
    *,
    consume: bool = True,
    registry: Mapping[str, Any] | None = None,
    **options: Any,
) -> AsyncIterator[BullMQAdapter]:
    """A BullMQAdapter (by default with the parity registry when it consumes); consuming in
    this process unless told not to."""
    if registry is None and consume:
        registry = make_registry()
    instance = BullMQAdapter(
        connection=redis_url,
        registry=registry,
        blueprints=blueprints,
        prefix=prefix,
        **options,
    )
    try:
        if consume:
            await instance.start()
        else:
            await instance.connect()
        yield instance
    finally:
        await instance.close(timeout_s=10)


async def sleeping(redis_url: str, prefix: str, run_id: str, node_id: str) -> None:
    """Return once the activation sleeps (its sleep record is written; ~5 s at most)."""
    client = Redis.from_url(redis_url, decode_responses=True)
    try:
        for _ in range(2500):
            if await client.hexists(f"{prefix}:{{{run_id}}}:acts", f"{node_id}@~wake"):
                return
            await asyncio.sleep(0.002)
    finally:
        await client.aclose()
    raise AssertionError(f"{node_id} of {run_id} never went to sleep")


async def test_a_sleep_gives_the_in_process_result(redis_url: str, prefix: str) -> None:
    blueprint = sleepy("300ms")
    local = await in_process(make_registry(), blueprint)
    async with adapter(redis_url, prefix, [blueprint]) as a:
        started = time.monotonic()
        run_id = await a.start_run("sleepy", run_id="r1")
        await sleeping(redis_url, prefix, run_id, "z")
        assert await a.get_status(run_id) == "running"
        result = await a.wait_for_result(run_id, timeout_s=20)
        assert time.monotonic() - started >= 0.3
    assert result.status == "completed"
    assert comparable(result) == comparable(local)
    assert result.context["_outputs.z"] == 1


async def test_a_sleep_of_zero_completes_at_once(redis_url: str, prefix: str) -> None:
    blueprint = sleepy(0)
    async with adapter(redis_url, prefix, [blueprint]) as a:
        run_id = await a.start_run("sleepy", run_id="r1")
        result = await a.wait_for_result(run_id, timeout_s=20)
        assert await a._queue.getJobState("r1-z-0-~wake") == "unknown"
    assert result.status == "completed" and result.context["_outputs.b"] == 2


async def test_a_sleep_does_not_hold_a_worker(redis_url: str, prefix: str) -> None:
    """Concurrency 1: another run's nodes all run while the first run sleeps."""
    async with adapter(redis_url, prefix, [sleepy("1500ms"), CHAIN], concurrency=1) as a:
        started = time.monotonic()
        sleeper = await a.start_run("sleepy", run_id="sleeper")
        await sleeping(redis_url, prefix, sleeper, "z")
        assert await a._queue.getJobState("sleeper-z-0-~wake") == "delayed"
        other = await a.start_run("chain", run_id="other")
        assert (await a.wait_for_result(other, timeout_s=20)).status == "completed"
        assert await a.get_status(sleeper) == "running"
        assert time.monotonic() - started < 1.4
        assert (await a.wait_for_result(sleeper, timeout_s=20)).status == "completed"
        assert time.monotonic() - started >= 1.5


async def test_a_sleep_survives_a_worker_restart(redis_url: str, prefix: str) -> None:
    # Longer than BullMQ's longest blocking fetch (5 s): `close()` can wait for a fetch in
    # flight, and a wake that falls due meanwhile would be run by the closing worker (known
    # issue, see the issue note), which is not what this test is about.
    blueprint = sleepy("6s")
    async with adapter(redis_url, prefix, [blueprint]) as first:
        run_id = await first.start_run("sleepy", run_id="r1")
        await sleeping(redis_url, prefix, run_id, "z")
    # No worker is left: the sleep lives on as a delayed job in Redis.
    async with adapter(redis_url, prefix, [blueprint], consume=False) as client:
        assert await client._queue.getJobState("r1-z-0-~wake") == "delayed"
        assert await client.get_status(run_id) == "running"
    async with adapter(redis_url, prefix, [blueprint]) as second:
        result = await second.wait_for_result(run_id, timeout_s=20)
    assert result.status == "completed"
    assert comparable(result) == comparable(await in_process(make_registry(), blueprint))


async def test_a_wake_of_a_cancelled_run_is_a_no_op(redis_url: str, prefix: str) -> None:
    async with adapter(redis_url, prefix, [sleepy("300ms")]) as a:
        run_id = await a.start_run("sleepy", run_id="r1")
        await sleeping(redis_url, prefix, run_id, "z")
        assert await a.cancel_run(run_id) is True
        for _ in range(500):  # the wake job runs, and is acknowledged without effect
            if await a._queue.getJobState("r1-z-0-~wake") == "completed":
                break
            await asyncio.sleep(0.01)
        result = await a.get_result(run_id)
    assert result is not None and result.status == "cancelled"
    assert result.context["_outputs.a"] == 1
    assert "_outputs.z" not in result.context and "_outputs.b" not in result.context


async def test_a_resume_during_a_sleep_is_buffered_then_applied(
    redis_url: str, prefix: str
) -> None:
    async with adapter(redis_url, prefix, [NAP]) as a:
        run_id = await a.start_run("nap", run_id="r1")
        await sleeping(redis_url, prefix, run_id, "z")
        assert await a.resume_with_action(run_id, "reject", 40) == "buffered"
        result = await a.wait_for_result(run_id, timeout_s=20)
    assert result.status == "completed"
    assert result.context["_outputs.no"] == 41 and "_outputs.yes" not in result.context
    local = await in_process(make_registry(), NAP, [(None, 40, "reject")])
    assert comparable(result) == comparable(local)


async def test_buffered_resumes_are_taken_oldest_first_and_by_node(
    redis_url: str, prefix: str
) -> None:
    # A client buffers before any worker runs: the waits have not started yet.
    async with adapter(redis_url, prefix, [TWO_WAITS], consume=False) as client:
        run_id = await client.start_run("twowaits", run_id="r1")
        assert await client.resume_with_action(run_id, None, "X", node_id="w2") == "buffered"
        assert await client.resume_with_action(run_id, None, "Y") == "buffered"
        assert await client.resume_with_action(run_id, None, "Z") == "buffered"
        async with adapter(redis_url, prefix, [TWO_WAITS]):
            result = await client.wait_for_result(run_id, timeout_s=20)
    assert result.status == "completed"
    assert (result.context["_outputs.w1"], result.context["_outputs.w2"]) == ("Y", "X")
    local = await in_process(make_registry(), TWO_WAITS, [("w1", "Y", None), ("w2", "X", None)])
    assert comparable(result) == comparable(local)
    probe = Redis.from_url(redis_url, decode_responses=True)
    try:  # "Z" was dropped with the run
        assert await probe.exists(f"{prefix}:{{{run_id}}}:resume") == 0
    finally:
        await probe.aclose()


async def test_a_double_resume_resumes_once_and_buffers_the_other(
    redis_url: str, prefix: str
) -> None:
    async with adapter(redis_url, prefix, [APPROVAL]) as a:
        run_id = await a.start_run("approval", run_id="r1")
        assert (await a.wait_for_result(run_id, timeout_s=20)).status == "awaiting"
        answers = await asyncio.gather(
            a.resume_with_action(run_id, "approve", 1),
            a.resume_with_action(run_id, "reject", 2),
        )
        assert sorted(answers) == ["buffered", "resumed"]
        result = await a.wait_for_result(run_id, timeout_s=20)
        assert result.status == "completed"
        assert ("_outputs.yes" in result.context) != ("_outputs.no" in result.context)
        with pytest.raises(RunNotAwaitingError, match="not waiting"):
            await a.resume_with_action(run_id, "approve", 1)
