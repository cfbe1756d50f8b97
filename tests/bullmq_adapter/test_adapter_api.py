"""The client API of BullMQAdapter on a real Redis: starting runs (errors, idempotency keys),
status and results, resume errors, cancellation of a running node, version pinning."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
import redis.asyncio as redis
from adapter_support import APPROVAL, adapter, chain, e, n
from distributed.test_memory_parity import make_registry

from flowcraft_bullmq import BullMQAdapter
from flowcraft_core import (
    BlueprintError,
    RunNotAwaitingError,
    RunNotFoundError,
    SerializationError,
)

CHAIN = chain(3)


async def test_start_run_errors(redis_url: str, prefix: str) -> None:
    async with adapter(redis_url, prefix, blueprints=[CHAIN], consume=False) as a:
        with pytest.raises(BlueprintError, match="no blueprint with id 'nope'"):
            await a.start_run("nope")
        with pytest.raises(SerializationError):
            await a.start_run("chain", {"x": object()})
        with pytest.raises(ValueError, match="invalid run id"):
            await a.start_run("chain", run_id="has space")
        await a.start_run("chain", run_id="same")
        with pytest.raises(ValueError, match="already exists"):
            await a.start_run("chain", run_id="same")
        # Nobody consumes here: the run stays running and has no result yet.
        assert await a.get_status("same") == "running"
        assert await a.get_result("same") is None
        with pytest.raises(TimeoutError):
            await a.wait_for_result("same", timeout_s=0.05)


async def test_unknown_runs(redis_url: str, prefix: str) -> None:
    async with adapter(redis_url, prefix, blueprints=[CHAIN], consume=False) as a:
        for call in (a.get_status, a.get_result, a.cancel_run):
            with pytest.raises(RunNotFoundError):
                await call("never-started")
        with pytest.raises(RunNotFoundError):
            await a.resume_with_action("never-started", "go")


async def test_idempotency_key_starts_one_run(redis_url: str, prefix: str) -> None:
    registry = make_registry()
    ran: list[str] = []

    @registry.node("note")
    async def note(ctx: Any) -> dict[str, Any]:
        ran.append(ctx.run_id)
        return {"output": 1}

    bp = {"id": "once", "nodes": [n("only", "note")], "edges": []}
    async with adapter(redis_url, prefix, registry=registry, blueprints=[bp], state_ttl_s=600) as a:
        first = await a.start_run("once", idempotency_key="order-42")
        again = await a.start_run("once", idempotency_key="order-42")
        other = await a.start_run("once", idempotency_key="order-43")
        assert again == first != other
        assert (await a.wait_for_result(first, timeout_s=20)).status == "completed"
        assert (await a.wait_for_result(other, timeout_s=20)).status == "completed"
        # Still the same run once it has finished.
        assert await a.start_run("once", idempotency_key="order-42") == first
        probe = redis.Redis.from_url(redis_url, decode_responses=True)
        try:
            # The key outlives nothing: it got the run's TTL when the run finished.
            assert 0 < await probe.ttl(f"{prefix}:idem:order-42") <= 600
        finally:
            await probe.aclose()
    assert sorted(ran) == sorted([first, other])


async def test_resume_errors(redis_url: str, prefix: str) -> None:
    registry = make_registry()
    async with adapter(redis_url, prefix, registry=registry, blueprints=[APPROVAL, CHAIN]) as a:
        done = await a.start_run("chain")
        assert (await a.wait_for_result(done, timeout_s=20)).status == "completed"
        with pytest.raises(RunNotAwaitingError, match="not waiting"):
            await a.resume_with_action(done, "approve")
        run_id = await a.start_run("approval")
        assert (await a.wait_for_result(run_id, timeout_s=20)).status == "awaiting"
        with pytest.raises(ValueError, match="has no node 'ghost'"):
            await a.resume_with_action(run_id, "approve", node_id="ghost")
        assert await a.resume_with_action(run_id, "approve", 1) == "resumed"
        result = await a.wait_for_result(run_id, timeout_s=20)
        assert result.status == "completed"
        assert result.context["_outputs.yes"] == 2
        # Only one resume per waiting activation.
        with pytest.raises(RunNotAwaitingError):
            await a.resume_with_action(run_id, "approve", 1)


async def test_cancel_stops_a_running_node(redis_url: str, prefix: str) -> None:
    registry = make_registry()
    started = asyncio.Event()
    interrupted: list[str] = []

    @registry.node("slow")
    async def slow(ctx: Any) -> dict[str, Any]:
        started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            interrupted.append(ctx.node_id)
            raise
        return {"output": "too late"}

    bp = {
        "id": "slowflow",
        "nodes": [n("a", "inc"), n("s", "slow"), n("after", "inc")],
        "edges": [e("a", "s"), e("s", "after")],
    }
    async with adapter(
        redis_url, prefix, registry=registry, blueprints=[bp], lock_duration_s=1
    ) as a:
        run_id = await a.start_run("slowflow")
        await asyncio.wait_for(started.wait(), 10)
        assert await a.cancel_run(run_id) is True
        result = await a.wait_for_result(run_id, timeout_s=5)
        assert result.status == "cancelled"
        assert result.context["_outputs.a"] == 1  # committed work is kept
        # The worker notices within lock_duration_s / 2 and cancels the node.
        for _ in range(100):
            if interrupted:
                break
            await asyncio.sleep(0.05)
        assert interrupted == ["s"]
        assert await a.cancel_run(run_id) is False
        assert "_outputs.s" not in (await a.wait_for_result(run_id)).context
        assert "_outputs.after" not in (await a.wait_for_result(run_id)).context


def _versioned(version: str) -> dict[str, Any]:
    return {
        "id": "pinned",
        "metadata": {"version": version},
        "nodes": [n("a", "inc"), n("b", "inc")],
        "edges": [e("a", "b")],
    }


@pytest.mark.parametrize(
    ("worker_blueprints", "worker_registry", "error_type", "fragment"),
    [
        (
            [_versioned("2")],
            True,
            "BlueprintVersionError",
            "pinned to version '1', this process has '2'",
        ),
        ([CHAIN], True, "BlueprintError", "this worker has no blueprint with this id"),
        ([_versioned("1")], False, "BlueprintError", "no implementation registered for 'inc'"),
    ],
    ids=["version-mismatch", "unknown-blueprint", "missing-implementation"],
)
async def test_worker_that_cannot_run_the_blueprint_fails_the_run(
    redis_url: str,
    prefix: str,
    worker_blueprints: list[dict[str, Any]],
    worker_registry: bool,
    error_type: str,
    fragment: str,
) -> None:
    registry = make_registry() if worker_registry else None
    async with (
        adapter(redis_url, prefix, blueprints=[_versioned("1")], consume=False) as client,
        adapter(redis_url, prefix, registry=registry, blueprints=worker_blueprints),
    ):
        run_id = await client.start_run("pinned")
        result = await client.wait_for_result(run_id, timeout_s=20)
    assert result.status == "failed"
    assert [(e.node_id, e.type) for e in result.errors] == [(None, error_type)]
    assert fragment in result.errors[0].message
    assert "_outputs.a" not in result.context


async def test_empty_blueprint_completes_at_once(redis_url: str, prefix: str) -> None:
    bp = {"id": "empty", "nodes": [], "edges": []}
    async with adapter(redis_url, prefix, blueprints=[bp], consume=False) as a:
        run_id = await a.start_run("empty", {"k": 1}, idempotency_key="empty-1")
        result = await a.get_result(run_id)
        assert result is not None and result.status == "completed"
        assert result.context["k"] == 1


async def test_callers_client_stays_open_and_must_decode(redis_url: str, prefix: str) -> None:
    raw = redis.Redis.from_url(redis_url)
    try:
        with pytest.raises(ValueError, match="decode_responses=True"):
            BullMQAdapter(connection=raw, blueprints=[CHAIN])
    finally:
        await raw.aclose()
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        registry = make_registry()
        a = BullMQAdapter(connection=client, registry=registry, blueprints=[CHAIN], prefix=prefix)
        try:
            await a.start()
            run_id = await a.start_run("chain")
            assert (await a.wait_for_result(run_id, timeout_s=20)).status == "completed"
        finally:
            await a.close()
        assert await client.ping() is True
    finally:
        await client.aclose()


async def test_warns_when_redis_may_evict(
    redis_url: str, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    admin = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        await admin.config_set("maxmemory-policy", "allkeys-lru")
        with caplog.at_level(logging.WARNING, logger="flowcraft_bullmq.adapter"):
            async with adapter(redis_url, prefix, blueprints=[CHAIN], consume=False):
                pass
    finally:
        await admin.config_set("maxmemory-policy", "noeviction")
        await admin.aclose()
    warnings = [
        r for r in caplog.records if r.name == "flowcraft_bullmq.adapter" and r.levelno == 30
    ]
    assert any("allkeys-lru" in r.getMessage() and "noeviction" in r.getMessage() for r in warnings)


async def test_an_idle_worker_closes_promptly(redis_url: str, prefix: str) -> None:
    """An idle worker sits in BullMQ's blocking wait on its queue's marker (BZPOPMIN, up to
    drainDelay = 5 s); close() interrupts that wait instead of sleeping it out (a SIGTERM
    stops an idle `flowcraft worker` at once)."""
    admin = redis.Redis.from_url(redis_url, decode_responses=True)
    try:

        async def blocked() -> int:
            return sum(c.get("cmd") == "bzpopmin" for c in await admin.client_list())

        before = await blocked()
        async with adapter(
            redis_url, prefix, blueprints=[CHAIN], registry=make_registry(), queues=["a", "b"]
        ) as a:
            for _ in range(100):  # both queues' workers reach their blocking wait
                if await blocked() == before + 2:
                    break
                await asyncio.sleep(0.05)
            assert await blocked() == before + 2
            started = asyncio.get_running_loop().time()
            await a.close(timeout_s=30)
            assert asyncio.get_running_loop().time() - started < 2.0
        assert await blocked() == before
    finally:
        await admin.aclose()
