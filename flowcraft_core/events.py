"""Event records (frozen, keyword-only, one class per type) and the event sinks.

A bus is any object with `emit(event)`, sync or async. Bus exceptions are logged and never
fail a run.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar, Protocol

from .results import ErrorRecord, NodeResult

logger = logging.getLogger("flowcraft_core.events")


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True, kw_only=True)
class FlowEvent:
    type: ClassVar[str] = "event"
    run_id: str
    blueprint_id: str
    timestamp: datetime = field(default_factory=_now)


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkflowStart(FlowEvent):
    type: ClassVar[str] = "workflow:start"
    parent_run_id: str | None = None
    parent_node_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkflowResume(FlowEvent):
    type: ClassVar[str] = "workflow:resume"
    node_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkflowFinish(FlowEvent):
    type: ClassVar[str] = "workflow:finish"
    status: str
    errors: tuple[ErrorRecord, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkflowStall(FlowEvent):
    type: ClassVar[str] = "workflow:stall"
    remaining: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeStart(FlowEvent):
    type: ClassVar[str] = "node:start"
    node_id: str
    iteration: tuple[int, ...] = ()
    input: Any = None


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeRetry(FlowEvent):
    type: ClassVar[str] = "node:retry"
    node_id: str
    iteration: tuple[int, ...] = ()
    attempt: int
    delay_ms: float
    error: BaseException


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeFallback(FlowEvent):
    type: ClassVar[str] = "node:fallback"
    node_id: str
    iteration: tuple[int, ...] = ()
    fallback: str
    error: BaseException


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeFinish(FlowEvent):
    type: ClassVar[str] = "node:finish"
    node_id: str
    iteration: tuple[int, ...] = ()
    result: NodeResult
    duration_ms: float


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeError(FlowEvent):
    type: ClassVar[str] = "node:error"
    node_id: str
    iteration: tuple[int, ...] = ()
    error: ErrorRecord


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeAwaiting(FlowEvent):
    type: ClassVar[str] = "node:awaiting"
    node_id: str
    iteration: tuple[int, ...] = ()
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeSkipped(FlowEvent):
    type: ClassVar[str] = "node:skipped"
    node_id: str
    iteration: tuple[int, ...] = ()
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class EdgeEvaluate(FlowEvent):
    type: ClassVar[str] = "edge:evaluate"
    source: str
    target: str
    edge_index: int
    condition: str | None
    result: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class ContextChange(FlowEvent):
    type: ClassVar[str] = "context:change"
    source_node: str | None
    key: str
    op: str
    value: Any = None


@dataclass(frozen=True, slots=True, kw_only=True)
class BatchStart(FlowEvent):
    type: ClassVar[str] = "batch:start"
    batch_id: str
    scatter_node_id: str
    gather_node_id: str
    item_count: int


@dataclass(frozen=True, slots=True, kw_only=True)
class BatchFinish(FlowEvent):
    type: ClassVar[str] = "batch:finish"
    batch_id: str
    gather_node_id: str
    results: list[Any] = field(default_factory=list)


class EventBus(Protocol):
    def emit(self, event: FlowEvent) -> Any: ...


class InMemoryEventBus:
    """Records every event, for tests and for diagrams of a finished run."""

    def __init__(self) -> None:
        self.events: list[FlowEvent] = []

    def emit(self, event: FlowEvent) -> None:
        self.events.append(event)

    def of_type(self, event_type: str) -> list[Any]:
        return [e for e in self.events if e.type == event_type]

    def types(self) -> list[str]:
        return [e.type for e in self.events]

    def clear(self) -> None:
        self.events.clear()


Emitter = Callable[[FlowEvent], Awaitable[None]]


def make_emitter(bus: EventBus | None) -> Emitter | None:
    """Wrap a bus once: sync or async `emit`, exceptions logged and swallowed."""
    if bus is None:
        return None
    emit = bus.emit
    is_async = inspect.iscoroutinefunction(emit)

    async def emitter(event: FlowEvent) -> None:
        try:
            outcome = emit(event)
            if is_async or inspect.isawaitable(outcome):
                await outcome
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("event bus failed on %s", event.type, extra={"run_id": event.run_id})

    return emitter


__all__ = [
    "BatchFinish",
    "BatchStart",
    "ContextChange",
    "EdgeEvaluate",
    "EventBus",
    "FlowEvent",
    "InMemoryEventBus",
    "NodeAwaiting",
    "NodeError",
    "NodeFallback",
    "NodeFinish",
    "NodeRetry",
    "NodeSkipped",
    "NodeStart",
    "WorkflowFinish",
    "WorkflowResume",
    "WorkflowStall",
    "WorkflowStart",
]
