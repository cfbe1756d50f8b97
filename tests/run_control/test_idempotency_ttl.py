"""`idempotency_ttl_s`: how long a finished run's idempotency key is remembered, apart from
the run state's own TTL (`state_ttl_s`, which it follows by default)."""

from __future__ import annotations

import asyncio

import pytest
from bullmq_processes import adapter
from control_nodes import BLUEPRINTS, registry
from redis.asyncio import Redis

from flowcraft_bullmq import BullMQAdapter


async def expiring(client: Redis, key: str, *, wait: bool = True) -> int:
    """The key's PTTL once it has one: the worker sets it right after the final script, so
    a client that saw the final status may look a moment too early."""
    for _ in range(200 if wait else 1):
        pttl = int(await client.pttl(key))
        if pttl != -1:
            break
        await asyncio.sleep(0.01)
    return pttl


async def test_the_key_gets_its_own_ttl_and_is_forgotten_after_it(
    redis_url: str, prefix: str, client: Redis
) -> None:
    async with adapter(
        redis_url,
        prefix,
        blueprints=BLUEPRINTS,
        registry=registry,
        state_ttl_s=3600,
        idempotency_ttl_s=1,
    ) as a:
        first = await a.start_run("diamond", {"k": 1}, idempotency_key="order-1")
        assert (await a.wait_for_result(first, timeout_s=20)).status == "completed"
        assert await a.start_run("diamond", idempotency_key="order-1") == first
        key = f"{prefix}:idem:order-1"
        assert 0 < await expiring(client, key) <= 1000
        assert 3000_000 < await client.pttl(f"{prefix}:{{{first}}}:meta") <= 3600_000
        await asyncio.sleep(1.2)
        second = await a.start_run("diamond", {"k": 2}, idempotency_key="order-1")
        assert second != first  # forgotten: a new run, while the old run's state is kept
        assert await a.get_status(first) == "completed"
        assert (await a.wait_for_result(second, timeout_s=20)).status == "completed"


async def test_by_default_the_key_lives_as_long_as_the_run_and_0_keeps_it(
    redis_url: str, prefix: str, client: Redis
) -> None:
    for ttl, expected in ((None, (1000, 7000_000)), (0, None)):
        async with adapter(
            redis_url,
            prefix,
            blueprints=BLUEPRINTS,
            registry=registry,
            state_ttl_s=7000,
            idempotency_ttl_s=ttl,
        ) as a:
            run_id = await a.start_run("diamond", idempotency_key=f"k{ttl}")
            await a.wait_for_result(run_id, timeout_s=20)
            pttl = await expiring(client, f"{prefix}:idem:k{ttl}", wait=expected is not None)
            if expected is None:
                assert pttl == -1  # no expiry
            else:
                assert expected[0] < pttl <= expected[1]


def test_invalid_values_are_refused() -> None:
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match="idempotency_ttl_s"):
            BullMQAdapter(connection="redis://x", blueprints=[], idempotency_ttl_s=bad)  # type: ignore[arg-type]


async def test_an_awaiting_run_keeps_its_key_without_a_ttl(
    redis_url: str, prefix: str, client: Redis
) -> None:
    """Awaiting is not an end: the key must outlive any wait (it got the TTL before)."""
    async with adapter(
        redis_url, prefix, blueprints=BLUEPRINTS, registry=registry, idempotency_ttl_s=5
    ) as a:
        run_id = await a.start_run("waiting", idempotency_key="wait-1")
        assert (await a.wait_for_result(run_id, timeout_s=20)).status == "awaiting"
        await asyncio.sleep(0.3)  # after the worker's end-of-run step, had it run
        assert await client.pttl(f"{prefix}:idem:wait-1") == -1
        await a.resume_with_action(run_id, output=1)
        assert (await a.wait_for_result(run_id, timeout_s=20)).status == "completed"
        assert 0 < await expiring(client, f"{prefix}:idem:wait-1") <= 5000
