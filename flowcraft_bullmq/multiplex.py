"""One shared Redis connection for the worker's hot commands (auto-pipelining).

Every node job makes Redis calls of ours and BullMQ's: load, complete, add, fetch, finish
(composed into two scripts when possible, composed.py). Through redis-py each call borrows a
pooled connection (a lock, a readiness probe of the socket, a timeout, a retry wrapper), so ten
jobs in flight use ten connections. `Multiplexer` sends them all on one connection: each
command is written the moment it is issued, and the replies, which Redis sends in order,
resolve their callers' futures in order. (Holding a loop iteration's commands for one write
saved system calls but held the worker and Redis in lock-step: Redis idled while the worker
built the batch, the worker while Redis ran it. Written at once, Redis runs one job's script
while the worker works on the next: chain10 on one worker ran 1.3-1.6x faster,
docs/performance.md.) hiredis parses the replies when it is installed (the `fast` extra), else
redis-py's own parser does.

Only EVALSHA, SCRIPT LOAD and other single-reply commands go through it: never a blocking
command, MULTI or a subscription, which would hold the shared connection.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import Iterable, Sequence
from typing import Any, cast

import redis.asyncio as redis
from redis._parsers.base import BaseParser
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import DataError, NoScriptError, RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

hiredis: Any
try:
    import hiredis
except ImportError:  # pragma: no cover - the `fast` extra is not installed
    hiredis = None


#: When the client's connections do not retry (the adapter's pools do not): a dropped
#: connection fails every command in flight at once, so they are sent again for ~4 s, which
#: covers a Redis restart.
_DEFAULT_RETRY = Retry(ExponentialWithJitterBackoff(base=0.05, cap=1.0), 8)


def _retry_policy(client: redis.Redis) -> Retry:
    """The client's retry policy if it retries, else `_DEFAULT_RETRY`."""
    get_retry = getattr(client, "get_retry", None)
    policy = get_retry() if get_retry is not None else None
    if isinstance(policy, Retry) and policy.get_retries() > 0:
        return policy
    return _DEFAULT_RETRY


async def _no_op(error: Exception) -> None:
    """`Retry.call_with_retry`'s failure hook: the failed connection is already dropped."""


def _error(message: str) -> RedisError:
    """The exception redis-py raises for this error reply (NoScriptError for NOSCRIPT...)."""
    error: RedisError = BaseParser.parse_error(message)  # type: ignore[no-untyped-call]
    return error


def pack(args: Iterable[Any]) -> bytes:
    """One command in RESP, arguments encoded as redis-py's `Encoder` encodes them."""
    parts = [b""]
    _append_args(parts, args)
    parts[0] = b"*%d\r\n" % (len(parts) - 1)
    return b"".join(parts)


def _append_args(parts: list[bytes], args: Iterable[Any]) -> None:
    """Append each argument's RESP bulk string to `parts` (one item per argument)."""
    append = parts.append
    for arg in args:
        kind = type(arg)
        if kind is str:
            data = arg.encode()
        elif kind is bytes:
            data = arg
        elif kind is int or kind is float:
            data = repr(arg).encode()
        else:
            data = _encode_other(arg)
        append(b"$%d\r\n%b\r\n" % (len(data), data))


def pack_evalsha(sha: str, keys: Sequence[Any], args: Sequence[Any]) -> bytes:
    """`pack(["EVALSHA", sha, len(keys), *keys, *args])` without the intermediate list; keys
    that are strings come from `_PACKED_KEYS`."""
    head = _EVALSHA_HEADS.get(sha)
    if head is None:
        digest = sha.encode()
        head = b"$7\r\nEVALSHA\r\n$%d\r\n%b\r\n" % (len(digest), digest)
        if len(_EVALSHA_HEADS) >= _PACKED_KEYS_MAX:
            _EVALSHA_HEADS.clear()
        _EVALSHA_HEADS[sha] = head
    cache = _PACKED_KEYS
    numkeys = len(keys)
    parts = [b"*%d\r\n" % (3 + numkeys + len(args)), head, _int_arg(numkeys)]
    append = parts.append
    for key in keys:
        if type(key) is str:
            packed = cache.get(key)
            if packed is None:
                data = key.encode()
                packed = b"$%d\r\n%b\r\n" % (len(data), data)
                if len(cache) >= _PACKED_KEYS_MAX:
                    cache.clear()
                cache[key] = packed
            append(packed)
        else:
            _append_args(parts, (key,))
    _append_args(parts, args)
    return b"".join(parts)


