"""Helpers for the reconciler tests: adapters that are always closed, counted node calls, and
ways to lose work the way a dying worker or a broken queue would."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from typing import Any

from bullmq_processes import adapter as adapter  # re-exported for the tests here
from distributed.test_memory_parity import make_registry
from redis.asyncio import Redis

from flowcraft_bullmq import BullMQAdapter, RedisCoordinationStore
from flowcraft_core import NodeRegistry
from flowcraft_core.distributed import Job
from flowcraft_core.distributed.protocol import Applied, Transition


def counted_registry() -> tuple[NodeRegistry, Counter[str]]:
    """The parity suite's implementations, counting calls per activation id."""
    calls: Counter[str] = Counter()
    registry = NodeRegistry()
    for name, impl in make_registry().items():

        def wrap(impl: Any) -> Any:
            if asyncio.iscoroutinefunction(impl):

                async def counted_async(ctx: Any) -> Any:
                    calls[ctx.activation_id] += 1
                    return await impl(ctx)

                return counted_async

            def counted(ctx: Any) -> Any:
                calls[ctx.activation_id] += 1
                return impl(ctx)

            return counted

        registry.register(name, wrap(impl))
    return registry, calls


async def age(client: Redis, prefix: str, run_id: str, seconds: float = 3600) -> None:
    """Make the run look idle for `seconds` (progressAt and createdAt moved back)."""
    now_s, now_us = await client.time()
    then = f"{now_s + now_us / 1e6 - seconds:.6f}"
    await client.hset(
        f"{prefix}:{{{run_id}}}:meta", mapping={"progressAt": then, "createdAt": then}
    )


class Crash(Exception):
    """The worker died right after a `complete`: the job and its follow-ups are lost."""


class _DyingStore:
    """The worker's store, except that the first `complete` whose answer matches `when` is
    applied, and then the worker dies (`Crash`)."""

    def __init__(self, inner: Any, when: Callable[[Applied], bool]) -> None:
        self.inner = inner
        self.when = when
        self.crashed = asyncio.Event()
        self.lost: Applied | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def complete(self, run_id: str, transition: Transition) -> Applied:
        applied = await self.inner.complete(run_id, transition)
        if not self.crashed.is_set() and self.when(applied):
            self.lost = applied
            self.crashed.set()
            raise Crash
        return applied


def without_composed_adds(a: BullMQAdapter) -> None:
    """The worker adds every ready job itself, after `complete` (composed.py adds the plain
    ones inside it, where no crash can come between): the gap these tests crash in."""
    store = a._store.store  # type: ignore[union-attr]
    assert isinstance(store, RedisCoordinationStore)
    store.adds = None


def lose_follow_ups_once(a: BullMQAdapter, when: Callable[[Applied], bool]) -> _DyingStore:
    """Make `a`'s worker die once right after a matching `complete`, its job acknowledged (as if
    BullMQ never saw the job again): only the frontier remembers what was lost."""
    worker = a._worker
    assert worker is not None
    without_composed_adds(a)
    dying = _DyingStore(worker.store, when)
    worker.store = dying
    handle = worker.handle

    async def handle_or_die(job: Job, **options: Any) -> None:
        try:
            await handle(job, **options)
        except Crash:
            pass

    worker.handle = handle_or_die  # type: ignore[method-assign]
    return dying
