"""Values a node returns and a run produces."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


class RunStatus(enum.StrEnum):
    """Compares equal to its lowercase string (`result.status == "completed"`)."""

    COMPLETED = "completed"
    FAILED = "failed"
    AWAITING = "awaiting"
    CANCELLED = "cancelled"
    STALLED = "stalled"
    RUNNING = "running"


@dataclass(frozen=True, slots=True)
class NodeResult:
    """What a node returns: `output` is stored under `_outputs.<id>`, `action` routes."""

    output: Any = None
    action: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ErrorRecord:
    """An unrecovered failure; `message` is the original `str(exc)`."""

    node_id: str | None
    type: str
    message: str
    iteration: tuple[int, ...] = ()
    attempts: int = 0
    timestamp: datetime = field(default_factory=lambda: datetime.now(UTC))
    fallback_error: Mapping[str, str] | None = None
    exception: BaseException | None = field(default=None, compare=False, repr=False)

    @classmethod
    def from_exception(
        cls,
        exc: BaseException,
        *,
        node_id: str | None,
        iteration: tuple[int, ...] = (),
        attempts: int = 0,
        fallback_error: BaseException | None = None,
    ) -> ErrorRecord:
        return cls(
            node_id=node_id,
            type=type(exc).__name__,
            message=str(exc),
            iteration=iteration,
            attempts=attempts,
            fallback_error=(
                {"type": type(fallback_error).__name__, "message": str(fallback_error)}
                if fallback_error is not None
                else None
            ),
            exception=exc,
        )

    def to_json(self) -> dict[str, Any]:
        """The JSON form (camelCase names, ISO timestamp, no exception object)."""
        data: dict[str, Any] = {
            "nodeId": self.node_id,
            "iteration": list(self.iteration),
            "type": self.type,
            "message": self.message,
            "timestamp": self.timestamp.isoformat(),
            "attempts": self.attempts,
        }
        if self.fallback_error is not None:
            data["fallbackError"] = dict(self.fallback_error)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ErrorRecord:
        fb = data.get("fallbackError")
        return cls(
            node_id=data.get("nodeId"),
            type=str(data.get("type", "")),
            message=str(data.get("message", "")),
            iteration=tuple(data.get("iteration") or ()),
            attempts=int(data.get("attempts", 0)),
            timestamp=datetime.fromisoformat(data["timestamp"])
            if data.get("timestamp")
            else datetime.now(UTC),
            fallback_error=dict(fb) if fb else None,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkflowResult:
    """The outcome of a run (or of a run's current pause, when `awaiting`)."""

    run_id: str
    status: RunStatus
    context: dict[str, Any]
    serialized_context: str
    errors: list[ErrorRecord] = field(default_factory=list)
    #: Node ids whose compensation ran, in the order they ran (a failed run; see
    #: docs/compensation.md), and the compensations that failed.
    compensated: list[str] = field(default_factory=list)
    compensation_failed: list[ErrorRecord] = field(default_factory=list)

    @property
    def outputs(self) -> dict[str, Any]:
        """Node outputs by node id (from the `_outputs.*` keys)."""
        prefix = "_outputs."
        return {k[len(prefix) :]: v for k, v in self.context.items() if k.startswith(prefix)}


__all__ = ["ErrorRecord", "NodeResult", "RunStatus", "WorkflowResult"]