#: Script keys already in RESP: most repeat on every job (a BullMQ queue's keys) or every job
#: of a run (its fixed keys), and packing them was the biggest part of packing a command.
#: Emptied when full, which costs a miss per key in use once.
_PACKED_KEYS: dict[str, bytes] = {}
_PACKED_KEYS_MAX = 8192
#: "EVALSHA" and a script's sha, by sha, in RESP.
_EVALSHA_HEADS: dict[str, bytes] = {}


def _int_arg(n: int) -> bytes:
    if 0 <= n < len(_SMALL_INTS):
        return _SMALL_INTS[n]
    text = b"%d" % n
    return b"$%d\r\n%b\r\n" % (len(text), text)


#: The RESP of the key counts scripts are called with.
_SMALL_INTS = tuple(b"$%d\r\n%d\r\n" % (len(b"%d" % n), n) for n in range(64))


def _encode_other(arg: Any) -> bytes:
    if isinstance(arg, bool):
        raise DataError(f"invalid input of type bool: {arg!r}; convert to bytes, str or int")
    if isinstance(arg, bytes | memoryview):
        return bytes(arg)
    if isinstance(arg, str):
        return arg.encode()
    if isinstance(arg, int | float):
        return repr(arg).encode()
    raise DataError(f"invalid input of type {type(arg).__name__}: {arg!r}")


class _Replies(asyncio.Protocol):
    """The multiplexed connection's protocol once connected (with hiredis): each chunk read
    is parsed at once and resolves its commands' futures, in order. The StreamReader's
    protocol it replaced still hears about flow control and the connection's end, so the
    StreamWriter closes as usual."""

    def __init__(
        self,
        via: Multiplexer,
        parser: Any,
        pending: deque[asyncio.Future[Any]],
        streams: asyncio.BaseProtocol,
    ) -> None:
        self.via = via
        self.parser = parser
        self.pending = pending
        self.streams = streams
        #: False once the multiplexer dropped this connection.
        self.alive = True

    def data_received(self, data: bytes) -> None:
        parser = self.parser
        pending = self.pending
        try:
            parser.feed(data)
            while (reply := parser.gets()) is not False:
                future = pending.popleft()
                if future.done():  # its caller was cancelled
                    continue
                if isinstance(reply, hiredis.ReplyError):
                    future.set_exception(_error(str(reply)))
                else:
                    future.set_result(reply)
        except Exception as exc:  # a protocol error, a reply nobody asked for
            if self.alive:
                self.via._fail(exc)

    def eof_received(self) -> None:
        """The server closed: the transport closes, then `connection_lost`."""

    def connection_lost(self, exc: Exception | None) -> None:
        if self.alive:
            self.via._fail(exc or RedisConnectionError("Connection closed by server."))
        self.streams.connection_lost(exc)

    def pause_writing(self) -> None:
        self.streams.pause_writing()

    def resume_writing(self) -> None:
        self.streams.resume_writing()


