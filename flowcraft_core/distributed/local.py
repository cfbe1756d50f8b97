"""`LocalCluster`: the distributed protocol on the in-memory store and queue, in one process.

It exercises exactly the code a BullMQ worker runs (load → execute → complete → follow-ups),
with several concurrent consumers, so the protocol is tested without Redis.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ..blueprint.model import Blueprint
from ..expressions import Evaluator
from ..ids import new_run_id, validate_run_id
from ..results import WorkflowResult
from ..runtime.plan import get_plan
from . import durable
from .control import check_retryable
from .durable import NotDue
from .events import send_event
from .frontier import split
from .memory import InMemoryCoordinationStore, InMemoryJobQueue
from .protocol import WAKE, Job, Route
from .scheduling import check_delay, check_priority
from .worker import DistributedWorker


class LocalCluster:
    """Start runs, drain the queue with `workers` consumers, read results."""

    def __init__(
        self,
        *,
        registry: Mapping[str, Any] | None = None,
        blueprints: Mapping[str, Blueprint | Mapping[str, Any]] | Iterable[Blueprint],
        workers: int = 4,
        dependencies: Mapping[str, Any] | None = None,
        event_bus: Any = None,
        middleware: Sequence[Any] = (),
        evaluator: Evaluator | None = None,
        max_loop_iterations: int = 10_000,
    ) -> None:
        self.store = InMemoryCoordinationStore()
        self.queue = InMemoryJobQueue()
        self.workers = workers
        self.worker = DistributedWorker(
            store=self.store,
            queue=self.queue,
            registry=registry,
            blueprints=blueprints,
            dependencies=dependencies,
            event_bus=event_bus,
            middleware=middleware,
            evaluator=evaluator,
            max_loop_iterations=max_loop_iterations,
        )
        self.runtime = self.worker.runtime
        self._busy = 0

    async def start_run(
        self,
        blueprint_id: str | Blueprint,
        initial_context: Mapping[str, Any] | str | None = None,
        *,
        run_id: str | None = None,
        priority: int = 0,
        delay: float = 0,
        compensate: bool = True,
    ) -> str:
        """Like `BullMQAdapter.start_run`; `priority` is recorded (this queue is FIFO) and
        `delay` (seconds) delays the entry jobs."""
        route = Route(priority=check_priority(priority))
        delay_ms = check_delay(delay)
        bp = self.runtime.resolve_blueprint(blueprint_id)
        data = self.runtime.initial_data(initial_context)
        run_id = validate_run_id(run_id) if run_id is not None else new_run_id()
        entries = await self.worker.create_run(
            bp,
            data,
            run_id,
            route=route,
            start_at=time.time() + delay_ms / 1000 if delay_ms else None,
        )
        assert entries is not None
        if not compensate:
            await self.store.set_options(run_id, {"noCompensate": "1"})
        await self.worker.launch(bp, run_id, entries, route=route, delay_ms=delay_ms)
        return run_id

    async def drain(self) -> None:
        """Process jobs until the queue is empty, no delayed (wake) job is pending and every
        consumer is idle."""
        queue = self.queue.queue

        async def consume() -> None:
            while True:
                try:
                    job = queue.get_nowait()
                except asyncio.QueueEmpty:
                    if self._busy == 0:
                        if self.queue.delayed == 0:
                            return
                        await asyncio.sleep(0.002)  # a sleep's wake job is not due yet
                        continue
                    await asyncio.sleep(0.0005)
                    continue
                self._busy += 1
                try:
                    await self.worker.handle(job)
                except NotDue as early:
                    self.queue.later(job, early.delay_ms)
                finally:
                    self._busy -= 1

        await asyncio.gather(*(consume() for _ in range(self.workers)))

    async def result(self, run_id: str) -> WorkflowResult:
        return await self.worker.result(run_id)

    async def run(
        self,
        blueprint_id: str | Blueprint,
        initial_context: Mapping[str, Any] | str | None = None,
        *,
        run_id: str | None = None,
        compensate: bool = True,
    ) -> WorkflowResult:
        run_id = await self.start_run(
            blueprint_id, initial_context, run_id=run_id, compensate=compensate
        )
        await self.drain()
        return await self.result(run_id)

    async def resume_with_action(
        self,
        run_id: str,
        action: str | None = None,
        output: Any = None,
        *,
        node_id: str | Sequence[str] | None = None,
    ) -> WorkflowResult:
        """`resume`, then drain; the run's result."""
        await self.resume(run_id, action, output, node_id=node_id)
        await self.drain()
        return await self.result(run_id)

    async def resume(
        self,
        run_id: str,
        action: str | None = None,
        output: Any = None,
        *,
        node_id: str | Sequence[str] | None = None,
    ) -> str:
        """`"resumed"` (its resume job is queued) or `"buffered"` (SPEC 9.7), without draining.

        A finished or cancelled run: RunNotAwaitingError. A `node_id` that is not a wait,
        webhook or subflow node: ValueError."""
        return await self.worker.resume(run_id, node_id=node_id, output=output, action=action)

    async def send_event(self, run_id: str, name: str, payload: Any = None) -> str:
        """Deliver a named event (docs/events.md): `"resumed"` or `"buffered"`."""
        return await send_event(self.worker, run_id, name, payload)

    async def cancel_run(self, run_id: str) -> bool:
        """Cancel the run and its subflow children (SPEC 9.8)."""
        return await self.worker.cancel(run_id)

    async def pause_run(self, run_id: str) -> bool:
        """Pause a running or awaiting run: jobs taken while paused are acknowledged without
        running and enqueued again by `resume_run` (docs/run-control.md)."""
        return await self.store.pause(run_id)

    async def resume_run(self, run_id: str) -> bool:
        """Unpause a paused run and enqueue what it is owed; False if it is not paused."""
        if not await self.store.unpause(run_id):
            return False
        await self._enqueue_owed(run_id)
        return True

    async def retry_run(self, run_id: str) -> str:
        """Run a failed run's failed nodes again and what follows them (same run id)."""
        _, _, errors, _ = await self.store.result(run_id)
        check_retryable(await durable.run_blueprint(self.worker, run_id), errors)
        await self.store.retry(run_id)
        await self._enqueue_owed(run_id)
        return run_id

    async def _enqueue_owed(self, run_id: str) -> None:
        jobs, pending = split(run_id, await self.store.frontier(run_id))
        for job in jobs:  # acknowledged while paused, or failed: their ids are free again
            self.queue.seen.discard(job.job_id)
            self.queue.seen.discard(Job(run_id, job.node_id, job.iteration, kind=WAKE).job_id)
        await self.queue.add_bulk(jobs)
        if pending.skipped or pending.loop_ends:
            bp = self.runtime.blueprints[self.store.runs[run_id].blueprint_id]
            await self.worker.follow(get_plan(bp, self.runtime.evaluator), run_id, pending)


__all__ = ["LocalCluster"]
