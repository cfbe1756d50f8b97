"""Connection settings and the BullMQ 3.4.4 workarounds (B1, B2) on a real Redis."""

from __future__ import annotations

import asyncio
import time

import pytest
import redis.asyncio as redis
from adapter_support import adapter, chain
from distributed.test_memory_parity import make_registry
from redis.asyncio.connection import SSLConnection

from flowcraft_bullmq import RedisSettings
from flowcraft_bullmq.connection import RedisConnector, redact_url


def test_settings_from_url_and_overrides() -> None:
    kwargs = RedisSettings(
        "rediss://u:pw@cache.example:6380/3?ssl_cert_reqs=none"
    ).connection_kwargs()
    assert kwargs["connection_class"] is SSLConnection
    assert (kwargs["host"], kwargs["port"], kwargs["db"]) == ("cache.example", 6380, 3)
    assert (kwargs["username"], kwargs["password"]) == ("u", "pw")
    assert kwargs["decode_responses"] is True
    over = RedisSettings(
        "redis://h/1?socket_timeout=5", password="s3cret", db=4, options={"client_name": "x"}
    ).connection_kwargs()
    # B1: never a socket timeout, whatever the URL says.
    assert over["socket_timeout"] is None
    assert (over["password"], over["db"], over["client_name"]) == ("s3cret", 4, "x")
    assert "s3cret" not in repr(RedisSettings("redis://h/0", password="s3cret"))


def test_passwords_never_show() -> None:
    assert redact_url("redis://u:secret@h:1/2") == "redis://u:***@h:1/2"
    assert redact_url("redis://h:1/2") == "redis://h:1/2"
    assert "secret" not in RedisConnector("rediss://:secret@h:1/0").describe()
    with pytest.raises(TypeError, match="Redis URL, a RedisSettings"):
        RedisConnector(42)  # type: ignore[arg-type]


async def test_password_and_database_from_the_url(redis_url: str, prefix: str) -> None:
    admin = redis.Redis.from_url(redis_url, decode_responses=True)
    user = f"fc{prefix}"
    await admin.acl_setuser(
        user, enabled=True, passwords=["+s3cret"], keys=["*"], channels=["*"], commands=["+@all"]
    )
    try:
        host = redis_url.removeprefix("redis://").split("/", 1)[0]
        url = f"redis://{user}:s3cret@{host}/5"
        bp = chain(2)
        async with adapter(url, prefix, registry=make_registry(), blueprints=[bp]) as a:
            run_id = await a.start_run("chain")
            assert (await a.wait_for_result(run_id, timeout_s=20)).status == "completed"
            assert "s3cret" not in a.connector.describe()
        db5 = redis.Redis.from_url(f"redis://{host}/5", decode_responses=True)
        try:
            assert await db5.exists(f"{prefix}:{{{run_id}}}:meta")
        finally:
            await db5.aclose()
        assert not await admin.exists(f"{prefix}:{{{run_id}}}:meta")  # not in db 0
        with pytest.raises(redis.AuthenticationError):
            async with adapter(
                f"redis://{user}:wrong@{host}/5", prefix, blueprints=[bp], consume=False
            ):
                pass
    finally:
        await admin.acl_deluser(user)
        await admin.aclose()


async def test_idle_worker_still_takes_jobs_promptly(redis_url: str, prefix: str) -> None:
    """B1: a worker idle for longer than redis-py 8's default socket timeout (5 s) in its
    blocking BZPOPMIN must still pick up the next job at once. B2: sub-second blocks."""
    bp = chain(2)
    async with adapter(redis_url, prefix, registry=make_registry(), blueprints=[bp]) as a:
        worker = a._bull_worker
        assert worker.backend.capabilities["canDoubleTimeout"] is True  # B2 applied
        for client in (worker.client, worker.bclient, a._queue.client):
            assert client.connection_pool.connection_kwargs["socket_timeout"] is None
        await asyncio.sleep(5.5)  # idle past the 5 s default socket timeout
        began = time.monotonic()
        run_id = await a.start_run("chain")
        assert (await a.wait_for_result(run_id, timeout_s=10)).status == "completed"
        assert time.monotonic() - began < 1.0