class Multiplexer:
    """Commands of many coroutines on one connection of `client`'s pool settings.

    Duck-types the two methods redis-py's `AsyncScript` calls (`evalsha`, `script_load`), so
    a registered script runs here with `script(keys=..., args=..., client=multiplexer)`,
    NOSCRIPT handling included; `run_script(script, keys, args)` does the same for less
    CPU (the hot path's scripts). Close it with `aclose()`.
    """

    def __init__(self, client: redis.Redis, *, use_hiredis: bool | None = None) -> None:
        self._pool = client.connection_pool
        #: Parse replies with hiredis' reader directly (None: when installed), else through
        #: redis-py's parser of the connection.
        self.use_hiredis = hiredis is not None if use_hiredis is None else use_hiredis
        self._encoding_errors = str(self._pool.connection_kwargs.get("encoding_errors", "strict"))
        self._connection: Any = None
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._transport: Any = None
        self._replies: _Replies | None = None
        self._pending: deque[asyncio.Future[Any]] = deque()
        self._connect_lock = asyncio.Lock()
        self._closed = False
        self._retry = _retry_policy(client)
        #: The errors the retry policy retries (redis-py keeps them private; its default).
        self._retry_errors: tuple[type[Exception], ...] = getattr(
            self._retry, "_supported_errors", (RedisConnectionError, RedisTimeoutError)
        )
        #: The loop of the current connection (set by `_connect`).
        self._loop: asyncio.AbstractEventLoop = cast(asyncio.AbstractEventLoop, None)

    @staticmethod
    def supports(client: Any) -> bool:
        """True when `client` can be multiplexed: a plain RESP2 `redis.asyncio.Redis` that
        decodes responses (a cluster client is not)."""
        if type(client) is not redis.Redis:
            return False
        kwargs = client.connection_pool.connection_kwargs
        return bool(kwargs.get("decode_responses")) and kwargs.get("protocol") in (None, 2, "2")

    # ----------------------------------------------------------------- commands
    async def execute(self, *args: Any) -> Any:
        """Send one command and wait for its raw reply (as redis-py returns EVALSHA's: no
        response callbacks); error replies raise what redis-py raises. A dropped connection
        is retried with backoff for a few seconds (`_retry_policy`), enough for a Redis
        restart: every command sent here is safe to send again (reads, idempotent scripts,
        BullMQ's per-job scripts, which redis-py would retry too)."""
        return await self._execute(pack(args))

    async def _execute(self, command: bytes) -> Any:
        """`execute` of a packed command. The first attempt goes straight to the connection;
        only a failed one enters the retry loop (its closure and backoff state cost more
        than the command's own bookkeeping, on every job), which sends it again at once on
        a new connection, then with the policy's backoff: one attempt more than before."""
        try:
            if self._writer is None:
                await self._connect()
            return await self._enqueue(command)
        except self._retry_errors as error:
            if not self._retryable(error):
                raise
        return await self._retry.call_with_retry(
            lambda: self._send(command), _no_op, is_retryable=self._retryable
        )

    def _retryable(self, error: Exception) -> bool:
        return not self._closed

    async def _send(self, command: bytes) -> Any:
        if self._writer is None:
            await self._connect()
        return await self._enqueue(command)

    def _enqueue(self, command: bytes) -> asyncio.Future[Any]:
        """Write `command` now; the future of its reply."""
        future = self._loop.create_future()
        self._pending.append(future)
        self._write(command)
        return future

    def _write(self, data: bytes) -> None:
        transport = self._transport
        if self._writer is None or transport.is_closing():
            self._fail(RedisConnectionError("the multiplexed Redis connection was lost"))
            return
        try:
            transport.write(data)
        except Exception as exc:
            self._fail(exc)

    async def evalsha(self, sha: str, numkeys: int, *args: Any) -> Any:
        return await self.execute("EVALSHA", sha, numkeys, *args)

    async def script_load(self, script: str | bytes) -> str:
        return str(await self.execute("SCRIPT", "LOAD", script))

    async def run_script(self, script: Any, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        """`script(keys=keys, args=args, client=self)` for a registered redis-py script (its
        `sha` and `script`), NOSCRIPT handled as redis-py does (load it, send again), without
        the wrapper's per-call work."""
        try:
            return await self._execute(pack_evalsha(script.sha, keys, args))
        except NoScriptError:
            script.sha = await self.script_load(script.script)
            return await self._execute(pack_evalsha(script.sha, keys, args))

    # ----------------------------------------------------------------- the connection
    async def _connect(self) -> None:
        async with self._connect_lock:
            if self._closed:
                raise RedisConnectionError("the multiplexed connection is closed")
            if self._writer is not None:
                return
            connection = self._pool.make_connection()  # type: ignore[no-untyped-call]
            await connection.connect()  # AUTH, SELECT, CLIENT SETNAME: redis-py's handshake
            self._connection = connection
            self._loop = asyncio.get_running_loop()
            self._writer = writer = connection._writer
            self._transport = writer.transport
            if self.use_hiredis:
                # Replies are parsed in the transport's data callback (`_Replies`), not by a
                # task reading a StreamReader: a chunk of replies costs one callback.
                assert hiredis is not None
                streams = self._transport.get_protocol()
                parser = hiredis.Reader(encoding="utf-8", errors=self._encoding_errors)
                self._replies = _Replies(self, parser, self._pending, streams)
                self._transport.set_protocol(self._replies)
            else:
                self._reader_task = self._loop.create_task(
                    self._read_via_redis_py(connection), name="flowcraft-redis-multiplexer"
                )

    async def _read_via_redis_py(self, connection: Any) -> None:
        """Without hiredis: a task reads one reply at a time with redis-py's parser."""
        pending = self._pending
        try:
            while True:
                try:
                    reply = await connection.read_response(
                        timeout=math.inf, disconnect_on_error=False
                    )
                except ResponseError as error:  # an error reply: the connection is fine
                    reply = error
                future = pending.popleft()
                if future.done():
                    continue
                if isinstance(reply, ResponseError):
                    future.set_exception(reply)
                else:
                    future.set_result(reply)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._fail(exc)

    def _fail(self, exc: BaseException) -> None:
        """The connection is unusable: every waiting command fails (and may be sent again on a
        new connection, see `execute`)."""
        if not isinstance(exc, RedisConnectionError):
            exc = RedisConnectionError(f"multiplexed Redis connection failed: {exc!r}")
        writer, self._writer = self._writer, None
        connection, self._connection = self._connection, None
        task, self._reader_task = self._reader_task, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
        if self._replies is not None:
            self._replies.alive = False  # what its connection still delivers is not ours
            self._replies = None
        pending, self._pending = self._pending, deque()
        for future in pending:
            if not future.done():
                future.set_exception(exc)
        if writer is not None:
            writer.close()
        if connection is not None:
            connection._reader = connection._writer = None

    async def aclose(self) -> None:
        """Close the connection; commands still waiting fail with ConnectionError."""
        self._closed = True
        task = self._reader_task
        writer = self._writer
        self._fail(RedisConnectionError("the multiplexed connection is closed"))
        if task is not None:
            await asyncio.gather(task, return_exceptions=True)
        if writer is not None:
            try:
                await writer.wait_closed()
            except (OSError, RedisError):
                pass


class _Routed:
    """A registered script whose calls that name `via` as their client (and, if `unnamed`,
    those that name no client) run through `via.run_script`."""

    __slots__ = ("script", "unnamed", "via")

    def __init__(self, script: Any, via: Multiplexer, unnamed: bool) -> None:
        self.script = script
        self.via = via
        self.unnamed = unnamed

    def __call__(self, keys: Any = None, args: Any = None, client: Any = None) -> Any:
        if client is self.via or (client is None and self.unnamed):
            return self.via.run_script(self.script, keys or (), args or ())
        return self.script(keys=keys, args=args, client=client)


def route_scripts(
    commands: dict[str, Any], names: Iterable[str], via: Multiplexer, *, unnamed: bool = True
) -> None:
    """Run BullMQ's scripts `names` (of its per-connection `commands` table) through `via`:
    a BullMQ worker's per-job calls (moveToActive, moveToFinished) then share the pipelined
    connection with ours instead of each borrowing one from its pool. `unnamed=False`: only
    the calls that pass `via` as their client (a queue's adds, see queue.py) are routed,
    which skips redis-py's script wrapper; the others keep the queue's connection."""
    for name in names:
        script = commands.get(name)
        if script is not None and not isinstance(script, _Routed):
            commands[name] = _Routed(script, via, unnamed)


__all__ = ["Multiplexer", "pack", "pack_evalsha", "route_scripts"]
