"""Blueprint builders and probes for the runtime tests; the runtime helpers live in
`tests/runtime_support.py` (shared with the built-in node tests)."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Iterable, Mapping
from typing import Any

from runtime_support import InFlight as InFlight
from runtime_support import Timer as Timer
from runtime_support import echo as echo
from runtime_support import make_runtime as make_runtime
from runtime_support import of_type as of_type
from runtime_support import outputs as outputs
from runtime_support import trace

from flowcraft_core import InMemoryEventBus, WorkflowResult


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


def user_keys(result: WorkflowResult) -> dict[str, Any]:
    """The context without engine-owned keys."""
    return {
        k: v
        for k, v in result.context.items()
        if not k.startswith(("_outputs.", "_inputs.")) and k != "_executionId"
    }


class Calls:
    """Counts calls per key and remembers their order (thread-safe enough under the GIL)."""

    def __init__(self) -> None:
        self.log: list[Any] = []

    def add(self, item: Any) -> None:
        self.log.append(item)

    def count(self, item: Any) -> int:
        return self.log.count(item)


async def wait_until(predicate: Any, timeout_s: float = 5.0) -> None:
    """Poll `predicate()` from the event loop until true (fails after `timeout_s`)."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.005)
