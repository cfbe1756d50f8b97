"""The in-process driver: one `Engine` per run call.

State changes (joins, skips, loop bookkeeping) are synchronous and iterative; only node code
and event delivery are awaited. Ready activations go to a FIFO queue drained by at most
`concurrency` worker tasks, so a chain runs in one task with no per-node task creation.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from collections import deque
from collections.abc import Mapping
from typing import Any

from ..cancellation import CancellationToken
from ..context import InMemoryContextStore, WriteBuffer
from ..errors import ExpressionError, LoopLimitError
from ..events import (
    ContextChange,
    EdgeEvaluate,
    Emitter,
    FlowEvent,
    NodeAwaiting,
    NodeError,
    NodeFinish,
    NodeSkipped,
    NodeStart,
)
from ..ids import activation_id
from ..node import NodeContext
from ..reserved import CATCH_ERROR, INPUTS_PREFIX, OUTPUTS_PREFIX
from ..results import ErrorRecord, NodeResult
from .batches import Batches
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
from .plan import BACK, EdgePlan, ExecutionPlan, NodePlan
from .routing import ContextReader, edge_value, resolve_inputs, select_edges

logger = logging.getLogger("flowcraft_core.engine")

_ACTIVE: contextvars.ContextVar[tuple[Engine, NodePlan, AttemptSpec, list[Outcome]]] = (
    contextvars.ContextVar("flowcraft_active_activation")
)


async def middleware_core(ctx: NodeContext) -> NodeResult:
    """The innermost step of every middleware chain: run the current activation."""
    engine, node, spec, box = _ACTIVE.get()
    outcome = await engine.run_node(node, spec, ctx)
    box.append(outcome)
    if outcome.kind == FAILED:
        assert outcome.error is not None
        raise outcome.error
    return outcome.result if outcome.result is not None else NodeResult()


TAKEN = 0
DEAD = 1
FAILED_RES = 2


class Act:
    """A ready activation waiting for a worker."""

    __slots__ = ("entry", "item", "iteration", "node", "value")

    def __init__(
        self,
        node: NodePlan,
        iteration: tuple[int, ...],
        value: Any,
        entry: bool,
        item: int = -1,
    ) -> None:
        self.node = node
        self.iteration = iteration
        self.value = value
        self.entry = entry
        #: Batch item index (the node is then the scatter), or -1.
        self.item = item


class JoinState:
    __slots__ = ("res", "values")

    def __init__(self) -> None:
        self.res: dict[int, int] = {}
        self.values: dict[int, Any] = {}


class Engine:
    def __init__(
        self,
        *,
        plan: ExecutionPlan,
        impls: list[Any],
        fallback_impls: Mapping[str, Implementation],
        run_id: str,
        store: InMemoryContextStore,
        dependencies: Mapping[str, Any],
        emitter: Emitter | None,
        middleware_chain: Any,
        concurrency: int | None,
        max_loop_iterations: int,
        builtins: Mapping[str, Any],
        token: CancellationToken,
        runtime: Any = None,
    ) -> None:
        self.runtime = runtime
        self.plan = plan
        self.nodes = plan.nodes
        self.impls = impls
        self.fallback_impls = fallback_impls
        self.run_id = run_id
        self.blueprint_id = plan.blueprint.id
        self.store = store
        self.data = store.data
        self.emitter = emitter
        self.events: list[FlowEvent] | None = [] if emitter is not None else None
        self.chain = middleware_chain
        self.limit = concurrency
        self.max_loop_iterations = max_loop_iterations
        self.builtins = builtins
        self.token = token
        self.errors: list[ErrorRecord] = []
        self.waiting: dict[tuple[int, tuple[int, ...]], dict[str, Any]] = {}
        #: Private state of waiting activations (a subflow's child context).
        self.waiting_state: dict[tuple[int, tuple[int, ...]], Any] = {}
        self.batches = Batches(self)
        self.cancelled = False
        self.ready: deque[Act] = deque()
        self._work: deque[tuple[NodePlan, tuple[int, ...], int]] = deque()
        self._joins: dict[tuple[int, tuple[int, ...]], JoinState] = {}
        self._ended: set[tuple[int, tuple[int, ...]]] = set()
        self._workers = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._signals: dict[asyncio.Task[Any], CancellationToken] = {}
        self._done: asyncio.Future[None] | None = None
        self._flushing = False
        # Loop bookkeeping: live activations per (header, iteration prefix incl. own index).
        self._live: dict[tuple[int, tuple[int, ...]], int] = {}
        self._back_taken: set[tuple[int, tuple[int, ...]]] = set()
        self._exits_delivered: dict[tuple[int, tuple[int, ...]], set[int]] = {}
        self._has_loops = plan.has_loops
        self._unreachable_preds: dict[int, tuple[int, ...]] = {}
        self.executor = Executor(
            store=store,
            run_id=run_id,
            blueprint_id=self.blueprint_id,
            dependencies=dependencies,
            emit=self._emit if emitter is not None else None,
            is_cancelled=lambda: self.cancelled,
            track_signal=self._track_signal,
        )
        self._debug = logger.isEnabledFor(logging.DEBUG)

    # ----------------------------------------------------------------- events
    def _emit(self, event: FlowEvent) -> None:
        if self.events is not None:
            self.events.append(event)

    async def flush(self) -> None:
        """Deliver queued events in order; one flusher at a time keeps the order global."""
        if self.emitter is None or self._flushing or not self.events:
            return
        self._flushing = True
        try:
            events = self.events
            while events:
                batch = events[:]
                del events[:]
                for event in batch:
                    await self.emitter(event)
        finally:
            self._flushing = False

    # ----------------------------------------------------------------- driving
    def seed(self, entries: tuple[int, ...]) -> None:
        for index in entries:
            node = self.nodes[index]
            iteration = (0,) * len(node.loops)
            self._open(node, iteration)
            self.ready.append(Act(node, iteration, None, True))

    async def drive(self) -> None:
        """Run until nothing is ready and nothing is running (or the run is cancelled)."""
        loop = asyncio.get_running_loop()
        self._done = loop.create_future()
        self.token.add_callback(self._cancel_threadsafe)
        try:
            self._spawn(picking=False)
            if self._workers:
                await self._done
        except asyncio.CancelledError:
            self._cancel_now()
            if self._tasks:
                await asyncio.gather(*self._tasks, return_exceptions=True)
            raise
        finally:
            self.token.remove_callback(self._cancel_threadsafe)

    def _spawn(self, *, picking: bool) -> None:
        want = len(self.ready) - (1 if picking else 0)
        while want > 0 and (self.limit is None or self._workers < self.limit):
            self._workers += 1
            want -= 1
            task = asyncio.ensure_future(self._worker())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _worker(self) -> None:
        try:
            ready = self.ready
            while ready and not self.cancelled:
                act = ready.popleft()
                try:
                    await self._execute(act)
                except asyncio.CancelledError:
                    if self.cancelled:
                        break
                    raise
                if len(ready) > 1:
                    self._spawn(picking=True)
        finally:
            self._workers -= 1
            if self._workers == 0 and self._done is not None and not self._done.done():
                if not self.ready or self.cancelled:
                    self._done.set_result(None)
                else:  # pragma: no cover - defensive: work left with no worker
                    self._spawn(picking=False)

    def _cancel_threadsafe(self, _token: CancellationToken) -> None:
        loop = self.executor.loop
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._cancel_now()
        else:
            loop.call_soon_threadsafe(self._cancel_now)

    def _cancel_now(self) -> None:
        if self.cancelled:
            return
        self.cancelled = True
        for task, signal in list(self._signals.items()):
            signal.cancel("cancelled")
            task.cancel()
        for task in list(self._tasks):
            task.cancel()

    def _track_signal(self, signal: CancellationToken | None) -> None:
        task = asyncio.current_task()
        if task is None:
            return
        if signal is None:
            self._signals.pop(task, None)
        else:
            self._signals[task] = signal

    # ----------------------------------------------------------------- one activation
    def _input(self, act: Act) -> Any:
        node = act.node
        inputs = node.definition.inputs
        if inputs is not None:
            return resolve_inputs(inputs, ContextReader(self.data))
        if act.entry:
            return self.data.get(INPUTS_PREFIX + node.id)
        return act.value

    async def _execute(self, act: Act) -> None:
        node = act.node
        if act.item >= 0:
            await self.batches.run_item(act)
            self._drain()
            if self.events:
                await self.flush()
            return
        if not act.entry:
            self.data[INPUTS_PREFIX + node.id] = act.value
        value = self._input(act)
        if self.events is not None:
            self.events.append(
                NodeStart(
                    run_id=self.run_id,
                    blueprint_id=self.blueprint_id,
                    node_id=node.id,
                    iteration=act.iteration,
                    input=value,
                )
            )
            await self.flush()
        if self._debug:
            logger.debug(
                "node %r started", node.id, extra={"run_id": self.run_id, "node_id": node.id}
            )
        config = node.config
        spec = AttemptSpec(
            node_id=node.id,
            params=node.params,
            input=value,
            iteration=act.iteration,
            activation_id=activation_id(self.run_id, node.id, act.iteration),
            max_attempts=config.max_retries,
            retry_delay_ms=config.retry_delay,
            exponential=config.backoff == "exponential",
            timeout_ms=config.timeout,
        )
        started = time.perf_counter()
        if self.chain is None:
            outcome = await self.run_node(node, spec, None)
        else:
            outcome = await self._through_middleware(node, spec)
        self._complete(act, outcome, started)
        self._drain()
        if self.events:
            await self.flush()

    async def _through_middleware(self, node: NodePlan, spec: AttemptSpec) -> Outcome:
        """Run the node inside the composed middleware chain; hooks may change the result."""
        ctx = self.executor.make_context(spec, 1, WriteBuffer(spec.node_id), CancellationToken())
        box: list[Outcome] = []
        reset = _ACTIVE.set((self, node, spec, box))
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
            result = normalize_result(result, node.id)
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
        else:
            outcome = await self.executor.run_function(impl, spec, first_ctx)
        if (
            outcome.kind == FAILED
            and (node.fallback_node is not None or node.fallback_key is not None)
            and outcome.error is not None
            and allows_fallback(outcome.error)
        ):
            outcome = await self._stand_in(node, spec, outcome)
        return outcome

    async def _stand_in(self, node: NodePlan, spec: AttemptSpec, failed: Outcome) -> Outcome:
        """Run `config.fallback` inside the failed node's activation (SPEC 4.4)."""
        error = failed.error
        assert error is not None
        self.data[CATCH_ERROR] = {
            "message": str(error),
            "type": type(error).__name__,
            "nodeId": node.id,
            "blueprintId": self.blueprint_id,
        }
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
            if self.events is not None:
                self.events.append(
                    NodeStart(
                        run_id=self.run_id,
                        blueprint_id=self.blueprint_id,
                        node_id=stand_in.id,
                        iteration=spec.iteration,
                        input=value,
                    )
                )
            started = time.perf_counter()
            impl = self.impls[stand_in.index]
            if not isinstance(impl, Implementation):
                outcome: Outcome = await impl(self, stand_in, fspec)
            elif impl.is_class:
                outcome = await self.executor.run_class(impl, fspec)
            else:
                outcome = await self.executor.run_function(impl, fspec)
            name = stand_in.id
            if outcome.kind == SUCCEEDED and self.events is not None:
                assert outcome.result is not None
                self.events.append(
                    NodeFinish(
                        run_id=self.run_id,
                        blueprint_id=self.blueprint_id,
                        node_id=stand_in.id,
                        iteration=spec.iteration,
                        result=outcome.result,
                        duration_ms=(time.perf_counter() - started) * 1000.0,
                    )
                )
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

    # ----------------------------------------------------------------- completion
    def _complete(self, act: Act, outcome: Outcome, started: float) -> None:
        node = act.node
        iteration = act.iteration
        if outcome.kind == SUCCEEDED:
            result = outcome.result
            assert result is not None
            try:
                decisions = self._route(node, result, outcome)
            except ExpressionError as exc:
                outcome = Outcome(FAILED, error=exc, attempts=outcome.attempts)
            else:
                self._succeed(node, iteration, result, outcome, decisions, started)
                return
        if outcome.kind == WAITING:
            details = dict(outcome.details or {})
            details.setdefault("iteration", list(iteration))
            self.waiting[(node.index, iteration)] = details
            if outcome.state is not None:
                self.waiting_state[(node.index, iteration)] = outcome.state
            if self.events is not None:
                self.events.append(
                    NodeAwaiting(
                        run_id=self.run_id,
                        blueprint_id=self.blueprint_id,
                        node_id=node.id,
                        iteration=iteration,
                        details=details,
                    )
                )
            return
        assert outcome.error is not None
        self.fail(node, iteration, outcome.error, outcome.attempts, outcome.fallback_error)

    def _route(
        self, node: NodePlan, result: NodeResult, outcome: Outcome
    ) -> list[tuple[EdgePlan, int, Any]]:
        edges = node.out_edges
        if not edges:
            return []
        output = result.output
        if not node.has_expressions and result.action is None:
            # Fast path: every default edge is taken with the output itself.
            return [(e, TAKEN if e.action is None else DEAD, output) for e in edges]
        overlay = dict(outcome.ops)
        overlay[OUTPUTS_PREFIX + node.id] = output
        if outcome.stand_in is not None:
            overlay[OUTPUTS_PREFIX + outcome.stand_in] = output
        reader = ContextReader(self.data, overlay)
        taken = select_edges(node, result, reader)
        return [
            (e, TAKEN, edge_value(e, output, reader)) if t else (e, DEAD, None)
            for e, t in zip(edges, taken, strict=True)
        ]

    def _succeed(
        self,
        node: NodePlan,
        iteration: tuple[int, ...],
        result: NodeResult,
        outcome: Outcome,
        decisions: list[tuple[EdgePlan, int, Any]],
        started: float,
    ) -> None:
        data = self.data
        ops = outcome.ops
        events = self.events
        if events is not None:
            events.append(
                NodeFinish(
                    run_id=self.run_id,
                    blueprint_id=self.blueprint_id,
                    node_id=node.id,
                    iteration=iteration,
                    result=result,
                    duration_ms=(time.perf_counter() - started) * 1000.0,
                )
            )
        if ops:
            self.store.apply(ops.items())
        data[OUTPUTS_PREFIX + node.id] = result.output
        if outcome.stand_in is not None:
            data[OUTPUTS_PREFIX + outcome.stand_in] = result.output
        if node.is_scatter:
            self.batches.launch(node, iteration)
        if events is not None:
            self._commit_events(node.id, ops, result.output, outcome.stand_in)
            for edge, status, _ in decisions:
                events.append(
                    EdgeEvaluate(
                        run_id=self.run_id,
                        blueprint_id=self.blueprint_id,
                        source=edge.source_id,
                        target=edge.target_id,
                        edge_index=edge.index,
                        condition=edge.condition_text,
                        result=status == TAKEN,
                    )
                )
        if self._debug:
            logger.debug(
                "node %r finished", node.id, extra={"run_id": self.run_id, "node_id": node.id}
            )
        if len(decisions) == 1:
            edge, status, value = decisions[0]
            self._resolve_edge(edge, status, value, iteration)
        elif decisions:
            self._resolve_many(decisions, iteration)
        self._close(node, iteration)

    def _commit_events(
        self, node_id: str, ops: Mapping[str, Any], output: Any, stand_in: str | None
    ) -> None:
        from ..context import DELETED

        events = self.events
        assert events is not None
        run_id, bp_id = self.run_id, self.blueprint_id
        for key, value in ops.items():
            op = "delete" if value is DELETED else "set"
            events.append(
                ContextChange(
                    run_id=run_id,
                    blueprint_id=bp_id,
                    source_node=node_id,
                    key=key,
                    op=op,
                    value=None if value is DELETED else value,
                )
            )
        for owner in (node_id, stand_in):
            if owner is not None:
                events.append(
                    ContextChange(
                        run_id=run_id,
                        blueprint_id=bp_id,
                        source_node=node_id,
                        key=OUTPUTS_PREFIX + owner,
                        op="set",
                        value=output,
                    )
                )

    def _resolve_many(
        self, decisions: list[tuple[EdgePlan, int, Any]], iteration: tuple[int, ...]
    ) -> None:
        """Merge parallel edges to one target: taken if any is taken, first taken supplies."""
        merged: dict[tuple[int, int], tuple[EdgePlan, int, Any]] = {}
        for edge, status, value in decisions:
            key = (edge.target, edge.kind)
            seen = merged.get(key)
            if seen is None or (seen[1] != TAKEN and status == TAKEN):
                merged[key] = (edge, status, value)
        for edge, status, value in merged.values():
            self._resolve_edge(edge, status, value, iteration)

    def fail(
        self,
        node: NodePlan,
        iteration: tuple[int, ...],
        error: BaseException,
        attempts: int,
        fallback_error: BaseException | None = None,
    ) -> None:
        record = ErrorRecord.from_exception(
            error,
            node_id=node.id,
            iteration=iteration,
            attempts=attempts,
            fallback_error=fallback_error,
        )
        self.errors.append(record)
        logger.error(
            "node %r failed: %s: %s",
            node.id,
            record.type,
            record.message,
            extra={"run_id": self.run_id, "node_id": node.id},
            exc_info=error if self._debug else None,
        )
        if self.events is not None:
            self.events.append(
                NodeError(
                    run_id=self.run_id,
                    blueprint_id=self.blueprint_id,
                    node_id=node.id,
                    iteration=iteration,
                    error=record,
                )
            )
        for edge in node.out_edges:
            self._resolve_edge(edge, FAILED_RES, None, iteration)
        self._close(node, iteration)

    # ----------------------------------------------------------------- joins
    def _resolve_edge(
        self, edge: EdgePlan, status: int, value: Any, iteration: tuple[int, ...]
    ) -> None:
        if edge.kind == BACK:
            if status == TAKEN:
                self._next_iteration(edge, value, iteration)
            return
        target_iteration = iteration
        if iteration or edge.enter:
            target_iteration = iteration[: edge.common] + (0,) * edge.enter
        if edge.exit_header is not None:
            if status == DEAD:
                return  # deferred to the end of the loop
            depth = len(self.nodes[edge.exit_header].loops)
            instance = (edge.exit_header, iteration[: depth - 1])
            self._exits_delivered.setdefault(instance, set()).add(edge.index)
        self._deliver(self.nodes[edge.target], target_iteration, edge.source, status, value)

    def _deliver(
        self, node: NodePlan, iteration: tuple[int, ...], pred: int, status: int, value: Any
    ) -> None:
        if not node.tracked:
            if status == TAKEN:
                self._open(node, iteration)
                self.ready.append(Act(node, iteration, value, False))
            else:
                self._open(node, iteration)
                self._work.append((node, iteration, status))
            return
        key = (node.index, iteration)
        js = self._joins.get(key)
        if js is None:
            if key in self._ended:
                return
            js = self._joins[key] = JoinState()
            self._open(node, iteration)
            for dead in self._dead_preds(node):
                js.res[dead] = DEAD
        if pred in js.res:
            return
        js.res[pred] = status
        if status == TAKEN:
            js.values[pred] = value
            if node.join_any:
                self._fire(node, iteration, key, value)
                return
        elif status == FAILED_RES:
            self._end_join(key)
            self._work.append((node, iteration, FAILED_RES))
            return
        if len(js.res) == len(node.preds):
            if js.values:
                if len(js.values) == 1:
                    delivered = next(iter(js.values.values()))
                else:
                    delivered = {
                        self.nodes[p].id: js.values[p] for p in node.preds if p in js.values
                    }
                self._fire(node, iteration, key, delivered)
            else:
                self._end_join(key)
                self._work.append((node, iteration, DEAD))

    def _dead_preds(self, node: NodePlan) -> tuple[int, ...]:
        dead = self._unreachable_preds.get(node.index)
        if dead is None:
            dead = tuple(p for p in node.preds if not self.nodes[p].reachable)
            self._unreachable_preds[node.index] = dead
        return dead

    def _end_join(self, key: tuple[int, tuple[int, ...]]) -> None:
        del self._joins[key]
        self._ended.add(key)

    def _fire(
        self,
        node: NodePlan,
        iteration: tuple[int, ...],
        key: tuple[int, tuple[int, ...]],
        value: Any,
    ) -> None:
        self._end_join(key)
        if node.is_gather and not self.batches.gather_ready(node, iteration, value):
            return
        self.ready.append(Act(node, iteration, value, False))

    def block(self, node: NodePlan, iteration: tuple[int, ...]) -> None:
        """Mark an activation blocked (upstream failure); propagated by the next drain."""
        self._work.append((node, iteration, FAILED_RES))

    def _drain(self) -> None:
        """Propagate skips and blocks iteratively (a million-node dead chain is fine)."""
        work = self._work
        while work:
            node, iteration, status = work.popleft()
            if self.events is not None:
                self.events.append(
                    NodeSkipped(
                        run_id=self.run_id,
                        blueprint_id=self.blueprint_id,
                        node_id=node.id,
                        iteration=iteration,
                        reason="dead_path" if status == DEAD else "upstream_failed",
                    )
                )
            for edge in node.out_edges:
                self._resolve_edge(edge, status, None, iteration)
            self._close(node, iteration)

    # ----------------------------------------------------------------- loops
    def _open(self, node: NodePlan, iteration: tuple[int, ...]) -> None:
        if not self._has_loops or not node.loops:
            return
        live = self._live
        for depth, header in enumerate(node.loops):
            key = (header, iteration[: depth + 1])
            live[key] = live.get(key, 0) + 1

    def _close(self, node: NodePlan, iteration: tuple[int, ...]) -> None:
        if not self._has_loops or not node.loops:
            return
        live = self._live
        for depth in range(len(node.loops) - 1, -1, -1):
            header = node.loops[depth]
            key = (header, iteration[: depth + 1])
            left = live[key] - 1
            if left:
                live[key] = left
                continue
            del live[key]
            if key in self._back_taken:
                self._back_taken.discard(key)
            else:
                self._loop_end(header, iteration[:depth])

    def _next_iteration(self, edge: EdgePlan, value: Any, iteration: tuple[int, ...]) -> None:
        header = self.nodes[edge.target]
        depth = len(header.loops)
        key = (header.index, iteration[:depth])
        if key in self._back_taken:
            return
        self._back_taken.add(key)
        nxt = iteration[: depth - 1] + (iteration[depth - 1] + 1,)
        self._open(header, nxt)
        if nxt[-1] > self.max_loop_iterations:
            self.fail(
                header,
                nxt,
                LoopLimitError(header.id, self.max_loop_iterations, kind="max_loop_iterations"),
                0,
            )
            return
        self.ready.append(Act(header, nxt, value, False))

    def _loop_end(self, header_index: int, prefix: tuple[int, ...]) -> None:
        header = self.nodes[header_index]
        delivered = self._exits_delivered.pop((header_index, prefix), set())
        for edge in header.exit_edges:
            if edge.index not in delivered:
                target_iteration = prefix[: edge.common] + (0,) * edge.enter
                self._deliver(self.nodes[edge.target], target_iteration, edge.source, DEAD, None)

    # ----------------------------------------------------------------- end state
    def awaiting_state(self) -> dict[str, Any]:
        """The reserved keys of an awaiting run's context (SPEC 3.12)."""
        from ..reserved import AWAITING_DETAILS, AWAITING_NODE_IDS

        order = sorted(self.waiting, key=lambda key: (key[0], key[1]))
        ids: list[str] = []
        details: dict[str, Any] = {}
        for index, _iteration in order:
            node_id = self.nodes[index].id
            if node_id not in details:
                ids.append(node_id)
                details[node_id] = self.waiting[(index, _iteration)]
        from ..reserved import RUN_STATE
        from .snapshot import dump

        return {AWAITING_NODE_IDS: ids, AWAITING_DETAILS: details, RUN_STATE: dump(self)}

    def complete_waiting(self, key: tuple[int, tuple[int, ...]], outcome: Outcome) -> None:
        """Finish a waiting activation (resume) and route it like any other completion."""
        self.waiting.pop(key, None)
        self.waiting_state.pop(key, None)
        node = self.nodes[key[0]]
        self._complete(Act(node, key[1], None, False), outcome, time.perf_counter())
        self._drain()

    def pending(self) -> list[str]:
        """Activations with partial join state (only non-empty for a stalled run)."""
        return [
            self.nodes[index].id + (f"@{list(it)}" if it else "") for (index, it) in self._joins
        ]


__all__ = ["Act", "Engine"]
