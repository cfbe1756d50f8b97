"""`Multiplexer`: many coroutines' commands on one pipelined connection (flowcraft_bullmq).

Every reply must reach the command that asked for it, whatever the interleaving, and errors
must raise what redis-py raises; a dropped connection is reopened; a closed one fails waiters.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis
from redis.asyncio.connection import Connection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import DataError, NoScriptError, ResponseError
from redis_server import free_port, running_redis_server

from flowcraft_bullmq.multiplex import Multiplexer, pack, pack_evalsha, route_scripts


@pytest.fixture(params=[True, False], ids=["hiredis", "redis-py-parser"])
async def mux(redis_client: Redis, request: pytest.FixtureRequest) -> AsyncIterator[Multiplexer]:
    via = Multiplexer(redis_client, use_hiredis=request.param)
    try:
        yield via
    finally:
        await via.aclose()


class CountingMultiplexer(Multiplexer):
    """Counts the commands that went through it (each its own write)."""

    def __init__(self, client: Redis, *, use_hiredis: bool | None = None) -> None:
        super().__init__(client, use_hiredis=use_hiredis)
        self.writes = 0
        self.commands = 0

    def _write(self, data: bytes) -> None:
        self.writes += 1
        self.commands += 1  # one command per write
        super()._write(data)


_ARGS = st.lists(
    st.one_of(
        st.text(max_size=20),
        st.binary(max_size=20),
        st.integers(min_value=-(2**63), max_value=2**63 - 1),
        st.floats(allow_nan=False, allow_infinity=False),
    ),
    min_size=1,
    max_size=8,
)


@given(args=_ARGS)
@settings(max_examples=200, deadline=None)
def test_pack_writes_what_redis_py_writes(args: list[Any]) -> None:
    expected = b"".join(Connection().pack_command("EVALSHA", *args))
    assert pack(["EVALSHA", *args]) == expected


@given(keys=_ARGS, args=_ARGS)
@settings(max_examples=100, deadline=None)
def test_pack_evalsha_is_pack_of_the_whole_command(keys: list[Any], args: list[Any]) -> None:
    sha = "0123456789abcdef" * 2 + "01234567"
    assert pack_evalsha(sha, keys, args) == pack(["EVALSHA", sha, len(keys), *keys, *args])
    assert pack_evalsha(sha, [], []) == pack(["EVALSHA", sha, 0])


def test_pack_refuses_what_redis_py_refuses() -> None:
    with pytest.raises(DataError):
        pack(["SET", "k", True])
    with pytest.raises(DataError):
        pack(["SET", "k", None])


def test_only_decoding_resp2_clients_are_multiplexed() -> None:
    assert Multiplexer.supports(Redis(decode_responses=True))
    assert not Multiplexer.supports(Redis(decode_responses=False))
    assert not Multiplexer.supports(Redis(decode_responses=True, protocol=3))
    assert not Multiplexer.supports(object())


@given(values=st.lists(st.text(max_size=30), min_size=1, max_size=60), use_hiredis=st.booleans())
@settings(max_examples=30, deadline=None)
def test_concurrent_commands_get_their_own_replies_each_written_at_once(
    make_client: Callable[[], Redis], values: list[str], use_hiredis: bool
) -> None:
    async def scenario() -> None:
        client = make_client()
        via = CountingMultiplexer(client, use_hiredis=use_hiredis)
        try:
            assert await via.execute("PING") == "PONG"  # raw replies: no response callbacks
            via.writes = via.commands = 0
            echoed = await asyncio.gather(*(via.execute("ECHO", v) for v in values))
            ids = await asyncio.gather(*(via.execute("CLIENT", "ID") for _ in values))
        finally:
            await via.aclose()
            await client.aclose()
        assert echoed == values
        assert len(set(ids)) == 1  # one connection for all of them
        assert via.commands == 2 * len(values)

    asyncio.run(scenario())


def test_a_command_is_written_before_its_caller_yields(make_client: Callable[[], Redis]) -> None:
    """No waiting for the end of the loop iteration: Redis starts on a command while the
    worker goes on (batching held the two in lock-step, docs/performance.md)."""

    async def scenario() -> None:
        client = make_client()
        via = CountingMultiplexer(client)
        try:
            assert await via.execute("PING") == "PONG"
            via.writes = 0
            first = asyncio.ensure_future(via.execute("ECHO", "a"))
            second = asyncio.ensure_future(via.execute("ECHO", "b"))
            await asyncio.sleep(0)  # both coroutines ran up to their reply
            assert via.writes == 2
            assert await asyncio.gather(first, second) == ["a", "b"]
        finally:
            await via.aclose()
            await client.aclose()

    asyncio.run(scenario())


async def test_error_replies_raise_as_redis_py_raises(mux: Multiplexer) -> None:
    with pytest.raises(NoScriptError):
        await mux.evalsha("0" * 40, 0)
    with pytest.raises(ResponseError, match="WRONGTYPE"):
        await asyncio.gather(mux.execute("SET", "s", "1"), mux.execute("LPUSH", "s", "x"))
    with pytest.raises(ResponseError, match=r"^NORUN run not found$"):
        await mux.execute("EVAL", "return redis.error_reply('NORUN run not found')", 0)
    assert await mux.execute("ECHO", "still in step") == "still in step"


async def test_a_script_runs_through_it_and_is_loaded_again_after_a_flush(
    redis_client: Redis, mux: Multiplexer
) -> None:
    script = redis_client.register_script("return {KEYS[1], ARGV[1], 7}")
    assert await script(keys=["k"], args=["v"], client=mux) == ["k", "v", 7]
    await redis_client.script_flush()
    assert await script(keys=["k2"], args=[2], client=mux) == ["k2", "2", 7]


async def test_run_script_loads_the_script_on_noscript_and_keeps_its_sha(
    redis_client: Redis, mux: Multiplexer
) -> None:
    script = redis_client.register_script("return {KEYS[1], ARGV[1], #KEYS}")
    assert await mux.run_script(script, ["k"], ["v"]) == ["k", "v", 1]
    await redis_client.script_flush()
    assert await mux.run_script(script, ["a", "b"], [2]) == ["a", "2", 2]
    assert await redis_client.script_exists(script.sha) == [True]
    with pytest.raises(ResponseError, match="NORUN"):
        failing = redis_client.register_script("return redis.error_reply('NORUN gone')")
        await mux.run_script(failing, [], [])


async def test_a_cancelled_caller_does_not_shift_the_replies(
    redis_client: Redis, mux: Multiplexer
) -> None:
    slow = asyncio.ensure_future(mux.execute("BLPOP", "nothing-here", "0.2"))
    await asyncio.sleep(0.05)
    slow.cancel()
    after = mux.execute("ECHO", "mine")
    assert await after == "mine"


async def test_a_dropped_connection_is_reopened(redis_client: Redis, mux: Multiplexer) -> None:
    first = await mux.execute("CLIENT", "ID")
    await redis_client.client_kill_filter(_id=first)
    assert await mux.execute("ECHO", "again") == "again"
    assert await mux.execute("CLIENT", "ID") != first


async def test_commands_in_flight_when_the_connection_drops_are_sent_again(
    redis_client: Redis, mux: Multiplexer
) -> None:
    first = await mux.execute("CLIENT", "ID")
    waiting = asyncio.ensure_future(mux.execute("BLPOP", "later", "5"))
    await asyncio.sleep(0.05)
    await redis_client.client_kill_filter(_id=first)
    await asyncio.sleep(0.1)
    await redis_client.rpush("later", "x")
    assert await waiting == ["later", "x"]


def test_on_uvloop_replies_errors_and_a_dropped_connection(
    make_client: Callable[[], Redis],
) -> None:
    """The worker runs on uvloop, whose transports the hiredis reader's protocol replaces."""
    import uvloop

    async def scenario() -> None:
        client = make_client()
        via = Multiplexer(client, use_hiredis=True)
        try:
            values = [f"v{i}" for i in range(50)]
            assert await asyncio.gather(*(via.execute("ECHO", v) for v in values)) == values
            with pytest.raises(ResponseError, match="WRONGTYPE"):
                await asyncio.gather(via.execute("SET", "s", "1"), via.execute("LPUSH", "s", "x"))
            first = await via.execute("CLIENT", "ID")
            waiting = asyncio.ensure_future(via.execute("BLPOP", "later", "5"))
            await asyncio.sleep(0.05)
            await client.client_kill_filter(_id=first)
            await asyncio.sleep(0.1)
            await client.rpush("later", "x")
            assert await waiting == ["later", "x"]  # sent again on a new connection
            assert await via.execute("CLIENT", "ID") != first
        finally:
            await via.aclose()
            await client.aclose()
        with pytest.raises(RedisConnectionError):
            await via.execute("PING")

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(scenario())


