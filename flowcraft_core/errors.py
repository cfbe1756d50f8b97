"""The exception tree of flowcraft_core.

::

    FlowcraftError
    ├── BlueprintError            invalid blueprint or unresolved implementation (raised)
    ├── RegistryError
    ├── ReservedKeyError
    ├── SerializationError
    ├── ExpressionError           an expression failed at run time
    │   └── ExpressionSyntaxError an expression does not compile
    ├── NodeTimeoutError          retryable
    ├── NonRetryableError         raised by node code: no more attempts; fallbacks still apply
    │   └── FatalNodeError        no more attempts and no fallback of either kind
    ├── InvalidNodeResultError    non-retryable
    ├── LoopLimitError
    ├── SubflowError
    ├── BlueprintVersionError
    ├── WorkerLostError
    ├── NodeCancelledError
    ├── RunNotAwaitingError
    └── RunNotFoundError

Errors carry the culprit (blueprint, node, edge, key) as attributes and format their own
message, so callers can both read and match them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


class FlowcraftError(Exception):
    """Root of every error flowcraft raises on purpose."""


@dataclass(frozen=True, slots=True)
class Problem:
    """One validation problem: where (JSON path), what (stable code) and why."""

    path: str
    code: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class BlueprintError(FlowcraftError):
    """A blueprint is invalid, or names an implementation that does not resolve."""

    def __init__(self, blueprint_id: str | None, problems: Sequence[Problem]) -> None:
        self.blueprint_id = blueprint_id
        self.problems: list[Problem] = list(problems)
        super().__init__(self._format())

    def _format(self) -> str:
        name = repr(self.blueprint_id) if self.blueprint_id is not None else "<unnamed>"
        count = len(self.problems)
        noun = "problem" if count == 1 else "problems"
        lines = [f"blueprint {name} is invalid ({count} {noun}):"]
        lines.extend(f"  {p.path}: {p.message}" for p in self.problems)
        return "\n".join(lines)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.blueprint_id, self.problems))


class RegistryError(FlowcraftError):
    """A registry was given a name or implementation it cannot accept."""

    def __init__(self, message: str, *, name: str | None = None) -> None:
        self.name = name
        super().__init__(message)


class ReservedKeyError(FlowcraftError):
    """Node code tried to write an engine-owned context key."""

    def __init__(self, key: str, *, node_id: str | None = None) -> None:
        self.key = key
        self.node_id = node_id
        where = f"node {node_id!r} " if node_id else ""
        super().__init__(f"{where}cannot write reserved context key {key!r}")


class SerializationError(FlowcraftError):
    """A value is not JSON data, or a text does not decode."""

    def __init__(self, message: str, *, node_id: str | None = None, key: str | None = None) -> None:
        self.node_id = node_id
        self.key = key
        self.reason = message
        parts = []
        if node_id is not None:
            parts.append(f"node {node_id!r}")
        if key is not None:
            parts.append(f"key {key!r}")
        prefix = (", ".join(parts) + ": ") if parts else ""
        super().__init__(prefix + message)


class ExpressionError(FlowcraftError):
    """An expression failed while being evaluated (never silently false)."""

    def __init__(
        self,
        message: str,
        *,
        expression: str | None = None,
        edge: tuple[int, str, str] | None = None,
        node_id: str | None = None,
        role: str = "condition",
    ) -> None:
        self.expression = expression
        self.edge = edge
        self.node_id = node_id
        self.role = role
        self.reason = message
        super().__init__(self._format())

    def _format(self) -> str:
        where = ""
        if self.edge is not None:
            index, source, target = self.edge
            where = f"edges[{index}] ({source} -> {target}) {self.role} "
        elif self.node_id is not None:
            where = f"node {self.node_id!r} {self.role} "
        expr = f"{self.expression!r}: " if self.expression is not None else ""
        return f"{where}{expr}{self.reason}"

    def located(
        self,
        *,
        expression: str,
        edge: tuple[int, str, str] | None = None,
        node_id: str | None = None,
        role: str = "condition",
    ) -> ExpressionError:
        """Return a copy that names where the expression lives."""
        return type(self)(self.reason, expression=expression, edge=edge, node_id=node_id, role=role)


class ExpressionSyntaxError(ExpressionError):
    """An expression does not compile; `column` is 1-based."""

    def __init__(
        self,
        message: str,
        *,
        expression: str | None = None,
        column: int | None = None,
        edge: tuple[int, str, str] | None = None,
        node_id: str | None = None,
        role: str = "condition",
    ) -> None:
        self.column = column
        if column is not None and "column" not in message:
            message = f"{message} at column {column}"
        super().__init__(message, expression=expression, edge=edge, node_id=node_id, role=role)


class NodeTimeoutError(FlowcraftError):
    """An attempt ran past `config.timeout`; retryable."""

    def __init__(self, node_id: str, timeout_ms: float) -> None:
        self.node_id = node_id
        self.timeout_ms = timeout_ms
        super().__init__(f"node {node_id!r} timed out after {timeout_ms:g} ms")


class NonRetryableError(FlowcraftError):
    """Raised by node code to stop further attempts; fallbacks still apply."""


class FatalNodeError(NonRetryableError):
    """Raised by node code to stop attempts and skip every fallback."""


class InvalidNodeResultError(FlowcraftError):
    """A node returned something that is not a NodeResult, a mapping or None."""

    def __init__(self, node_id: str, detail: str) -> None:
        self.node_id = node_id
        super().__init__(f"node {node_id!r} returned an invalid result: {detail}")


class LoopLimitError(FlowcraftError):
    """A loop exceeded `maxIterations` or the runtime's `max_loop_iterations`."""

    def __init__(self, node_id: str, limit: int, *, kind: str = "maxIterations") -> None:
        self.node_id = node_id
        self.limit = limit
        self.kind = kind
        super().__init__(f"loop at {node_id!r} exceeded {kind} ({limit})")


