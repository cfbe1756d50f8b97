"""Edge selection after a node succeeds (SPEC 3.3), expression scopes (6.1) and input
resolution (2.7).

Pure functions over a context *reader* (committed values plus an overlay of the node's pending
writes), so the in-process engine and the distributed worker route identically.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from ..context import DELETED, MISSING
from ..errors import ExpressionError
from ..expressions import Compiled, truthy
from ..reserved import INPUTS_PREFIX, OUTPUTS_PREFIX
from ..results import NodeResult
from .plan import EdgePlan, NodePlan

# Edge resolutions (shared with runtime.state, which re-exports them).
TAKEN = 0
DEAD = 1


class ContextReader:
    """Read-only lookups over committed context plus pending (overlay) writes."""

    __slots__ = ("base", "overlay")

    def __init__(self, base: Mapping[str, Any], overlay: Mapping[str, Any] | None = None) -> None:
        self.base = base
        self.overlay = overlay

    def lookup(self, key: str) -> Any:
        """The value, or MISSING."""
        overlay = self.overlay
        if overlay is not None:
            value = overlay.get(key, MISSING)
            if value is not MISSING:
                return MISSING if value is DELETED else value
        return self.base.get(key, MISSING)

    def name(self, name: str) -> Any:
        """A bare name (6.1): the context key, else the node output, else None."""
        value = self.lookup(name)
        if value is MISSING:
            value = self.lookup(OUTPUTS_PREFIX + name)
            if value is MISSING:
                return None
        return value

    def keys(self) -> list[str]:
        keys = dict.fromkeys(self.base)
        if self.overlay:
            for key, value in self.overlay.items():
                if value is DELETED:
                    keys.pop(key, None)
                else:
                    keys[key] = None
        return list(keys)


class ContextMapping(Mapping[str, Any]):
    """The `context` name in expressions: `context[k]` falls back to the output of node `k`."""

    __slots__ = ("_reader",)

    def __init__(self, reader: ContextReader) -> None:
        self._reader = reader

    def get(self, key: str, default: Any = None) -> Any:
        if not isinstance(key, str):
            return default
        value = self._reader.lookup(key)
        if value is MISSING:
            value = self._reader.lookup(OUTPUTS_PREFIX + key)
            if value is MISSING:
                return default
        return value

    def __getitem__(self, key: str) -> Any:
        value = self._reader.lookup(key)
        if value is MISSING:
            value = self._reader.lookup(OUTPUTS_PREFIX + key)
            if value is MISSING:
                raise KeyError(key)
        return value

    def __iter__(self) -> Iterator[str]:
        return iter(self._reader.keys())

    def __len__(self) -> int:
        return len(self._reader.keys())


class Scope(Mapping[str, Any]):
    """Reserved names first, then context keys, then node outputs, else None."""

    __slots__ = ("_reader", "_reserved")

    def __init__(self, reader: ContextReader, reserved: dict[str, Any]) -> None:
        self._reader = reader
        self._reserved = reserved

    def get(self, name: str, default: Any = None) -> Any:
        reserved = self._reserved
        if name in reserved:
            value = reserved[name]
            if value is _CONTEXT:
                value = reserved[name] = ContextMapping(self._reader)
            return value
        return self._reader.name(name)

    def __getitem__(self, name: str) -> Any:
        return self.get(name)

    def __iter__(self) -> Iterator[str]:
        return iter(self._reserved)

    def __len__(self) -> int:
        return len(self._reserved)


_CONTEXT: Any = object()


def evaluate(compiled: Compiled, reader: ContextReader, reserved: dict[str, Any]) -> Any:
    reserved.setdefault("context", _CONTEXT)
    return compiled.evaluate(Scope(reader, reserved))


def _edge_error(exc: Exception, edge: EdgePlan, role: str) -> ExpressionError:
    text = edge.condition_text if role == "condition" else edge.transform_text
    reason = exc.reason if isinstance(exc, ExpressionError) else f"{type(exc).__name__}: {exc}"
    return ExpressionError(
        reason,
        expression=text,
        edge=(edge.index, edge.source_id, edge.target_id),
        role=role,
    )


def _condition(edge: EdgePlan, reader: ContextReader, result: NodeResult) -> bool:
    assert edge.condition is not None
    try:
        value = evaluate(
            edge.condition, reader, {"result": {"output": result.output, "action": result.action}}
        )
    except Exception as exc:
        raise _edge_error(exc, edge, "condition") from exc
    return truthy(value)


def select_edges(node: NodePlan, result: NodeResult, reader: ContextReader) -> list[bool]:
    """Which out-edges are taken, in declaration order (SPEC 3.3); raises ExpressionError."""
    edges = node.out_edges
    taken = [False] * len(edges)
    if node.is_loop_controller:
        any_true = False
        for i, edge in enumerate(edges):
            if edge.condition is not None and _condition(edge, reader, result):
                taken[i] = any_true = True
        if any_true:
            return taken
    chosen = False
    action = result.action
    if action is not None:
        for i, edge in enumerate(edges):
            if edge.action == action and (
                edge.condition is None or _condition(edge, reader, result)
            ):
                taken[i] = chosen = True
    if not chosen:
        for i, edge in enumerate(edges):
            if edge.action is None and (edge.condition is None or _condition(edge, reader, result)):
                taken[i] = True
    return taken


def edge_value(edge: EdgePlan, output: Any, reader: ContextReader) -> Any:
    """The value a taken edge delivers: its transform over `{input, context}`, else the output."""
    if edge.transform is None:
        return output
    try:
        return evaluate(edge.transform, reader, {"input": output})
    except Exception as exc:
        raise _edge_error(exc, edge, "transform") from exc


def route(
    node: NodePlan,
    result: NodeResult,
    base: Mapping[str, Any],
    ops: Mapping[str, Any],
    stand_in: str | None,
) -> list[tuple[EdgePlan, int, Any]]:
    """Every out-edge with its resolution (taken/dead) and delivered value, or ExpressionError.

    Expressions see the context as it will be after the commit: `base` plus the node's writes
    and outputs.
    """
    edges = node.out_edges
    if not edges:
        return []
    output = result.output
    if not node.has_expressions and result.action is None:
        # Fast path: every default edge is taken with the output itself.
        if len(edges) == 1:  # a chain: no list comprehension frame
            edge = edges[0]
            return [(edge, TAKEN if edge.action is None else DEAD, output)]
        return [(e, TAKEN if e.action is None else DEAD, output) for e in edges]
    overlay = dict(ops)
    overlay[OUTPUTS_PREFIX + node.id] = output
    if stand_in is not None:
        overlay[OUTPUTS_PREFIX + stand_in] = output
    reader = ContextReader(base, overlay)
    taken = select_edges(node, result, reader)
    return [
        (e, TAKEN, edge_value(e, output, reader)) if t else (e, DEAD, None)
        for e, t in zip(edges, taken, strict=True)
    ]


def resolve_reference(ref: str, reader: ContextReader) -> Any:
    """SPEC 2.7 reference resolution."""
    if ref.startswith("_"):
        value = reader.lookup(ref)
        return None if value is MISSING else value
    value = reader.lookup(OUTPUTS_PREFIX + ref)
    if value is not MISSING:
        return value
    value = reader.lookup(ref)
    if value is not MISSING:
        return value
    head, dot, path = ref.partition(".")
    if not dot:
        return None
    base = reader.lookup(OUTPUTS_PREFIX + head)
    if base is MISSING:
        base = reader.lookup(head)
        if base is MISSING:
            return None
    return walk_path(base, path.split("."))


def walk_path(value: Any, parts: Sequence[str]) -> Any:
    for part in parts:
        if isinstance(value, dict):
            value = value.get(part)
        elif isinstance(value, list) and part.isdigit():
            index = int(part)
            value = value[index] if index < len(value) else None
        else:
            return None
        if value is None:
            return None
    return value


def node_input(node: NodePlan, data: Mapping[str, Any], *, entry: bool, delivered: Any) -> Any:
    """`ctx.input` (SPEC 2.7): `inputs` beats edge values; an entry node reads `_inputs.<id>`."""
    inputs = node.definition.inputs
    if inputs is not None:
        return resolve_inputs(inputs, ContextReader(data))
    if entry:
        return data.get(INPUTS_PREFIX + node.id)
    return delivered


def resolve_inputs(inputs: str | Mapping[str, str], reader: ContextReader) -> Any:
    if isinstance(inputs, str):
        return resolve_reference(inputs, reader)
    return {name: resolve_reference(ref, reader) for name, ref in inputs.items()}


__all__ = [
    "ContextMapping",
    "ContextReader",
    "Scope",
    "edge_value",
    "evaluate",
    "node_input",
    "resolve_inputs",
    "resolve_reference",
    "route",
    "select_edges",
    "walk_path",
]
