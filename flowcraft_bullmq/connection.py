"""Redis connection settings for the adapter, and the clients built from them.

Every client built here has `decode_responses=True` (BullMQ silently reads empty job data
otherwise) and `socket_timeout=None`: redis-py 8's default of 5 s is shorter than BullMQ's
blocking `BZPOPMIN` (up to 10 s), which stalls idle workers (bullmq 3.4.4, bug B1).

A connection argument is a Redis URL, a `RedisSettings`, or a `redis.asyncio.Redis` the caller
owns. The caller's client is used as it is for our own commands and never closed; BullMQ gets
separate clients with the same server settings, because BullMQ closes the clients it is given.

Connection failures (docs/security.md): the client API tries once and raises the redis-py error
with a message naming the server, password masked (`named_error`); `flowcraft worker` retries an
unreachable server with backoff for `--connect-timeout` seconds, then exits 5
(`connect_retrying`). A wrong password or an untrusted certificate is never retried.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, TypeAlias
from urllib.parse import urlsplit, urlunsplit

import redis.asyncio as redis
from redis.asyncio.connection import BlockingConnectionPool, parse_url
from redis.exceptions import AuthenticationError, RedisError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

logger = logging.getLogger("flowcraft_bullmq.adapter")

DEFAULT_URL = "redis://localhost:6379/0"
#: Connections per pool the adapter builds, and how long a command waits for a free one.
DEFAULT_MAX_CONNECTIONS = 64
POOL_TIMEOUT_S = 60.0
#: How long `flowcraft worker` keeps trying an unreachable Redis at start (`--connect-timeout`),
#: and its backoff between attempts (doubling from the first to the cap).
WORKER_CONNECT_RETRY_S: Final = 30.0
_RETRY_FIRST_S: Final = 0.25
_RETRY_MAX_S: Final = 5.0

#: Pool keyword arguments that belong to one pool instance (or to redis-py's bookkeeping of
#: the original timeouts) and must not be copied into a new pool.
_POOL_PRIVATE = frozenset(
    {
        "maint_notifications_pool_handler",
        "maint_notifications_config",
        "himport_registry",
        "orig_host_address",
        "orig_socket_timeout",
        "orig_socket_connect_timeout",
    }
)


@dataclass(frozen=True, slots=True)
class RedisSettings:
    """Where Redis is: a URL (`redis://`, `rediss://`, `unix://`) plus optional overrides.

    Values given here win over the URL's. `options` passes any other redis-py connection
    keyword (e.g. `ssl_ca_certs`, `ssl_cert_reqs`, `socket_connect_timeout`).
    """

    url: str = DEFAULT_URL
    password: str | None = field(default=None, repr=False)
    username: str | None = None
    db: int | None = None
    max_connections: int | None = None
    options: Mapping[str, Any] = field(default_factory=dict)

    def connection_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of a `ConnectionPool` for these settings."""
        try:
            kwargs: dict[str, Any] = dict(parse_url(self.url))
        except ValueError as exc:
            raise ValueError(f"invalid Redis URL {redact_url(self.url)!r}: {exc}") from None
        kwargs.update(self.options)
        if self.password is not None:
            kwargs["password"] = self.password
        if self.username is not None:
            kwargs["username"] = self.username
        if self.db is not None:
            kwargs["db"] = self.db
        if self.max_connections is not None:
            kwargs["max_connections"] = self.max_connections
        return _enforce(kwargs)

    def describe(self) -> str:
        """The URL without its password, for logs and error messages."""
        return redact_url(self.url)


ConnectionLike: TypeAlias = "str | RedisSettings | redis.Redis"


