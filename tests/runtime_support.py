"""Helpers shared by the runtime and built-in node tests: runtimes with a recording bus, traces."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping
from typing import Any

from flowcraft_core import FlowRuntime, InMemoryEventBus, NodeRegistry, WorkflowResult

NODE_EVENTS = ("node:start", "node:finish", "node:error", "node:skipped", "node:awaiting")


def make_registry(impls: Mapping[str, Any]) -> NodeRegistry:
    registry = NodeRegistry()
    for name, impl in impls.items():
        registry.register(name, impl)
    return registry


def make_runtime(
    impls: Mapping[str, Any] | None = None, **kwargs: Any
) -> tuple[FlowRuntime, InMemoryEventBus]:
    """A runtime over a fresh NodeRegistry with a recording bus (unless `event_bus` is given)."""
    bus = kwargs.pop("event_bus", None)
    if bus is None:
        bus = InMemoryEventBus()
    return FlowRuntime(registry=make_registry(impls or {}), event_bus=bus, **kwargs), bus


def trace(
    bus: InMemoryEventBus, types: Iterable[str] = NODE_EVENTS, *, iteration: bool = False
) -> list[tuple[Any, ...]]:
    """(type, node_id[, iteration][, reason]) of the node events, in emission order."""
    wanted = set(types)
    rows: list[tuple[Any, ...]] = []
    for event in bus.events:
        if event.type not in wanted:
            continue
        row: tuple[Any, ...] = (event.type, event.node_id)
        if iteration:
            row += (tuple(event.iteration),)
        if event.type == "node:skipped":
            row += (event.reason,)
        rows.append(row)
    return rows


def of_type(bus: InMemoryEventBus, event_type: str) -> list[Any]:
    return [e for e in bus.events if e.type == event_type]


def outputs(result: WorkflowResult) -> dict[str, Any]:
    prefix = "_outputs."
    return {k[len(prefix) :]: v for k, v in result.context.items() if k.startswith(prefix)}


class Timer:
    def __enter__(self) -> Timer:
        self.start = time.perf_counter()
        self.elapsed = 0.0
        return self

    def __exit__(self, *exc: object) -> None:
        self.elapsed = time.perf_counter() - self.start


class InFlight:
    """Counts activations in flight at once and remembers the maximum."""

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