class SubflowError(FlowcraftError):
    """A subflow's child run failed or was cancelled."""

    def __init__(
        self,
        *,
        node_id: str,
        blueprint_id: str,
        child_run_id: str,
        child_status: str,
        first_error: str | None = None,
    ) -> None:
        self.node_id = node_id
        self.blueprint_id = blueprint_id
        self.child_run_id = child_run_id
        self.child_status = child_status
        self.first_error = first_error
        msg = (
            f"subflow node {node_id!r}: child blueprint {blueprint_id!r} run {child_run_id!r} "
            f"ended {child_status}"
        )
        if first_error:
            msg += f": {first_error}"
        super().__init__(msg)


class BlueprintVersionError(FlowcraftError):
    """A run is pinned to another version of its blueprint."""

    def __init__(self, blueprint_id: str, expected: str, actual: str) -> None:
        self.blueprint_id = blueprint_id
        self.expected = expected
        self.actual = actual
        super().__init__(
            f"blueprint {blueprint_id!r}: run is pinned to version {expected!r}, "
            f"this process has {actual!r}"
        )


class WorkerLostError(FlowcraftError):
    """An activation's worker died too many times."""


class NodeCancelledError(FlowcraftError):
    """The attempt was cancelled (run cancellation or timeout)."""


class RunNotAwaitingError(FlowcraftError):
    """A resume named a run or node that is not waiting."""

    def __init__(self, message: str, *, waiting: Sequence[str] = ()) -> None:
        self.waiting = list(waiting)
        super().__init__(message)


class RunNotFoundError(FlowcraftError):
    """No run with this id exists (or it expired)."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        super().__init__(f"run {run_id!r} not found")


__all__ = [
    "BlueprintError",
    "BlueprintVersionError",
    "ExpressionError",
    "ExpressionSyntaxError",
    "FatalNodeError",
    "FlowcraftError",
    "InvalidNodeResultError",
    "LoopLimitError",
    "NodeCancelledError",
    "NodeTimeoutError",
    "NonRetryableError",
    "Problem",
    "RegistryError",
    "ReservedKeyError",
    "RunNotAwaitingError",
    "RunNotFoundError",
    "SerializationError",
    "SubflowError",
    "WorkerLostError",
]
