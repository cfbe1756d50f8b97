"""Helpers shared by the runtime tests: runtimes with a recording bus, traces, timers."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Iterable, Mapping
from typing import Any

from flowcraft_core import FlowRuntime, InMemoryEventBus, NodeRegistry, WorkflowResult

NODE_EVENTS = ("node:start", "node:finish", "node:error", "node:skipped", "node:awaiting")


def make_runtime(
    impls: Mapping[str, Any] | None = None, **kwargs: Any
) -> tuple[FlowRuntime, InMemoryEventBus]:
    """A runtime over a fresh NodeRegistry with a recording bus (unless `event_bus` is given)."""
    bus = kwargs.pop("event_bus", None)
    if bus is None:
        bus = InMemoryEventBus()
    registry = NodeRegistry()
    for name, impl in (impls or {}).items():
        registry.register(name, impl)
    return FlowRuntime(registry=registry, event_bus=bus, **kwargs), bus


def bp(
    nodes: Iterable[Mapping[str, Any]],
    edges: Iterable[Mapping[str, Any]] = (),
    *,
    id: str = "test",
    **extra: Any,
) -> dict[str, Any]:
    """A blueprint mapping."""
    return {"id": id, "nodes": list(nodes), "edges": list(edges), **extra}


def node(node_id: str, uses: str = "echo", **fields: Any) -> dict[str, Any]:
    """A node mapping; `config=` / `params=` / `inputs=` pass through."""
    return {"id": node_id, "uses": uses, **fields}


def edge(source: str, target: str, **fields: Any) -> dict[str, Any]:
    return {"source": source, "target": target, **fields}


def chain(*ids: str) -> list[dict[str, Any]]:
    return [edge(a, b) for a, b in itertools.pairwise(ids)]


def trace(bus: InMemoryEventBus, types: Iterable[str] = NODE_EVENTS) -> list[tuple[Any, ...]]:
    """(type, node_id[, reason]) of the node events, in emission order."""
    wanted = set(types)
    rows: list[tuple[Any, ...]] = []
    for event in bus.events:
        if event.type not in wanted:
            continue
        row: tuple[Any, ...] = (event.type, event.node_id)
        if event.type == "node:skipped":
            row += (event.reason,)
        rows.append(row)
    return rows


def of_type(bus: InMemoryEventBus, event_type: str) -> list[Any]:
    return [e for e in bus.events if e.type == event_type]


def started(bus: InMemoryEventBus) -> list[str]:
    return [e.node_id for e in of_type(bus, "node:start")]


def skipped(bus: InMemoryEventBus) -> dict[str, str]:
    """Skipped node id -> reason."""
    return {e.node_id: e.reason for e in of_type(bus, "node:skipped")}


def index_of(bus: InMemoryEventBus, event_type: str, node_id: str) -> int:
    for i, event in enumerate(bus.events):
        if event.type == event_type and getattr(event, "node_id", None) == node_id:
            return i
    raise AssertionError(f"no {event_type} for {node_id!r} in {trace(bus)}")


def outputs(result: WorkflowResult) -> dict[str, Any]:
    prefix = "_outputs."
    return {k[len(prefix) :]: v for k, v in result.context.items() if k.startswith(prefix)}


def user_keys(result: WorkflowResult) -> dict[str, Any]:
    """The context without engine-owned keys."""
    return {
        k: v
        for k, v in result.context.items()
        if not k.startswith(("_outputs.", "_inputs.")) and k != "_executionId"
    }


class Timer:
    def __enter__(self) -> Timer:
        self.start = time.perf_counter()
        self.elapsed = 0.0
        return self

    def __exit__(self, *exc: object) -> None:
        self.elapsed = time.perf_counter() - self.start


class Calls:
    """Counts calls per key and remembers their order (thread-safe enough under the GIL)."""

    def __init__(self) -> None:
        self.log: list[Any] = []

    def add(self, item: Any) -> None:
        self.log.append(item)

    def count(self, item: Any) -> int:
        return self.log.count(item)


class InFlight:
    """Tracks how many activations hold it at once."""

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


async def wait_until(predicate: Any, timeout_s: float = 5.0) -> None:
    """Poll `predicate()` from the event loop until true (fails after `timeout_s`)."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.005)
