"""Idempotency keys (SPEC 9.2, 9.6) and the store wrapper that expires them with their run.

`P:idem:<key>` lives outside the run's hash slot, so the run's final script cannot give it the
run's TTL; `FinishHook` does it right after a run finishes, is cancelled or fails.
"""

from __future__ import annotations

import logging
from collections.abc import Coroutine, Mapping, Sequence
from typing import Any, cast

import redis.asyncio as redis

from flowcraft_core.distributed import CoordinationStore
from flowcraft_core.distributed.frontier import FrontierEntry
from flowcraft_core.distributed.protocol import (
    DEFAULT_ROUTE,
    FINISHED_STATUSES,
    Applied,
    Followup,
    Loaded,
    Route,
)
from flowcraft_core.distributed.protocol import Transition as _Transition

from .multiplex import Multiplexer

logger = logging.getLogger("flowcraft_bullmq.adapter")


def idempotency_redis_key(prefix: str, key: str) -> str:
    """`P:idem:<key>` -> run id (SPEC 9.6)."""
    return f"{prefix}:idem:{key}"


def run_idempotency_key(prefix: str, run_id: str) -> str:
    """`P:{R}:idem` -> the run's idempotency key name, so its TTL can follow the run's."""
    return f"{prefix}:{{{run_id}}}:idem"


class FinishHook:
    """The coordination store, plus: when a run finishes, its idempotency key gets the run's TTL.

    The idempotency key lives outside the run's hash slot, so the store's final script cannot
    expire it; this runs right after (SPEC 9.6). One GET per finished run.
    """

    def __init__(
        self,
        store: CoordinationStore,
        client: redis.Redis,
        prefix: str,
        ttl_s: int,
        via: Multiplexer | None = None,
    ) -> None:
        self.store = store
        self.client = client
        #: The worker's pipelined connection, for the GET every finished run costs.
        self.via = via
        self.prefix = prefix
        self.ttl_s = ttl_s

    async def finished(self, run_id: str) -> None:
        if self.ttl_s <= 0:
            return
        try:
            reverse = run_idempotency_key(self.prefix, run_id)
            key = await (
                self.client.get(reverse) if self.via is None else self.via.execute("GET", reverse)
            )
            if key is None:
                return
            async with self.client.pipeline(transaction=False) as pipe:
                pipe.expire(str(key), self.ttl_s)
                pipe.expire(reverse, self.ttl_s)
                await pipe.execute()
        except Exception:  # the run is done either way; a leaked key is only a leak
            logger.warning("could not set the TTL of run %s's idempotency key", run_id)

    async def create_run(
        self,
        run_id: str,
        *,
        blueprint_id: str,
        pin: str,
        context: Mapping[str, Any],
        entries: Sequence[Followup],
        counters: Sequence[str] = (),
        parent: tuple[str, str, tuple[int, ...]] | None = None,
        route: Route = DEFAULT_ROUTE,
        start_at: float | None = None,
    ) -> None:
        await self.store.create_run(
            run_id,
            blueprint_id=blueprint_id,
            pin=pin,
            context=context,
            entries=entries,
            counters=counters,
            parent=parent,
            route=route,
            start_at=start_at,
        )

    def load(
        self, run_id: str, akey: str, keys: Sequence[str] | None
    ) -> Coroutine[Any, Any, Loaded]:
        """The store's own coroutine, not one awaiting it: a frame less on every job."""
        return self.store.load(run_id, akey, keys)

    async def complete(self, run_id: str, transition: _Transition) -> Applied:
        applied = await self.store.complete(run_id, transition)
        if applied.finished in FINISHED_STATUSES and not applied.replay and not applied.ignored:
            await self.finished(run_id)
        return applied

    async def end_compensation(self, run_id: str) -> bool:
        ended = bool(await cast(Any, self.store).end_compensation(run_id))
        if ended:
            await self.finished(run_id)
        return ended

    def __getattr__(self, name: str) -> Any:
        """The store's other methods (compensation, run control), unchanged."""
        if name == "store":  # not set yet (copy, pickle): no recursion
            raise AttributeError(name)
        return getattr(self.store, name)

    def get(self, run_id: str, key: str) -> Coroutine[Any, Any, Any]:
        return self.store.get(run_id, key)

    async def snapshot(self, run_id: str) -> dict[str, Any]:
        return await self.store.snapshot(run_id)

    async def commit(self, run_id: str, ops: Sequence[tuple[str, Any, bool]]) -> None:
        await self.store.commit(run_id, ops)

    async def status(self, run_id: str) -> str:
        return await self.store.status(run_id)

    async def result(
        self, run_id: str
    ) -> tuple[str, dict[str, Any], list[dict[str, Any]], dict[str, dict[str, Any]]]:
        return await self.store.result(run_id)

    async def resume_waiting(
        self, run_id: str, akey: str, output: Any = None, action: str | None = None
    ) -> bool:
        return await self.store.resume_waiting(run_id, akey, output, action)

    async def buffer_resume(
        self, run_id: str, node_id: str | None, output: Any, action: str | None
    ) -> str:
        return await self.store.buffer_resume(run_id, node_id, output, action)

    async def rearm(self, run_id: str, akey: str, episode: int) -> bool:
        return await self.store.rearm(run_id, akey, episode)

    async def frontier(self, run_id: str) -> list[FrontierEntry]:
        return await self.store.frontier(run_id)

    async def cancel(self, run_id: str) -> bool:
        cancelled = await self.store.cancel(run_id)
        if cancelled:
            await self.finished(run_id)
        return cancelled

    async def fail_run(self, run_id: str, error: dict[str, Any]) -> None:
        await self.store.fail_run(run_id, error)
        await self.finished(run_id)


__all__ = ["FinishHook", "idempotency_redis_key", "run_idempotency_key"]