async def test_close_fails_waiting_commands_and_refuses_new_ones(redis_client: Redis) -> None:
    via = Multiplexer(redis_client)
    waiting = asyncio.ensure_future(via.execute("BLPOP", "never", "5"))
    await asyncio.sleep(0.05)
    await via.aclose()
    with pytest.raises(RedisConnectionError):
        await waiting
    with pytest.raises(RedisConnectionError):
        await via.execute("PING")


async def test_routed_scripts_run_through_the_multiplexer_unless_a_client_is_named(
    redis_client: Redis,
) -> None:
    via = CountingMultiplexer(redis_client)
    commands: dict[str, Any] = {
        "echo": redis_client.register_script("return ARGV[1]"),
        "other": redis_client.register_script("return 'other'"),
    }
    for script in commands.values():
        await redis_client.script_load(script.script)
    try:
        route_scripts(commands, ["echo", "absent"], via)
        route_scripts(commands, ["echo"], via)  # routing twice wraps once
        assert "absent" not in commands
        assert await commands["echo"](keys=[], args=["a"]) == "a"
        assert via.commands == 1
        assert await commands["echo"](keys=[], args=["b"], client=redis_client) == "b"
        assert await commands["other"]() == "other"
        assert via.commands == 1
        # Naming the multiplexer as the client (BullMQ's add passes it as `pipe`): through it.
        assert await commands["echo"](keys=[], args=["c"], client=via) == "c"
        assert via.commands == 2
        await redis_client.script_flush()  # NOSCRIPT: loaded, then sent again
        assert await commands["echo"](args=["d"]) == "d"
        assert via.commands == 5
        # unnamed=False: only the calls naming the multiplexer.
        route_scripts(commands, ["other"], via, unnamed=False)
        assert await commands["other"]() == "other"
        assert via.commands == 5
        assert await commands["other"](client=via) == "other"
        assert via.commands == 6  # (the call above loaded it again after the flush)
    finally:
        await via.aclose()


def test_a_command_sent_while_redis_restarts_goes_through_once_it_is_back() -> None:
    """The client's retry policy (redis-py's backoff) covers a short restart, as it does for
    commands on the pool's connections."""
    port = free_port()

    async def scenario() -> None:
        client = Redis(host="127.0.0.1", port=port, decode_responses=True, socket_timeout=None)
        via = Multiplexer(client)
        try:
            with running_redis_server("tests/bullmq multiplexer restart", port=port):
                await via.execute("SET", "k", "before")
            sending = asyncio.ensure_future(via.execute("ECHO", "after the restart"))
            await asyncio.sleep(0.3)  # refused meanwhile: retried with backoff
            assert not sending.done()
            with running_redis_server("tests/bullmq multiplexer restart", port=port):
                assert await sending == "after the restart"
                assert await via.execute("GET", "k") is None  # a new, empty server
        finally:
            await via.aclose()
            await client.aclose()

    asyncio.run(scenario())
