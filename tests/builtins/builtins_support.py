"""Shared helpers for the built-in node tests (imported by the test modules)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import runtime_support
from runtime_support import NODE_EVENTS, InFlight
from runtime_support import Timer as Timer
from runtime_support import echo as echo
from runtime_support import make_runtime as make_runtime
from runtime_support import of_type as of_type

from flowcraft_core import CancellationToken, InMemoryEventBus, WorkflowResult

ENGINE_AWAIT_KEYS = ("_awaitingNodeIds", "_awaitingDetails", "_runState")

#: The batch tests' name for the in-flight gauge.
Concurrency = InFlight


def trace(bus: InMemoryEventBus, types: Iterable[str] = NODE_EVENTS) -> list[tuple[Any, ...]]:
    """(type, node_id, iteration[, reason]) for the node events, in emission order."""
    return runtime_support.trace(bus, types, iteration=True)


def ran(*node_ids: str) -> list[tuple[Any, ...]]:
    """The trace of nodes that started and finished one after the other, outside loops."""
    return [(kind, node_id, ()) for node_id in node_ids for kind in ("node:start", "node:finish")]


def started(bus: InMemoryEventBus, node_id: str) -> list[tuple[int, ...]]:
    return [tuple(e.iteration) for e in of_type(bus, "node:start") if e.node_id == node_id]


def assert_not_awaiting(result: WorkflowResult) -> None:
    for key in ENGINE_AWAIT_KEYS:
        assert key not in result.context, key


def assert_awaiting(result: WorkflowResult) -> None:
    for key in ENGINE_AWAIT_KEYS:
        assert key in result.context, key


async def cancel_midway(
    start: Callable[[CancellationToken], Awaitable[WorkflowResult]],
    *,
    after_s: float,
    while_running: Callable[[asyncio.Future[WorkflowResult]], None],
) -> WorkflowResult:
    """Start a run with a token, check it after `after_s`, cancel it: it must end within 1 s."""
    token = CancellationToken()
    task = asyncio.ensure_future(start(token))
    await asyncio.sleep(after_s)
    while_running(task)
    with Timer() as timer:
        token.cancel()
        result = await asyncio.wait_for(task, timeout=5)
    assert timer.elapsed < 1.0
    return result


def still_running(task: asyncio.Future[WorkflowResult]) -> None:
    assert not task.done()
