"""`BullMQAdapter._watched`: the handler runs in the processor's task while a timer checks the
run; a run that ended cancels the node (and only the node), a failed check raises, and the
processor's own cancellation (a forced close) still goes through. No Redis: a stub worker and
store stand in."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from flowcraft_bullmq import BullMQAdapter
from flowcraft_core.distributed import Job

JOB = Job("r1", "n1", ())


class _Store:
    def __init__(self, statuses: list[str | Exception]) -> None:
        self.statuses = statuses
        self.checks = 0

    async def status(self, run_id: str) -> str:
        self.checks += 1
        status = self.statuses[min(self.checks, len(self.statuses)) - 1]
        if isinstance(status, Exception):
            raise status
        return status


class _Worker:
    def __init__(self, body: Callable[[], Awaitable[None]]) -> None:
        self.body = body

    async def handle(self, job: Job, *, attempt: int | None = None) -> None:
        await self.body()


def _adapter(body: Callable[[], Awaitable[None]], statuses: list[str | Exception]) -> Any:
    a: Any = BullMQAdapter(connection="redis://127.0.0.1:1/0", blueprints=[])
    a.lock_duration_s = 0.1  # a check every 0.05 s
    a._worker = _Worker(body)
    a._store = _Store(statuses)
    return a


def _long_node(interrupted: list[str], *, swallow: bool = False) -> Callable[[], Awaitable[None]]:
    """A node body that sleeps 10 s; its cancellation is recorded in `interrupted`, then goes
    on (re-raised), or ends there with `swallow` (a node that ignores the cancel)."""

    async def body() -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            interrupted.append("node")
            if not swallow:
                raise

    return body


async def test_a_short_job_is_never_checked() -> None:
    done: list[str] = []

    async def body() -> None:
        done.append("ran")

    a = _adapter(body, ["running"])
    assert await a._watched(JOB) is None
    await asyncio.sleep(0.12)
    assert done == ["ran"] and a._store.checks == 0


async def test_a_run_that_ended_cancels_the_node_not_the_processor() -> None:
    interrupted: list[str] = []
    a = _adapter(_long_node(interrupted), ["running", "running", "cancelled"])
    assert await a._watched(JOB) is None
    assert interrupted == ["node"] and a._store.checks == 3
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0
    await asyncio.sleep(0)  # the processor goes on (acknowledges the job)


async def test_a_node_that_swallows_the_cancel_still_ends_quietly() -> None:
    interrupted: list[str] = []
    a = _adapter(_long_node(interrupted, swallow=True), ["completed"])
    assert await a._watched(JOB) is None
    assert interrupted == ["node"]
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0


async def test_a_failed_check_cancels_the_node_and_raises() -> None:
    async def body() -> None:
        await asyncio.sleep(10)

    a = _adapter(body, [ConnectionError("no Redis")])
    with pytest.raises(ConnectionError, match="no Redis"):
        await a._watched(JOB)


async def test_cancelling_the_processor_cancels_the_node() -> None:
    interrupted: list[str] = []
    a = _adapter(_long_node(interrupted), ["running"])
    processor = asyncio.ensure_future(a._watched(JOB))
    await asyncio.sleep(0.12)
    processor.cancel()
    with pytest.raises(asyncio.CancelledError):
        await processor
    assert interrupted == ["node"]
    await asyncio.sleep(0.12)
    checks = a._store.checks
    await asyncio.sleep(0.12)
    assert a._store.checks == checks  # no check after the job ended
