"""Running one activation: attempts, retry delays, timeouts, class-node lifecycle, fallbacks.

The executor turns node code into an `Outcome` and never touches routing or joins; the engine
does that with the outcome. It is shared by the in-process engine and the distributed worker.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from ..cancellation import CancellationToken
from ..context import AsyncContextView, ContextStore, WriteBuffer
from ..errors import (
    ExpressionError,
    FatalNodeError,
    InvalidNodeResultError,
    LoopLimitError,
    NodeCancelledError,
    NodeTimeoutError,
    NonRetryableError,
    ReservedKeyError,
    SerializationError,
)
from ..events import FlowEvent, NodeFallback, NodeRetry
from ..node import BaseNode, NodeContext
from ..results import NodeResult
from ..serializer import check_json

logger = logging.getLogger("flowcraft_core.executor")

_NOT_RETRYABLE = (
    NonRetryableError,
    InvalidNodeResultError,
    ExpressionError,
    LoopLimitError,
    SerializationError,
    ReservedKeyError,
)

SUCCEEDED = "succeeded"
FAILED = "failed"
WAITING = "waiting"


@dataclass(slots=True, eq=False)
class Waiting:
    """Returned by built-ins that hold their activation open (wait, webhook, subflow)."""

    details: dict[str, Any]


@dataclass(slots=True, eq=False)
class Outcome:
    kind: str
    result: NodeResult | None = None
    ops: dict[str, Any] = field(default_factory=dict)
    error: BaseException | None = None
    attempts: int = 0
    fallback_error: BaseException | None = None
    #: The stand-in that produced the result (its output is stored under both ids).
    stand_in: str | None = None
    details: dict[str, Any] | None = None
    #: Private state of a waiting activation (a subflow's child context), kept in _runState.
    state: Any = None
    #: A class node's `recover(error)`, called by the engine if the activation finally fails.
    recover: Callable[[BaseException], Awaitable[None]] | None = None


class AttemptCancelled(Exception):
    """Internal: the run was cancelled during this activation."""


class RetryLater(BaseException):  # a signal, not an error: node code and middleware let it by
    """Raised instead of waiting for the next attempt when retries are deferred to the queue
    (`AttemptSpec.defer_retries`, distributed `retry_mode="queue"`, SPEC 9.5): the job fails
    and the queue runs attempt `attempt + 1` after `delay_ms`. `node:retry` was emitted."""

    def __init__(self, error: BaseException, attempt: int, delay_ms: float) -> None:
        super().__init__(f"attempt {attempt} failed ({type(error).__name__}: {error})")
        self.error = error
        self.attempt = attempt
        self.delay_ms = delay_ms


@dataclass(slots=True, frozen=True)
class Implementation:
    """An implementation classified once: class node, async function or blocking function."""

    impl: Any
    is_class: bool
    is_async: bool

    @classmethod
    def of(cls, impl: Any) -> Implementation:
        if inspect.isclass(impl) and issubclass(impl, BaseNode):
            return cls(impl, True, True)
        is_async = inspect.iscoroutinefunction(impl) or inspect.iscoroutinefunction(
            getattr(impl, "__call__", None)  # noqa: B004 - async callable objects
        )
        if isinstance(impl, functools.partial):
            is_async = inspect.iscoroutinefunction(impl.func)
        return cls(impl, False, is_async)


_RESULT_KEYS = frozenset(("output", "action"))
_PLAIN = (str, int, bool, type(None))
_new = object.__new__


def _slot_setter(cls: type, name: str) -> Callable[[Any, Any], None]:
    """The slot descriptor's setter: writes a frozen dataclass's field without __setattr__."""
    setter: Callable[[Any, Any], None] = getattr(cls, name).__set__
    return setter


_set_output = _slot_setter(NodeResult, "output")
_set_action = _slot_setter(NodeResult, "action")


def _result(output: Any, action: str | None) -> NodeResult:
    """NodeResult(output, action) through the slot descriptors: a frozen dataclass's __init__
    goes through object.__setattr__ per field, twice the cost on the per-node path."""
    result = _new(NodeResult)
    _set_output(result, output)
    _set_action(result, action)
    return result


def normalize_result(value: Any, node_id: str) -> NodeResult:
    """NodeResult, a mapping with keys among {output, action}, or None."""
    if type(value) is dict and value.keys() <= _RESULT_KEYS:  # the common case, checked cheaply
        output = value.get("output")
        action = value.get("action")
        if action is not None and not isinstance(action, str):
            raise InvalidNodeResultError(node_id, f"action must be a string, got {action!r}")
        if type(output) not in _PLAIN:
            output = check_json(output, node_id=node_id, key="_outputs." + node_id)
        return _result(output, action)
    if type(value) is NodeResult:
        result = value
    elif value is None:
        return NodeResult()
    elif isinstance(value, NodeResult):
        result = value
    elif isinstance(value, Mapping):
        extra = set(value) - _RESULT_KEYS
        if extra:
            raise InvalidNodeResultError(node_id, f"unexpected keys {sorted(map(str, extra))}")
        result = NodeResult(output=value.get("output"), action=value.get("action"))
    else:
        raise InvalidNodeResultError(
            node_id, f"expected NodeResult, a mapping or None, got {type(value).__name__}"
        )
    if result.action is not None and not isinstance(result.action, str):
        raise InvalidNodeResultError(node_id, f"action must be a string, got {result.action!r}")
    output = result.output
    if type(output) not in _PLAIN:
        checked = check_json(output, node_id=node_id, key="_outputs." + node_id)
        if checked is not output:
            result = NodeResult(output=checked, action=result.action)
    return result


def retryable(exc: BaseException) -> bool:
    return not isinstance(exc, _NOT_RETRYABLE)


def allows_fallback(exc: BaseException) -> bool:
    return not isinstance(exc, (FatalNodeError, AttemptCancelled, NodeCancelledError))


async def call_in_thread(fn: Callable[..., Any], *args: Any) -> Any:
    loop = asyncio.get_running_loop()
    run = contextvars.copy_context().run
    return await loop.run_in_executor(None, functools.partial(run, fn, *args))


async def _invoke(is_async: bool, fn: Callable[..., Any], *args: Any) -> Any:
    if is_async:
        return await fn(*args)
    value = await call_in_thread(fn, *args)
    if inspect.isawaitable(value):
        value = await value
    return value


async def invoke_method(method: Callable[..., Any], *args: Any) -> Any:
    """Class-node methods may be async or plain (plain ones run in a thread)."""
    return await _invoke(inspect.iscoroutinefunction(method), method, *args)


@dataclass(slots=True, eq=False)
class AttemptSpec:
    """Identity and settings shared by the attempts of one activation (or its stand-in)."""

    node_id: str
    params: Mapping[str, Any]
    input: Any
    iteration: tuple[int, ...]
    activation_id: str
    max_attempts: int
    retry_delay_ms: float
    exponential: bool
    timeout_ms: float | None
    #: The attempt to start with (a queue retry runs attempt k in its k-th job).
    first_attempt: int = 1
    #: Raise RetryLater instead of waiting for the next attempt (the queue retries).
    defer_retries: bool = False


_CONTEXT_FIELDS = (
    "context",
    "input",
    "params",
    "dependencies",
    "run_id",
    "blueprint_id",
    "node_id",
    "iteration",
    "attempt",
    "activation_id",
    "signal",
)
if tuple(f.name for f in fields(NodeContext)) != _CONTEXT_FIELDS:  # pragma: no cover
    raise ImportError("NodeContext's fields changed: update executor._CONTEXT_FIELDS")
(
    _set_context,
    _set_input,
    _set_params,
    _set_dependencies,
    _set_run_id,
    _set_blueprint_id,
    _set_node_id,
    _set_iteration,
    _set_attempt,
    _set_activation_id,
    _set_signal,
) = (_slot_setter(NodeContext, name) for name in _CONTEXT_FIELDS)


class Executor:
    """Runs attempts for one run; `emit` is None when nobody listens to events.

    `signals`, when given, holds the signal of every attempt in flight (the engine cancels
    them when the run is cancelled).
    """

    def __init__(
        self,
        *,
        store: ContextStore,
        run_id: str,
        blueprint_id: str,
        dependencies: Mapping[str, Any],
        emit: Callable[[FlowEvent], None] | None,
        is_cancelled: Callable[[], bool],
        signals: dict[CancellationToken, None] | None = None,
    ) -> None:
        self.store = store
        self.run_id = run_id
        self.blueprint_id = blueprint_id
        self.dependencies = dependencies
        self.emit = emit
        self.is_cancelled = is_cancelled
        self.signals = signals
        self.loop = asyncio.get_running_loop()
        self.loop_thread = threading.get_ident()

    def make_context(
        self, spec: AttemptSpec, attempt: int, buffer: WriteBuffer, signal: CancellationToken
    ) -> NodeContext:
        # Built through the slot descriptors, like _result: a frozen dataclass's __init__
        # costs twice as much, and there is one context per attempt.
        ctx: NodeContext = _new(NodeContext)
        _set_context(ctx, AsyncContextView(self.store, buffer, self.loop, self.loop_thread))
        _set_input(ctx, spec.input)
        _set_params(ctx, spec.params)
        _set_dependencies(ctx, self.dependencies)
        _set_run_id(ctx, self.run_id)
        _set_blueprint_id(ctx, self.blueprint_id)
        _set_node_id(ctx, spec.node_id)
        _set_iteration(ctx, spec.iteration)
        _set_attempt(ctx, attempt)
        _set_activation_id(ctx, spec.activation_id)
        _set_signal(ctx, signal)
        return ctx

    def _abandon(self, buffer: WriteBuffer, signal: CancellationToken, reason: str) -> None:
        buffer.closed = True
        signal.cancel(reason)

    async def _timed(
        self,
        make: Callable[[], Awaitable[Any]],
        spec: AttemptSpec,
        buffer: WriteBuffer,
        signal: CancellationToken,
    ) -> Any:
        """Await `make()` under the spec's timeout; cancellation of the run wins."""
        cm = asyncio.timeout(spec.timeout_ms / 1000.0) if spec.timeout_ms is not None else None
        try:
            if cm is None:
                return await make()
            async with cm:
                value = await make()
            if cm.expired():
                # The node swallowed the cancellation; the deadline still failed the attempt.
                raise TimeoutError
            return value
        except TimeoutError:
            if cm is not None and cm.expired():
                self._abandon(buffer, signal, "timeout")
                assert spec.timeout_ms is not None
                raise NodeTimeoutError(spec.node_id, spec.timeout_ms) from None
            raise
        except asyncio.CancelledError:
            if self._cancelled(buffer, signal):
                raise
            raise RuntimeError("node code raised CancelledError") from None

    def _cancelled(self, buffer: WriteBuffer, signal: CancellationToken) -> bool:
        """After CancelledError: True (attempt abandoned) if the run or the task is being
        cancelled; False if node code raised it on its own."""
        task = asyncio.current_task()
        if self.is_cancelled() or (task is not None and task.cancelling()):
            self._abandon(buffer, signal, "cancelled")
            return True
        return False

    async def attempts(
        self,
        spec: AttemptSpec,
        run_attempt: Callable[[NodeContext], Awaitable[Any]],
        *,
        fresh_buffer: Callable[[], WriteBuffer] | None = None,
        first_ctx: NodeContext | None = None,
    ) -> Outcome:
        """Up to `max_attempts` calls of `run_attempt`, each with its own buffer and signal."""
        last: BaseException | None = None
        attempt = 0
        first = spec.first_attempt
        if first != 1:
            first = max(1, min(first, spec.max_attempts))
        signals = self.signals
        for attempt in range(first, spec.max_attempts + 1):
            if attempt == first and first_ctx is not None:
                ctx = first_ctx
                buffer = ctx.context.buffer
                signal = ctx.signal
            else:
                buffer = fresh_buffer() if fresh_buffer is not None else WriteBuffer(spec.node_id)
                signal = CancellationToken()
                ctx = self.make_context(spec, attempt, buffer, signal)
            if signals is not None:
                signals[signal] = None
            try:
                if spec.timeout_ms is None:  # _timed without a deadline, one frame less
                    try:
                        raw = await run_attempt(ctx)
                    except asyncio.CancelledError:
                        if self._cancelled(buffer, signal):
                            raise
                        raise RuntimeError("node code raised CancelledError") from None
                else:
                    raw = await self._timed(
                        functools.partial(run_attempt, ctx), spec, buffer, signal
                    )
                if isinstance(raw, Waiting):
                    return Outcome(WAITING, details=raw.details, attempts=attempt)
                result = normalize_result(raw, spec.node_id)
                if buffer.closed:
                    raise NodeCancelledError(f"node {spec.node_id!r}: attempt was abandoned")
                buffer.closed = True
                # Positional (kind, result, ops, error, attempts): once per node.
                return Outcome(SUCCEEDED, result, buffer.ops, None, attempt)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                buffer.closed = True
                if self.is_cancelled():
                    raise asyncio.CancelledError from exc
                last = exc
                if not retryable(exc) or attempt >= spec.max_attempts:
                    break
                delay = spec.retry_delay_ms
                if spec.exponential:
                    delay = delay * (2 ** (attempt - 1))
                logger.warning(
                    "node %r attempt %d failed (%s: %s); retrying in %g ms",
                    spec.node_id,
                    attempt,
                    type(exc).__name__,
                    exc,
                    delay,
                    extra={"run_id": self.run_id, "node_id": spec.node_id},
                )
                if self.emit is not None:
                    self.emit(
                        NodeRetry(
                            run_id=self.run_id,
                            blueprint_id=self.blueprint_id,
                            node_id=spec.node_id,
                            iteration=spec.iteration,
                            attempt=attempt,
                            delay_ms=delay,
                            error=exc,
                        )
                    )
                if spec.defer_retries:
                    raise RetryLater(exc, attempt, delay) from exc
                if delay > 0:
                    await asyncio.sleep(delay / 1000.0)
            finally:
                if signals is not None:
                    signals.pop(signal, None)
        assert last is not None
        return Outcome(FAILED, error=last, attempts=attempt)

    async def run_function(
        self, impl: Implementation, spec: AttemptSpec, first_ctx: NodeContext | None = None
    ) -> Outcome:
        fn = impl.impl
        if impl.is_async:  # fn(ctx) is the awaitable: no wrapper
            return await self.attempts(spec, fn, first_ctx=first_ctx)

        def attempt(ctx: NodeContext) -> Awaitable[Any]:
            return _invoke(False, fn, ctx)

        return await self.attempts(spec, attempt, first_ctx=first_ctx)

    async def run_class(
        self, impl: Implementation, spec: AttemptSpec, first_ctx: NodeContext | None = None
    ) -> Outcome:
        """prep (once) -> exec (retried, timed) -> [fallback()] -> post (once)."""
        instance: BaseNode = impl.impl(spec.params, spec.node_id)
        base = WriteBuffer(spec.node_id)
        signal = CancellationToken()
        if first_ctx is not None:
            base = first_ctx.context.buffer
            signal = first_ctx.signal
        ctx = first_ctx or self.make_context(spec, 1, base, signal)
        try:
            prep_result = await invoke_method(instance.prep, ctx)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if self.is_cancelled():
                raise asyncio.CancelledError from exc
            return Outcome(FAILED, error=exc, attempts=0, recover=self._recoverer(instance, ctx))
        base_ops = dict(base.ops)

        def fresh() -> WriteBuffer:
            buffer = WriteBuffer(spec.node_id)
            buffer.ops.update(base_ops)
            return buffer

        def attempt(actx: NodeContext) -> Awaitable[Any]:
            return invoke_method(instance.exec, prep_result, actx)

        first = self.make_context(spec, spec.first_attempt, fresh(), CancellationToken())
        outcome = await self.attempts(spec, attempt, fresh_buffer=fresh, first_ctx=first)
        final_ctx = first
        if outcome.kind == FAILED:
            assert outcome.error is not None
            if not allows_fallback(outcome.error):
                outcome.recover = self._recoverer(instance, ctx)
                return outcome
            final_ctx = self.make_context(spec, outcome.attempts, fresh(), CancellationToken())
            try:
                raw = await invoke_method(instance.fallback, outcome.error, final_ctx)
                result = normalize_result(raw, spec.node_id)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self.is_cancelled():
                    raise asyncio.CancelledError from exc
                error = exc
                return Outcome(
                    FAILED,
                    error=error,
                    attempts=outcome.attempts,
                    recover=self._recoverer(instance, final_ctx),
                )
            outcome = Outcome(
                SUCCEEDED,
                result=result,
                ops=final_ctx.context.buffer.ops,
                attempts=outcome.attempts,
            )
        elif outcome.kind == WAITING:
            return outcome
        else:
            final_ctx = self.make_context(spec, outcome.attempts, WriteBuffer(spec.node_id), signal)
            final_ctx.context.buffer.ops.update(outcome.ops)
        try:
            raw = await invoke_method(instance.post, outcome.result, final_ctx)
            result = normalize_result(raw, spec.node_id)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if self.is_cancelled():
                raise asyncio.CancelledError from exc
            return Outcome(
                FAILED,
                error=exc,
                attempts=outcome.attempts,
                recover=self._recoverer(instance, final_ctx),
            )
        return Outcome(
            SUCCEEDED,
            result=result,
            ops=final_ctx.context.buffer.ops,
            attempts=outcome.attempts,
        )

    def _recoverer(
        self, instance: BaseNode, ctx: NodeContext
    ) -> Callable[[BaseException], Awaitable[None]]:
        """`recover()` runs only once the whole activation has failed (after config.fallback)."""
        return functools.partial(self._recover, instance, ctx=ctx)

    async def _recover(self, instance: BaseNode, error: BaseException, ctx: NodeContext) -> None:
        try:
            await invoke_method(instance.recover, error, ctx)
        except Exception:
            logger.exception(
                "recover() of node %r raised; ignored",
                instance.node_id,
                extra={"run_id": self.run_id, "node_id": instance.node_id},
            )

    def emit_fallback(
        self, node_id: str, iteration: tuple[int, ...], fallback: str, error: BaseException
    ) -> None:
        logger.warning(
            "node %r failed (%s: %s); falling back to %r",
            node_id,
            type(error).__name__,
            error,
            fallback,
            extra={"run_id": self.run_id, "node_id": node_id},
        )
        if self.emit is not None:
            self.emit(
                NodeFallback(
                    run_id=self.run_id,
                    blueprint_id=self.blueprint_id,
                    node_id=node_id,
                    iteration=iteration,
                    fallback=fallback,
                    error=error,
                )
            )


def monotonic_ms() -> float:
    return time.perf_counter() * 1000.0


__all__ = [
    "FAILED",
    "SUCCEEDED",
    "WAITING",
    "AttemptSpec",
    "Executor",
    "Implementation",
    "Outcome",
    "RetryLater",
    "Waiting",
    "allows_fallback",
    "normalize_result",
    "retryable",
]
