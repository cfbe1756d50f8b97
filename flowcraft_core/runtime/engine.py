"""The in-process driver: one `Engine` per run call.

State changes (joins, skips, loop bookkeeping) are synchronous and iterative; only node code
and event delivery are awaited. Ready activations go to a FIFO queue drained by at most
`concurrency` worker tasks, so a chain runs in one task with no per-node task creation.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import Any

from ..cancellation import CancellationToken
from ..context import InMemoryContextStore
from ..errors import ExpressionError
from ..events import (
    ContextChange,
    EdgeEvaluate,
    Emitter,
    FlowEvent,
    NodeAwaiting,
    NodeSkipped,
)
from ..reserved import INPUTS_PREFIX, OUTPUTS_PREFIX
from ..results import ErrorRecord, NodeResult
from .activation import ActivationRunner
from .batches import Batches
from .compensation import (
    CompensationReport,
    Completed,
    compensate_one,
    failure_record,
    has_compensation,
)
from .executor import (
    FAILED,
    SUCCEEDED,
    WAITING,
    Executor,
    Implementation,
    Outcome,
)
from .plan import EdgePlan, ExecutionPlan, NodePlan
from .routing import node_input, route
from .state import DEAD, FAILED_RES, TAKEN, Act, RunState

logger = logging.getLogger("flowcraft_core.engine")


class Engine(ActivationRunner):
    """Drives one in-process run."""

    # One engine per run: with more than 30 attributes an instance dict stops sharing its
    # keys and grows by resizing, which made building an engine cost as much as a node.
    __slots__ = (
        "_debug",
        "_done",
        "_flushing",
        "_signals",
        "_tasks",
        "_unclaimed",
        "_workers",
        "batches",
        "blueprint_id",
        "builtins",
        "cancelled",
        "chain",
        "compensate",
        "completed",
        "data",
        "direct",
        "emitter",
        "errors",
        "events",
        "executor",
        "fallback_impls",
        "impls",
        "limit",
        "max_loop_iterations",
        "nodes",
        "plan",
        "ready",
        "run_id",
        "runtime",
        "state",
        "store",
        "token",
        "tracks_completions",
        "waiting",
        "waiting_state",
    )

    store: InMemoryContextStore
    data: dict[str, Any]

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
        direct: list[Any] | None = None,
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
        #: Per node, the async function to await through Executor.attempts alone (see
        #: direct_calls), else None.
        self.direct = direct if direct is not None else direct_calls(plan, impls, middleware_chain)
        self.limit = concurrency
        self.max_loop_iterations = max_loop_iterations
        self.builtins = builtins
        self.token = token
        self.errors: list[ErrorRecord] = []
        self.waiting: dict[tuple[int, tuple[int, ...]], dict[str, Any]] = {}
        #: Private state of waiting activations (a subflow's child context).
        self.waiting_state: dict[tuple[int, tuple[int, ...]], Any] = {}
        self.cancelled = False
        #: Completions to compensate if the run fails (only nodes naming `config.compensate`).
        self.completed: list[Completed] = []
        self.tracks_completions = has_compensation(plan)
        #: False when the run opted out of compensation.
        self.compensate = True
        self.batches = Batches(self)
        self.state = RunState(
            plan.nodes,
            has_loops=plan.has_loops,
            max_loop_iterations=max_loop_iterations,
            on_skip=self._on_skip if emitter is not None else None,
            on_loop_limit=lambda node, iteration, error: self.fail(node, iteration, error, 0),
            gate=self.batches.gather_ready,
        )
        self.ready = self.state.ready
        self._workers = 0
        #: Workers spawned but not yet started (each will claim one ready activation).
        self._unclaimed = 0
        self._tasks: set[asyncio.Task[None]] = set()
        #: Signals of the attempts in flight (the executor adds and removes them).
        self._signals: dict[CancellationToken, None] = {}
        self._done: asyncio.Future[None] | None = None
        self._flushing = False
        self.executor = Executor(
            store=store,
            run_id=run_id,
            blueprint_id=self.blueprint_id,
            dependencies=dependencies,
            emit=self._emit if emitter is not None else None,
            is_cancelled=lambda: self.cancelled,
            signals=self._signals,
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
        events = self.events
        sent = 0
        try:
            while sent < len(events):
                # Counted once delivered: an emit interrupted by cancellation is sent again
                # by the final flush (at-least-once rather than lost).
                await self.emitter(events[sent])
                sent += 1
        finally:
            del events[:sent]
            self._flushing = False

    # ----------------------------------------------------------------- driving
    def seed(self, entries: tuple[int, ...]) -> None:
        self.state.seed(entries)

    def _on_skip(self, node: NodePlan, iteration: tuple[int, ...], status: int) -> None:
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

    def block(self, node: NodePlan, iteration: tuple[int, ...]) -> None:
        """Mark an activation blocked (upstream failure); propagated by the next drain."""
        self.state.work.append((node, iteration, FAILED_RES))

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
        """Start workers for ready activations nobody will claim (spawned ones will)."""
        want = len(self.ready) - self._unclaimed - (1 if picking else 0)
        while want > 0 and (self.limit is None or self._workers < self.limit):
            self._workers += 1
            self._unclaimed += 1
            want -= 1
            task = self.executor.loop.create_task(self._worker())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _worker(self) -> None:
        self._unclaimed -= 1
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
        # Every attempt runs in a worker task (or in one a worker awaits): signals first, so
        # node code sees its signal set when the CancelledError arrives.
        for signal in list(self._signals):
            signal.cancel("cancelled")
        for task in list(self._tasks):
            task.cancel()

    # ----------------------------------------------------------------- one activation
    def _input(self, act: Act) -> Any:
        return node_input(act.node, self.data, entry=act.entry, delivered=act.value)

    async def _execute(self, act: Act) -> None:
        node = act.node
        if act.item >= 0:
            await self.batches.run_item(act)
            self.state.drain()
            if self.events:
                await self.flush()
            return
        if act.entry:
            value = self._input(act)
        else:
            self.data[INPUTS_PREFIX + node.id] = act.value
            value = act.value if node.definition.inputs is None else self._input(act)
        events = self.events
        if events is not None or self._debug:
            self.node_started(node.id, act.iteration, value)
            if events:
                await self.flush()
        spec = self.attempt_spec(node, act.iteration, value)
        # The start time only feeds NodeFinish.duration_ms.
        started = time.perf_counter() if events is not None else 0.0
        direct = self.direct[node.index]
        if direct is not None:  # what run_node would do, two coroutine frames less
            outcome = await self.executor.attempts(spec, direct)
        elif self.chain is None:
            outcome = await self.run_node(node, spec, None)
        else:
            outcome = await self.execute(node, spec)
        self._complete(act, outcome, started)
        if self.state.work:
            self.state.drain()
        if self.events:
            await self.flush()

    # ----------------------------------------------------------------- completion
    def _complete(self, act: Act, outcome: Outcome, started: float) -> None:
        node = act.node
        iteration = act.iteration
        if outcome.kind == SUCCEEDED:
            result = outcome.result
            assert result is not None
            try:
                decisions = route(node, result, self.data, outcome.ops, outcome.stand_in)
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
            self.node_finished(node.id, iteration, result, started)
        if ops:
            self.store.apply(ops.items())
        data[OUTPUTS_PREFIX + node.id] = result.output
        if self.tracks_completions and node.config.compensate is not None:
            self.completed.append(Completed(node.id, iteration, result.output))
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
        if decisions:
            self.state.resolve_decisions(decisions, iteration)
        if node.loops:  # close() does nothing outside loops
            self.state.close(node, iteration)

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

    def fail(
        self,
        node: NodePlan,
        iteration: tuple[int, ...],
        error: BaseException,
        attempts: int,
        fallback_error: BaseException | None = None,
    ) -> None:
        self.errors.append(self.node_failed(node.id, iteration, error, attempts, fallback_error))
        self.state.resolve_all(node, iteration, FAILED_RES)

    def release(self) -> None:
        """Break the engine's reference cycles (callbacks into itself) once the run is over,
        so refcounting frees a run at once: left to the cyclic GC, a run's ~25 objects made
        it collect every few runs (6% of chain10's time)."""
        self.state.on_skip = self.state.on_loop_limit = self.state.gate = None
        self.executor.is_cancelled = _not_cancelled
        self.executor.emit = None
        del self.batches

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
        self.state.drain()

    def pending(self) -> list[str]:
        return self.state.pending()

    async def compensate_all(self) -> CompensationReport:
        """Run the recorded completions' compensations, newest first (the run failed)."""
        report = CompensationReport([], [])
        for item in reversed(self.completed):
            outcome = await compensate_one(self, self.plan, item)
            if outcome.kind == SUCCEEDED:
                if outcome.ops:
                    self.store.apply(outcome.ops.items())
                report.compensated.append(item.node_id)
            else:
                report.failed.append(failure_record(item, outcome))
        if self.events:
            await self.flush()
        return report


def _not_cancelled() -> bool:
    return False


def direct_calls(plan: ExecutionPlan, impls: list[Any], chain: Any) -> list[Any]:
    """Per node, the implementation the engine may await through `Executor.attempts` alone,
    or None: an async function with no middleware and no `config.fallback` around it (for
    those, `run_node` adds nothing). Computed once per plan and runtime."""
    if chain is not None:
        return [None] * len(plan.nodes)
    return [
        impl.impl
        if isinstance(impl, Implementation)
        and impl.is_async
        and not impl.is_class
        and node.fallback_node is None
        and node.fallback_key is None
        else None
        for node, impl in zip(plan.nodes, impls, strict=True)
    ]


__all__ = ["Act", "Engine", "direct_calls"]