def redact_url(url: str) -> str:
    """`redis://user:secret@host/0` -> `redis://user:***@host/0`."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable URL>"
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def _enforce(kwargs: dict[str, Any]) -> dict[str, Any]:
    kwargs["decode_responses"] = True
    kwargs["socket_timeout"] = None  # B1: never shorter than BullMQ's blocking commands
    return kwargs


class RedisConnector:
    """Turns one connection argument into the clients the adapter needs.

    `client()` is the client for our own commands (the caller's, if one was given);
    `new_client()` builds a fresh pooled client for BullMQ to own and close.
    """

    def __init__(self, connection: ConnectionLike) -> None:
        self._given: redis.Redis | None = None
        if isinstance(connection, str):
            connection = RedisSettings(url=connection)
        if isinstance(connection, RedisSettings):
            self._kwargs = connection.connection_kwargs()
            self._description = connection.describe()
        elif isinstance(connection, redis.Redis):
            pool = connection.connection_pool
            if not pool.connection_kwargs.get("decode_responses"):
                raise ValueError(
                    "the Redis client passed as `connection` must be created with "
                    "decode_responses=True (BullMQ reads empty job data otherwise)"
                )
            kwargs = {k: v for k, v in pool.connection_kwargs.items() if k not in _POOL_PRIVATE}
            kwargs["connection_class"] = pool.connection_class
            self._kwargs = _enforce(kwargs)
            self._given = connection
            self._description = _describe_kwargs(kwargs)
        else:
            raise TypeError(
                "connection must be a Redis URL, a RedisSettings or a redis.asyncio.Redis, "
                f"got {type(connection).__name__}"
            )

    @property
    def owns_client(self) -> bool:
        """False when the caller passed a client (the caller closes it)."""
        return self._given is None

    def describe(self) -> str:
        return self._description

    def client(self) -> redis.Redis:
        """The client for the coordination store and the client API."""
        return self._given if self._given is not None else self.new_client()

    def new_client(self) -> redis.Redis:
        """A new pooled client with the same server settings (closed with its pool).

        A blocking pool: when all connections are busy (many concurrent waits, a worker's
        full concurrency) a command waits for one instead of failing."""
        kwargs = dict(self._kwargs)
        kwargs.setdefault("max_connections", DEFAULT_MAX_CONNECTIONS)
        return redis.Redis.from_pool(BlockingConnectionPool(timeout=POOL_TIMEOUT_S, **kwargs))


def _describe_kwargs(kwargs: Mapping[str, Any]) -> str:
    if kwargs.get("path"):
        return f"unix://{kwargs['path']}?db={kwargs.get('db', 0)}"
    scheme = (
        "rediss" if "SSL" in getattr(kwargs.get("connection_class"), "__name__", "") else "redis"
    )
    host, port = kwargs.get("host", "localhost"), kwargs.get("port", 6379)
    return f"{scheme}://{host}:{port}/{kwargs.get('db', 0)}"


def named_error(exc: RedisError, description: str, note: str = "") -> RedisError:
    """`exc` again (same type, so callers can still tell a wrong password from a refused
    connection), its message naming the server: `Redis at redis://:***@h:6379/0: ...`."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    message = f"Redis at {description}: {text}{note}"
    try:
        named = type(exc)(message)
    except TypeError:  # an exception type with another constructor
        named = RedisConnectionError(message)
    named.__cause__ = exc
    return named


def is_retryable(exc: BaseException) -> bool:
    """A refused, reset or timed-out connection may heal; a refused password or certificate,
    or a command error, will not (retrying them only delays the error)."""
    if not isinstance(exc, RedisConnectionError | RedisTimeoutError):
        return False
    seen: BaseException | None = exc
    for _ in range(16):  # the chain of causes (bounded: a chain can loop)
        if seen is None:
            break
        if isinstance(seen, AuthenticationError | ssl.SSLError | ssl.CertificateError):
            return False
        seen = seen.__cause__ or seen.__context__
    return True


async def connect_retrying(
    connect: Callable[[], Awaitable[None]],
    description: str,
    *,
    retry_for_s: float = WORKER_CONNECT_RETRY_S,
) -> None:
    """`await connect()`, retrying unreachable-server errors with backoff for `retry_for_s`.

    Each retry logs a WARNING naming the server; the last error is raised with a note saying
    how long it was retried. Other errors (authentication, TLS) are raised at once."""
    deadline = time.monotonic() + retry_for_s
    delay = _RETRY_FIRST_S
    while True:
        try:
            await connect()
            return
        except RedisError as exc:
            if not is_retryable(exc):
                raise
            left = deadline - time.monotonic()
            if left <= 0:
                if retry_for_s <= 0:
                    raise
                note = f" (still unreachable after retrying for {retry_for_s:g}s)"
                raise named_error(_original(exc), description, note) from exc
            wait = min(delay, left)
            logger.warning(
                "Redis at %s is unreachable (%s); retrying in %.2gs (giving up %gs after start)",
                description,
                " ".join(str(_original(exc)).split()),
                wait,
                retry_for_s,
            )
            await asyncio.sleep(wait)
            delay = min(delay * 2, _RETRY_MAX_S)


def _original(exc: RedisError) -> RedisError:
    """The redis-py error under `named_error`'s wrapping (so notes do not repeat the URL)."""
    cause = exc.__cause__
    return cause if isinstance(cause, RedisError) else exc


async def check_eviction_policy(client: redis.Redis, *, where: str = "") -> str | None:
    """Log a WARNING unless `maxmemory-policy` is `noeviction`; returns the policy if known.

    Any other policy lets Redis evict live run state and BullMQ jobs under memory pressure,
    which silently loses runs. Managed services may refuse CONFIG; INFO is the fallback.
    """
    policy: str | None = None
    try:
        reply = await client.config_get("maxmemory-policy")
        policy = reply.get("maxmemory-policy") if isinstance(reply, Mapping) else None
    except ResponseError:
        try:
            info = await client.info("memory")
            value = info.get("maxmemory_policy")
            policy = str(value) if value is not None else None
        except RedisError:
            policy = None
    if policy is None:
        logger.warning(
            "could not read Redis maxmemory-policy%s; it must be 'noeviction', or Redis may "
            "evict run state and jobs",
            f" ({where})" if where else "",
        )
    elif policy != "noeviction":
        logger.warning(
            "Redis maxmemory-policy is %r%s: it must be 'noeviction', or Redis may evict run "
            "state and queued jobs under memory pressure and runs will be lost",
            policy,
            f" ({where})" if where else "",
        )
    return policy


__all__ = [
    "DEFAULT_URL",
    "WORKER_CONNECT_RETRY_S",
    "ConnectionLike",
    "RedisConnector",
    "RedisSettings",
    "check_eviction_policy",
    "connect_retrying",
    "is_retryable",
    "named_error",
    "redact_url",
]
