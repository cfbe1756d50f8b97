"""Run context: the in-memory store, per-attempt write buffers and the views node code gets.

Writes are buffered per attempt and committed atomically with the node's output (SPEC 2.5); a
failed or timed-out attempt's buffer is simply dropped. Node code sees `AsyncContextView`
(`ctx.context`) and, from a worker thread, its blocking twin `ctx.context.sync`.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from .errors import NodeCancelledError, ReservedKeyError, SerializationError
from .reserved import is_reserved_key
from .serializer import check_json


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "<missing>"


MISSING: Any = _Missing()
DELETED: Any = _Missing()


class ContextStore(Protocol):
    """Where committed context lives. In-process: a dict; distributed: a Redis hash."""

    async def get(self, key: str) -> Any:
        """The value, or MISSING."""
        ...

    async def snapshot(self) -> dict[str, Any]: ...

    async def commit(self, ops: Iterable[tuple[str, Any]]) -> None:
        """Apply (key, value | DELETED) pairs in order, as one unit."""
        ...


class InMemoryContextStore:
    """The committed context of one in-process run."""

    __slots__ = ("data",)

    def __init__(self, data: dict[str, Any] | None = None) -> None:
        self.data: dict[str, Any] = data if data is not None else {}

    async def get(self, key: str) -> Any:
        return self.data.get(key, MISSING)

    def peek(self, key: str) -> Any:
        """Synchronous read, safe from threads (a dict lookup under the GIL)."""
        return self.data.get(key, MISSING)

    async def snapshot(self) -> dict[str, Any]:
        return dict(self.data)

    async def commit(self, ops: Iterable[tuple[str, Any]]) -> None:
        self.apply(ops)

    def apply(self, ops: Iterable[tuple[str, Any]]) -> None:
        data = self.data
        for key, value in ops:
            if value is DELETED:
                data.pop(key, None)
            else:
                data[key] = value


def _check_key(key: object, node_id: str | None) -> str:
    if not isinstance(key, str) or not key:
        raise SerializationError(f"context key {key!r} must be a non-empty string", node_id=node_id)
    if is_reserved_key(key):
        raise ReservedKeyError(key, node_id=node_id)
    return key


class WriteBuffer:
    """The writes of one attempt; discarded unless the attempt succeeds.

    `closed` is set when the attempt was abandoned (timeout, cancellation): a worker thread
    that keeps running must not touch the run any more.
    """

    __slots__ = ("closed", "node_id", "ops")

    def __init__(self, node_id: str | None) -> None:
        self.node_id = node_id
        self.ops: dict[str, Any] = {}
        self.closed = False

    def ensure_open(self) -> None:
        if self.closed:
            raise NodeCancelledError(f"node {self.node_id!r}: attempt was abandoned")

    def set(self, key: str, value: Any) -> None:
        self.ensure_open()
        _check_key(key, self.node_id)
        value = check_json(value, node_id=self.node_id, key=key)
        self.ops.pop(key, None)  # keep order of last write
        self.ops[key] = value

    def delete(self, key: str) -> None:
        self.ensure_open()
        _check_key(key, self.node_id)
        self.ops.pop(key, None)
        self.ops[key] = DELETED

    def lookup(self, key: str) -> Any:
        """The buffered value, DELETED, or MISSING when this attempt did not touch `key`."""
        return self.ops.get(key, MISSING)


def _validate_patch(ops: Iterable[Mapping[str, Any]]) -> list[tuple[str, str, Any]]:
    checked: list[tuple[str, str, Any]] = []
    for index, op in enumerate(ops):
        if not isinstance(op, Mapping):
            raise ValueError(f"patch[{index}]: must be a mapping")
        kind = op.get("op")
        if kind not in ("set", "delete"):
            raise ValueError(f"patch[{index}].op: must be 'set' or 'delete', got {kind!r}")
        if "key" not in op:
            raise ValueError(f"patch[{index}].key: missing")
        if kind == "set" and "value" not in op:
            raise ValueError(f"patch[{index}].value: missing")
        checked.append((kind, op["key"], op.get("value")))
    return checked


class SyncContextView:
    """Blocking view for node code running in a worker thread."""

    __slots__ = ("_async", "_loop_thread")

    def __init__(self, view: AsyncContextView, loop_thread: int) -> None:
        self._async = view
        self._loop_thread = loop_thread

    def _guard(self) -> None:
        if threading.get_ident() == self._loop_thread:
            raise RuntimeError(
                "ctx.context.sync blocks; use the async methods of ctx.context on the event loop"
            )
        self._async.buffer.ensure_open()

    def _read(self, key: str) -> Any:
        self._guard()
        view = self._async
        value = view.buffer.lookup(key)
        if value is not MISSING:
            return value
        store = view.store
        peek = getattr(store, "peek", None)
        if peek is not None:
            return peek(key)
        return asyncio.run_coroutine_threadsafe(store.get(key), view.loop).result()

    def get(self, key: str, default: Any = None) -> Any:
        value = self._read(key)
        return default if value is MISSING or value is DELETED else value

    def has(self, key: str) -> bool:
        value = self._read(key)
        return value is not MISSING and value is not DELETED

    def set(self, key: str, value: Any) -> None:
        self._guard()
        self._async.buffer.set(key, value)

    def delete(self, key: str) -> bool:
        existed = self.has(key)
        self._async.buffer.delete(key)
        return existed

    def patch(self, ops: Iterable[Mapping[str, Any]]) -> None:
        self._guard()
        self._async.apply_patch(ops)

    def to_dict(self) -> dict[str, Any]:
        self._guard()
        view = self._async
        return asyncio.run_coroutine_threadsafe(view.to_dict(), view.loop).result()


class AsyncContextView:
    """`ctx.context`: committed context plus this attempt's own writes."""

    __slots__ = ("_loop_thread", "_sync", "buffer", "loop", "store")

    def __init__(
        self,
        store: ContextStore,
        buffer: WriteBuffer,
        loop: asyncio.AbstractEventLoop,
        loop_thread: int | None = None,
    ) -> None:
        self.store = store
        self.buffer = buffer
        self.loop = loop
        self._sync: SyncContextView | None = None
        # Built on the loop thread (`loop_thread`, if the caller knows it already); the sync
        # view refuses to block this thread.
        self._loop_thread = loop_thread if loop_thread is not None else threading.get_ident()

    async def _read(self, key: str) -> Any:
        value = self.buffer.lookup(key)
        if value is MISSING:
            value = await self.store.get(key)
        return value

    async def get(self, key: str, default: Any = None) -> Any:
        self.buffer.ensure_open()
        value = await self._read(key)
        return default if value is MISSING or value is DELETED else value

    async def has(self, key: str) -> bool:
        self.buffer.ensure_open()
        value = await self._read(key)
        return value is not MISSING and value is not DELETED

    async def set(self, key: str, value: Any) -> None:
        self.buffer.set(key, value)

    async def delete(self, key: str) -> bool:
        existed = await self.has(key)
        self.buffer.delete(key)
        return existed

    async def patch(self, ops: Iterable[Mapping[str, Any]]) -> None:
        self.apply_patch(ops)

    def apply_patch(self, ops: Iterable[Mapping[str, Any]]) -> None:
        """Validate every op first, so a bad patch changes nothing."""
        self.buffer.ensure_open()
        checked = _validate_patch(ops)
        staged = WriteBuffer(self.buffer.node_id)
        for kind, key, value in checked:
            if kind == "set":
                staged.set(key, value)
            else:
                staged.delete(key)
        for key, value in staged.ops.items():
            self.buffer.ops.pop(key, None)
            self.buffer.ops[key] = value

    async def to_dict(self) -> dict[str, Any]:
        self.buffer.ensure_open()
        data = await self.store.snapshot()
        for key, value in self.buffer.ops.items():
            if value is DELETED:
                data.pop(key, None)
            else:
                data[key] = value
        return data

    @property
    def sync(self) -> SyncContextView:
        if self._sync is None:
            self._sync = SyncContextView(self, self._loop_thread)
        return self._sync


__all__ = [
    "DELETED",
    "MISSING",
    "AsyncContextView",
    "ContextStore",
    "InMemoryContextStore",
    "SyncContextView",
    "WriteBuffer",
]
