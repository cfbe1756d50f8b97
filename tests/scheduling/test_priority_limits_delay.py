"""Per-run priority, the worker's rate limit and delayed starts, on real Redis with a BullMQ
worker in this process (docs/scheduling.md)."""

from __future__ import annotations

import asyncio
import time

import pytest
import redis.asyncio as redis
from bullmq_processes import adapter
from hypothesis import given
from hypothesis import strategies as st
from sched_nodes import TAKEN, chain, registry

from flowcraft_bullmq import create_reconciler
from flowcraft_core.distributed.scheduling import (
    MAX_DELAY_S,
    MAX_PRIORITY,
    check_delay,
    check_priority,
)


def test_a_high_priority_runs_jobs_are_taken_before_a_low_priority_backlog(
    redis_url: str, prefix: str
) -> None:
    """A backlog of low-priority runs, then high-priority ones, then one worker at
    concurrency 1: every job of the high-priority runs (their successors too, which carry
    the run's priority) is taken before any job of a low-priority run."""
    bp = chain("two", 2)

    async def scenario() -> None:
        async with adapter(redis_url, prefix, blueprints=[bp], consume=False) as client:
            low = [await client.start_run("two", {}, priority=50) for _ in range(6)]
            high = [await client.start_run("two", {}, priority=1) for _ in range(6)]
            TAKEN.clear()
            async with adapter(
                redis_url, prefix, blueprints=[bp], registry=registry, concurrency=1
            ):
                for run_id in low + high:
                    assert (await client.wait_for_result(run_id, timeout_s=30)).status == (
                        "completed"
                    )
        order = [run_id for run_id, _ in TAKEN]
        assert len(order) == 24
        assert set(order[:12]) == set(high), order
        assert set(order[12:]) == set(low)

    asyncio.run(scenario())


def test_no_priority_is_taken_before_any_priority(redis_url: str, prefix: str) -> None:
    """BullMQ's rule, kept: priority 0 (none) goes first, then 1, 2, ..."""
    bp = chain("one", 1)

    async def scenario() -> None:
        async with adapter(redis_url, prefix, blueprints=[bp], consume=False) as client:
            runs = {p: await client.start_run("one", {}, priority=p) for p in (9, 3, 0, 1)}
            TAKEN.clear()
            async with adapter(
                redis_url, prefix, blueprints=[bp], registry=registry, concurrency=1
            ):
                for run_id in runs.values():
                    await client.wait_for_result(run_id, timeout_s=30)
        assert [run_id for run_id, _ in TAKEN] == [runs[0], runs[1], runs[3], runs[9]]

    asyncio.run(scenario())


def test_the_rate_limit_spaces_jobs(redis_url: str, prefix: str) -> None:
    """10 jobs at most 2 per 500 ms take 4 full windows after the first (>= ~2 s); without
    the limiter they take a fraction of that."""
    bp = chain("one", 1)

    async def timed(limit: tuple[int, int] | None, sub: str) -> float:
        async with adapter(redis_url, prefix + sub, blueprints=[bp], consume=False) as client:
            ids = await client.start_runs([("one", {}, None)] * 10)
            started = time.monotonic()
            async with adapter(
                redis_url,
                prefix + sub,
                blueprints=[bp],
                registry=registry,
                concurrency=10,
                rate_limit=limit,
            ) as worker:
                assert worker.rate_limit == limit
                for run_id in ids:
                    await client.wait_for_result(run_id, timeout_s=60)
            return time.monotonic() - started

    limited = asyncio.run(timed((2, 500), "l"))
    free = asyncio.run(timed(None, "f"))
    assert limited >= 1.8, limited
    assert free < 1.5, free


def test_a_rate_limited_worker_stops_without_waiting_out_the_window(
    redis_url: str, prefix: str
) -> None:
    """A worker waiting out its limiter's window (1 job per 30 s, a second job waiting) stops
    at once: close() does not sleep the window out, and the waiting job is not taken during
    the close but left for the next worker."""
    bp = chain("one", 1)

    async def scenario() -> None:
        async with adapter(redis_url, prefix, blueprints=[bp], consume=False) as client:
            first, second = await client.start_runs([("one", {}, None)] * 2)
            TAKEN.clear()
            async with adapter(
                redis_url, prefix, blueprints=[bp], registry=registry, rate_limit=(1, 30_000)
            ) as worker:
                await client.wait_for_result(first, timeout_s=30)
                await asyncio.sleep(0.3)  # the worker is now in the window's wait
                started = time.monotonic()
                await worker.close(timeout_s=30)
                assert time.monotonic() - started < 2.0
            assert [run_id for run_id, _ in TAKEN] == [first]
            async with adapter(redis_url, prefix, blueprints=[bp], registry=registry):
                assert (await client.wait_for_result(second, timeout_s=30)).status == "completed"
            assert [run_id for run_id, _ in TAKEN] == [first, second]

    asyncio.run(scenario())


def test_a_delayed_start_runs_later_and_is_not_stalled_meanwhile(
    redis_url: str, prefix: str
) -> None:
    bp = chain("one", 1)

    async def scenario() -> None:
        async with adapter(redis_url, prefix, blueprints=[bp], registry=registry) as a:
            started = time.time()
            run_id = await a.start_run("one", {}, delay=1.5)
            assert await a.get_status(run_id) == "running"
            assert await a._queue.getJobState(f"{run_id}-n0-0") == "delayed"
            client = redis.Redis.from_url(redis_url, decode_responses=True)
            try:
                wake_at = float(await client.hget(f"{prefix}:{{{run_id}}}:meta", "wakeAt"))
                assert wake_at >= started + 1.4
                # Even with a zero threshold, the reconciler leaves the waiting run alone.
                stats = await create_reconciler(
                    adapter=a, redis=client, stalled_threshold_s=0
                ).run()
                assert stats.stalled_runs == 0
            finally:
                await client.aclose()
            result = await a.wait_for_result(run_id, timeout_s=30)
            assert result.status == "completed"
            assert time.time() - started >= 1.4

    asyncio.run(scenario())


@given(st.integers(min_value=-(2**40), max_value=2**40))
def test_priority_range(priority: int) -> None:
    if 0 <= priority <= MAX_PRIORITY:
        assert check_priority(priority) == priority
    else:
        with pytest.raises(ValueError, match="priority"):
            check_priority(priority)


@given(st.one_of(st.floats(allow_nan=True), st.booleans(), st.text(max_size=3)))
def test_delay_values(delay: object) -> None:
    ok = isinstance(delay, float) and 0 <= delay <= MAX_DELAY_S
    if ok:
        assert check_delay(delay) >= delay * 1000
    else:
        with pytest.raises(ValueError, match="delay"):
            check_delay(delay)


def test_start_run_rejects_bad_priority_delay_and_queue(redis_url: str, prefix: str) -> None:
    bp = chain("one", 1)

    async def scenario() -> None:
        async with adapter(redis_url, prefix, blueprints=[bp], consume=False) as a:
            for bad in ({"priority": MAX_PRIORITY + 1}, {"priority": True}, {"delay": -1}):
                with pytest.raises(ValueError):
                    await a.start_run("one", {}, **bad)  # type: ignore[arg-type]
            with pytest.raises(ValueError, match="queue"):
                await a.start_run("one", {}, queue="a:b")
            assert await a.list_runs() == []

    asyncio.run(scenario())
