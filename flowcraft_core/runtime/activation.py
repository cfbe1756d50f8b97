"""Running one activation with everything around it: middleware, fallbacks, built-ins.

`ActivationRunner` is shared by the in-process engine and the distributed worker; a host
provides the plan's implementations, an `Executor`, the context store and an event list.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from ..cancellation import CancellationToken
from ..context import ContextStore, WriteBuffer
from ..events import FlowEvent, NodeError, NodeFinish, NodeStart
from ..ids import activation_id_of_token, node_token
from ..node import NodeContext
from ..reserved import CATCH_ERROR
from ..results import ErrorRecord, NodeResult
from .executor import (
    FAILED,
    SUCCEEDED,
    WAITING,
    AttemptSpec,
    Executor,
    Implementation,
    Outcome,
    allows_fallback,
    normalize_result,
)
from .plan import NodePlan
from .routing import ContextReader, resolve_inputs

logger = logging.getLogger("flowcraft_core.engine")

Runner = Callable[[NodeContext | None], Awaitable[Outcome]]

_ACTIVE: contextvars.ContextVar[tuple[Runner, list[Outcome]]] = contextvars.ContextVar(
    "flowcraft_active_activation"
)


async def middleware_core(ctx: NodeContext) -> NodeResult:
    """The innermost step of every middleware chain: run the current activation."""
    runner, box = _ACTIVE.get()
    outcome = await runner(ctx)
    box.append(outcome)
    if outcome.kind == FAILED:
        assert outcome.error is not None
        raise outcome.error
    return outcome.result if outcome.result is not None else NodeResult()


class ActivationRunner:
    """Mixin: needs `impls`, `fallback_impls`, `nodes`, `executor`, `events`, `run_id`,
    `blueprint_id`, `chain`, `store` and `data` (committed context readable synchronously)."""

    __slots__ = ()  # lets the engine use slots

    impls: list[Any]
    fallback_impls: Mapping[str, Implementation]
    nodes: tuple[NodePlan, ...]
    executor: Executor
    events: list[FlowEvent] | None
    run_id: str
    blueprint_id: str
    chain: Any
    store: ContextStore
    data: Mapping[str, Any]

    def attempt_spec(self, node: NodePlan, iteration: tuple[int, ...], value: Any) -> AttemptSpec:
        """The attempt settings of an activation of `node` (its own config and identity)."""
        config = node.config
        token = node.token
        if token is None:
            token = node.token = node_token(node.id)
        # Positional: once per activation, and keywords cost a dataclass call 2.5 times more.
        return AttemptSpec(
            node.id,  # node_id
            node.params,  # params
            value,  # input
            iteration,  # iteration
            activation_id_of_token(self.run_id, token, iteration),  # activation_id
            config.max_retries,  # max_attempts
            config.retry_delay,  # retry_delay_ms
            config.backoff == "exponential",  # exponential
            config.timeout,  # timeout_ms
        )

    async def execute(self, node: NodePlan, spec: AttemptSpec) -> Outcome:
        """Run the activation, through the middleware chain when there is one."""
        if self.chain is None:
            return await self.run_node(node, spec, None)
        return await self.through_middleware(spec, functools.partial(self.run_node, node, spec))

    def node_started(self, node_id: str, iteration: tuple[int, ...], value: Any) -> None:
        if self.events is not None:
            self.events.append(
                NodeStart(
                    run_id=self.run_id,
                    blueprint_id=self.blueprint_id,
                    node_id=node_id,
                    iteration=iteration,
                    input=value,
                )
            )
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "node %r started", node_id, extra={"run_id": self.run_id, "node_id": node_id}
            )

    def node_finished(
        self, node_id: str, iteration: tuple[int, ...], result: NodeResult, started: float
    ) -> None:
        if self.events is not None:
            self.events.append(
                NodeFinish(
                    run_id=self.run_id,
                    blueprint_id=self.blueprint_id,
                    node_id=node_id,
                    iteration=iteration,
                    result=result,
                    duration_ms=(time.perf_counter() - started) * 1000.0,
                )
            )

    def node_failed(
        self,
        node_id: str,
        iteration: tuple[int, ...],
        error: BaseException,
        attempts: int,
        fallback_error: BaseException | None = None,
    ) -> ErrorRecord:
        """Log and announce an unrecovered failure; returns its ErrorRecord."""
        record = ErrorRecord.from_exception(
            error,
            node_id=node_id,
            iteration=iteration,
            attempts=attempts,
            fallback_error=fallback_error,
        )
        logger.error(
            "node %r failed: %s: %s",
            node_id,
            record.type,
            record.message,
            extra={"run_id": self.run_id, "node_id": node_id},
            exc_info=error if logger.isEnabledFor(logging.DEBUG) else None,
        )
        if self.events is not None:
            self.events.append(
                NodeError(
                    run_id=self.run_id,
                    blueprint_id=self.blueprint_id,
                    node_id=node_id,
                    iteration=iteration,
                    error=record,
                )
            )
        return record

    async def through_middleware(self, spec: AttemptSpec, runner: Runner) -> Outcome:
        """Run an activation inside the composed middleware chain; hooks may change the result.

        `runner(first_ctx)` runs the activation itself (a node, or a batch item).
        """
        ctx = self.executor.make_context(
            spec, spec.first_attempt, WriteBuffer(spec.node_id), CancellationToken()
        )
        box: list[Outcome] = []
        reset = _ACTIVE.set((runner, box))
        try:
            result = await self.chain(ctx)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if box and box[0].kind == FAILED and box[0].error is exc:
                return box[0]
            return Outcome(FAILED, error=exc, attempts=box[0].attempts if box else 0)
        finally:
            _ACTIVE.reset(reset)
        try:
            result = normalize_result(result, spec.node_id)
        except Exception as exc:
            return Outcome(FAILED, error=exc, attempts=box[0].attempts if box else 0)
        if box and box[0].kind in (WAITING, SUCCEEDED):
            outcome = box[0]
            if outcome.kind == SUCCEEDED:
                outcome.result = result
            return outcome
        # Short-circuited or recovered: the result stands, the node's writes do not.
        return Outcome(SUCCEEDED, result=result, attempts=box[0].attempts if box else 0)

    async def run_node(
        self, node: NodePlan, spec: AttemptSpec, first_ctx: NodeContext | None
    ) -> Outcome:
        impl = self.impls[node.index]
        if not isinstance(impl, Implementation):
            outcome: Outcome = await impl(self, node, spec)
        elif impl.is_class:
            outcome = await self.executor.run_class(impl, spec, first_ctx)
        elif impl.is_async:  # run_function's own fast case, one frame less per node
            outcome = await self.executor.attempts(spec, impl.impl, first_ctx=first_ctx)
        else:
            outcome = await self.executor.run_function(impl, spec, first_ctx)
        recover = outcome.recover
        if (
            outcome.kind == FAILED
            and (node.fallback_node is not None or node.fallback_key is not None)
            and outcome.error is not None
            and allows_fallback(outcome.error)
        ):
            outcome = await self._stand_in(node, spec, outcome)
        if outcome.kind == FAILED and recover is not None and outcome.error is not None:
            await recover(outcome.error)
        return outcome

    async def _stand_in(self, node: NodePlan, spec: AttemptSpec, failed: Outcome) -> Outcome:
        """Run `config.fallback` inside the failed node's activation (SPEC 4.4)."""
        error = failed.error
        assert error is not None
        catch = {
            "message": str(error),
            "type": type(error).__name__,
            "nodeId": node.id,
            "blueprintId": self.blueprint_id,
        }
        await self.store.commit([(CATCH_ERROR, catch)])
        if node.fallback_node is not None:
            stand_in = self.nodes[node.fallback_node]
            self.executor.emit_fallback(node.id, spec.iteration, stand_in.id, error)
            inputs = stand_in.definition.inputs
            value = (
                resolve_inputs(inputs, ContextReader(self.data))
                if inputs is not None
                else spec.input
            )
            config = stand_in.config
            fspec = AttemptSpec(
                node_id=stand_in.id,
                params=stand_in.params,
                input=value,
                iteration=spec.iteration,
                activation_id=spec.activation_id,
                max_attempts=config.max_retries,
                retry_delay_ms=config.retry_delay,
                exponential=config.backoff == "exponential",
                timeout_ms=config.timeout,
            )
            self.node_started(stand_in.id, spec.iteration, value)
            started = time.perf_counter()
            impl = self.impls[stand_in.index]
            if not isinstance(impl, Implementation):
                outcome: Outcome = await impl(self, stand_in, fspec)
            elif impl.is_class:
                outcome = await self.executor.run_class(impl, fspec)
            else:
                outcome = await self.executor.run_function(impl, fspec)
            name = stand_in.id
            if outcome.kind == SUCCEEDED:
                assert outcome.result is not None
                self.node_finished(stand_in.id, spec.iteration, outcome.result, started)
        else:
            key = node.fallback_key
            assert key is not None
            self.executor.emit_fallback(node.id, spec.iteration, key, error)
            fspec = AttemptSpec(
                node_id=node.id,
                params=spec.params,
                input=spec.input,
                iteration=spec.iteration,
                activation_id=spec.activation_id,
                max_attempts=1,
                retry_delay_ms=0,
                exponential=False,
                timeout_ms=None,
            )
            impl = self.fallback_impls[key]
            if impl.is_class:
                outcome = await self.executor.run_class(impl, fspec)
            else:
                outcome = await self.executor.run_function(impl, fspec)
            name = None
        if outcome.kind == SUCCEEDED:
            outcome.attempts = failed.attempts
            outcome.stand_in = name
            return outcome
        return Outcome(FAILED, error=error, attempts=failed.attempts, fallback_error=outcome.error)


__all__ = ["ActivationRunner", "Runner", "middleware_core"]
