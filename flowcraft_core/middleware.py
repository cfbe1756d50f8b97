"""Middleware: `before_node`, `around_node` and `after_node` hooks, composed once per runtime.

Order with one around hook and two plain ones: around-pre, before1, before2, node, after2,
after1, around-post. Around hooks may change the result, short-circuit or recover.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from .node import NodeContext
from .results import NodeResult

Step = Callable[[NodeContext], Awaitable[NodeResult]]


class Middleware(Protocol):
    """Any subset of the three hooks; all arguments keyword-only."""


async def _maybe_await(value: Any) -> Any:
    if inspect.isawaitable(value):
        return await value
    return value


def compose(middleware: Sequence[Any], core: Step) -> Step:
    """Wrap `core` in the hooks of `middleware`; returns `core` itself when there are none."""
    befores = [m.before_node for m in middleware if hasattr(m, "before_node")]
    afters = [m.after_node for m in reversed(middleware) if hasattr(m, "after_node")]
    arounds = [m.around_node for m in middleware if hasattr(m, "around_node")]

    step = core
    if befores or afters:
        inner = core

        async def hooked(ctx: NodeContext) -> NodeResult:
            for before in befores:
                await _maybe_await(before(ctx=ctx))
            result: NodeResult | None = None
            error: BaseException | None = None
            try:
                result = await inner(ctx)
                return result
            except BaseException as exc:
                error = exc
                raise
            finally:
                for after in afters:
                    await _maybe_await(after(ctx=ctx, result=result, error=error))

        step = hooked

    for around in reversed(arounds):
        step = _wrap_around(around, step)
    return step


def _wrap_around(around: Callable[..., Any], call: Step) -> Step:
    async def wrapped(ctx: NodeContext) -> NodeResult:
        async def call_next() -> NodeResult:
            return await call(ctx)

        result = await _maybe_await(around(ctx=ctx, call_next=call_next))
        if result is None:
            return NodeResult()
        if isinstance(result, NodeResult):
            return result
        if isinstance(result, dict) and set(result) <= {"output", "action"}:
            return NodeResult(**result)
        raise TypeError(f"around_node returned {type(result).__name__}, expected NodeResult")

    return wrapped


__all__ = ["Middleware", "compose"]
