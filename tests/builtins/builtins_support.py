"""Shared helpers for the built-in node tests (imported by the test modules)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping
from typing import Any

from flowcraft_core import FlowRuntime, InMemoryEventBus, NodeRegistry, WorkflowResult

ENGINE_AWAIT_KEYS = ("_awaitingNodeIds", "_awaitingDetails", "_runState")
NODE_EVENTS = ("node:start", "node:finish", "node:skipped", "node:error", "node:awaiting")


def make_registry(impls: Mapping[str, Any]) -> NodeRegistry:
    registry = NodeRegistry()
    for name, impl in impls.items():
        registry.register(name, impl)
    return registry


def make_runtime(
    impls: Mapping[str, Any] | None = None,
    *,
    blueprints: Iterable[Any] | Mapping[str, Any] | None = None,
    bus: InMemoryEventBus | None = None,
    **kwargs: Any,
) -> tuple[FlowRuntime, InMemoryEventBus]:
    bus = bus if bus is not None else InMemoryEventBus()
    runtime = FlowRuntime(
        registry=make_registry(impls or {}), blueprints=blueprints, event_bus=bus, **kwargs
    )
    return runtime, bus


def trace(bus: InMemoryEventBus, types: Iterable[str] = NODE_EVENTS) -> list[tuple[Any, ...]]:
    """(type, node_id, iteration[, reason]) for the node events, in emission order."""
    wanted = set(types)
    out: list[tuple[Any, ...]] = []
    for event in bus.events:
        if event.type not in wanted:
            continue
        row: tuple[Any, ...] = (event.type, event.node_id, tuple(event.iteration))
        if event.type == "node:skipped":
            row += (event.reason,)
        out.append(row)
    return out


def of_type(bus: InMemoryEventBus, event_type: str) -> list[Any]:
    return [e for e in bus.events if e.type == event_type]


def started(bus: InMemoryEventBus, node_id: str) -> list[tuple[int, ...]]:
    return [tuple(e.iteration) for e in of_type(bus, "node:start") if e.node_id == node_id]


def outputs(result: WorkflowResult) -> dict[str, Any]:
    prefix = "_outputs."
    return {k[len(prefix) :]: v for k, v in result.context.items() if k.startswith(prefix)}


def assert_not_awaiting(result: WorkflowResult) -> None:
    for key in ENGINE_AWAIT_KEYS:
        assert key not in result.context, key


def assert_awaiting(result: WorkflowResult) -> None:
    for key in ENGINE_AWAIT_KEYS:
        assert key in result.context, key


class Timer:
    def __enter__(self) -> Timer:
        self.start = time.perf_counter()
        self.elapsed = 0.0
        return self

    def __exit__(self, *exc: object) -> None:
        self.elapsed = time.perf_counter() - self.start


class Concurrency:
    """Counts activations in flight and remembers the maximum."""

    def __init__(self) -> None:
        self.current = 0
        self.max = 0

    async def hold(self, seconds: float) -> None:
        self.current += 1
        self.max = max(self.max, self.current)
        try:
            await asyncio.sleep(seconds)
        finally:
            self.current -= 1


async def echo(ctx: Any) -> dict[str, Any]:
    return {"output": ctx.input}
