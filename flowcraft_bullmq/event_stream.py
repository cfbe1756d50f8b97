"""Events across processes: an opt-in Redis Stream per run, `P:{R}:events`.

A run's node events happen in whichever worker ran the node, and reach only that process's bus
(SPEC 7). With `BullMQAdapter(event_stream=True)` every process also appends the events it
emits to the run's stream (`XADD ... MAXLEN ~ event_stream_maxlen`), and any process can follow
them with `adapter.events(run_id)`.

* **Cost.** One script call per event, in the process that emits it; nothing when off.
* **Lifetime.** Each append gives the stream the run's remaining TTL once the run has one,
  else `state_ttl_s` (0: none), so the stream never outlives a finished run by more than
  `state_ttl_s` after its last event. An append to a run that no longer exists is dropped.
* **Format.** Each entry has `type` (the event type) and `data` (JSON of the event's fields;
  an exception in `node:retry` and `node:fallback` is `{"type", "message"}` and comes back as
  `RemoteError`).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Mapping
from datetime import datetime
from typing import Any, Final

from redis.asyncio import Redis

from flowcraft_core import events as ev
from flowcraft_core.distributed.protocol import FINISHED_STATUSES
from flowcraft_core.results import ErrorRecord, NodeResult

from .codec import decode, encode
from .keys import RunKeys

#: KEYS[1] the stream, KEYS[2] the run's meta; ARGV: maxlen, ttl_s, type, data.
_APPEND: Final = """
if redis.call('EXISTS', KEYS[2]) == 0 then
  return 0
end
redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'type', ARGV[3], 'data', ARGV[4])
local ttl = redis.call('PTTL', KEYS[2])
if ttl > 0 then
  redis.call('PEXPIRE', KEYS[1], ttl)
elseif tonumber(ARGV[2]) > 0 then
  redis.call('EXPIRE', KEYS[1], ARGV[2])
end
return 1
"""

#: Event classes by type.
_CLASSES: Final[dict[str, type[ev.FlowEvent]]] = {
    cls.type: cls
    for cls in vars(ev).values()
    if isinstance(cls, type) and issubclass(cls, ev.FlowEvent) and cls is not ev.FlowEvent
}


class RemoteError(Exception):
    """Stands for an exception raised in another process (`node:retry`, `node:fallback`)."""

    def __init__(self, type_name: str, message: str) -> None:
        super().__init__(message)
        self.type_name = type_name


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, ErrorRecord):
        return value.to_json()
    if isinstance(value, NodeResult):
        return {"output": value.output, "action": value.action}
    if isinstance(value, BaseException):
        name = value.type_name if isinstance(value, RemoteError) else type(value).__name__
        return {"type": name, "message": str(value)}
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value


def event_data(event: ev.FlowEvent) -> dict[str, Any]:
    """The JSON fields of an event."""
    return {f.name: _plain(getattr(event, f.name)) for f in dataclasses.fields(event)}


def _field(cls: type[ev.FlowEvent], name: str, value: Any) -> Any:
    if name == "timestamp":
        return datetime.fromisoformat(value)
    if name == "error":
        if cls is ev.NodeError:
            return ErrorRecord.from_json(value)
        return RemoteError(str(value.get("type")), str(value.get("message")))
    if name == "result":
        return NodeResult(output=value.get("output"), action=value.get("action"))
    if name == "errors":
        return tuple(ErrorRecord.from_json(e) for e in value)
    if name in ("iteration", "remaining"):
        return tuple(value)
    return value


def event_of(type_name: str, data: Mapping[str, Any]) -> ev.FlowEvent:
    """The event an entry holds (ValueError for an unknown type)."""
    cls = _CLASSES.get(type_name)
    if cls is None:
        raise ValueError(f"unknown event type {type_name!r}")
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: _field(cls, k, v) for k, v in data.items() if k in names})


class RunEventStream:
    """An event bus that appends each event to its run's stream (once `client` is set)."""

    def __init__(self, prefix: str, *, maxlen: int, ttl_s: int) -> None:
        self.prefix = prefix
        self.maxlen = maxlen
        self.ttl_s = ttl_s
        self.client: Redis | None = None
        self._script: Any = None

    def attach(self, client: Redis) -> None:
        self.client = client
        self._script = client.register_script(_APPEND)

    async def emit(self, event: ev.FlowEvent) -> None:
        if self._script is None:
            return
        keys = RunKeys.of(self.prefix, event.run_id)
        data = encode(event_data(event)).decode()
        args = [self.maxlen, self.ttl_s, event.type, data]
        await self._script(keys=[keys.events, keys.meta], args=args)


def _entries(reply: Any, key: str) -> list[Any]:
    """The entries of an XREAD reply (RESP2: [[key, entries]]; RESP3: {key: [entries]})."""
    if not reply:
        return []
    if isinstance(reply, dict):
        return list(reply.get(key, [[]])[0])
    return list(reply[0][1])


async def follow(
    client: Redis,
    prefix: str,
    run_id: str,
    status: Any,
    *,
    since: str = "0-0",
    block_s: float = 0.5,
    settle_s: float = 0.5,
) -> AsyncIterator[ev.FlowEvent]:
    """The run's events from its stream, oldest first, as they come. Ends once the run has
    finished and no event came for `settle_s` (a stalled job's `node:error` is appended
    after the failure it applies, which may end the run). `status(run_id)` reads the status
    (RunNotFoundError for an unknown run)."""
    key = RunKeys.of(prefix, run_id).events
    last = since
    while True:
        finished = await status(run_id) in FINISHED_STATUSES
        wait_s = settle_s if finished else block_s
        reply = await client.xread({key: last}, count=500, block=max(1, int(wait_s * 1000)))
        entries = _entries(reply, key)
        for entry_id, fields in entries:
            last = entry_id
            yield event_of(fields["type"], decode(fields["data"]))
        if finished and not entries:
            return
        await asyncio.sleep(0)


__all__ = ["RemoteError", "RunEventStream", "event_data", "event_of", "follow"]
