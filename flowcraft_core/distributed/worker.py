"""Handling one job: load, execute with the shared ActivationRunner, complete, follow up.

Technology-neutral: the store and the queue are ports. `flowcraft_bullmq` wires them to Redis
and BullMQ; `LocalCluster` wires them to the in-memory twins.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ..blueprint.model import Blueprint
from ..context import DELETED
from ..errors import (
    BlueprintError,
    BlueprintVersionError,
    ExpressionError,
    LoopLimitError,
    Problem,
)
from ..events import FlowEvent, NodeAwaiting, NodeSkipped, WorkflowStart
from ..expressions import Evaluator
from ..reserved import (
    AWAITING_DETAILS,
    AWAITING_NODE_IDS,
    EXECUTION_ID,
    INPUTS_PREFIX,
    SUBFLOW,
)
from ..results import ErrorRecord, RunStatus, WorkflowResult
from ..runtime.activation import ActivationRunner
from ..runtime.batches import item_of
from ..runtime.executor import FAILED as OUT_FAILED
from ..runtime.executor import SUCCEEDED as OUT_SUCCEEDED
from ..runtime.executor import Executor, Implementation, Outcome, RetryLater
from ..runtime.plan import ExecutionPlan, NodePlan, get_plan
from ..runtime.routing import node_input, route
from ..runtime.runtime import FlowRuntime
from ..runtime.state import DEAD, FAILED_RES
from ..versioning import blueprint_pin
from . import batching, durable, subflows, transitions
from .compensation import compensate_run, compensation_job, report_of
from .preload import preload_keys
from .protocol import (
    CHILD,
    COMPENSATE,
    COMPENSATING,
    DEFAULT_ROUTE,
    FAILED,
    FINISHED_STATUSES,
    NODE,
    PAUSED,
    Applied,
    CoordinationStore,
    Followup,
    Job,
    JobQueue,
    Loaded,
    Route,
    Transition,
    akey,
)
from .scheduling import routed

logger = logging.getLogger("flowcraft_core.distributed")


class StoreContext:
    """The `ContextStore` port over a coordination store, for one run (node code's reads)."""

    def __init__(self, store: CoordinationStore, run_id: str) -> None:
        self.store = store
        self.run_id = run_id

    async def get(self, key: str) -> Any:
        return await self.store.get(self.run_id, key)

    async def snapshot(self) -> dict[str, Any]:
        return await self.store.snapshot(self.run_id)

    async def commit(self, ops: Iterable[tuple[str, Any]]) -> None:
        await self.store.commit(
            self.run_id, [(k, None, True) if v is DELETED else (k, v, False) for k, v in ops]
        )


class _JobHost(ActivationRunner):
    """What `ActivationRunner` needs, for one job."""

    def __init__(
        self,
        runtime: FlowRuntime,
        plan: ExecutionPlan,
        impls: list[Any],
        fallbacks: Mapping[str, Implementation],
        run_id: str,
        data: dict[str, Any],
        store: StoreContext,
    ) -> None:
        self.runtime = runtime
        self.plan = plan
        self.impls = impls
        self.fallback_impls = fallbacks
        self.nodes = plan.nodes
        self.run_id = run_id
        self.blueprint_id = plan.blueprint.id
        self.chain = runtime._chain
        self.store = store
        self.data = data
        self.values = data
        #: retry_mode="queue": the attempt this job runs (SPEC 9.5); None retries in-process.
        self.queue_attempt: int | None = None
        #: The run's queue and priority: its wake job goes where its other jobs go.
        self.route: Route = DEFAULT_ROUTE
        self.events: list[FlowEvent] | None = [] if runtime._emitter is not None else None
        #: What the batch built-ins ask of their host (batching.py).
        self.batches = batching.JobBatches(plan)
        self.executor = Executor(
            store=store,
            run_id=run_id,
            blueprint_id=self.blueprint_id,
            dependencies=runtime.dependencies,
            emit=self.events.append if self.events is not None else None,
            is_cancelled=lambda: False,
        )

    def emit(self, event: FlowEvent) -> None:
        if self.events is not None:
            self.events.append(event)

    async def flush(self) -> None:
        emitter = self.runtime._emitter
        if emitter is None or not self.events:
            return
        events = self.events[:]
        self.events.clear()  # the same list: the executor appends to it
        for event in events:
            await emitter(event)


def error_json(error: BaseException, *, node_id: str | None, attempts: int = 0) -> dict[str, Any]:
    return ErrorRecord.from_exception(error, node_id=node_id, attempts=attempts).to_json()


class DistributedWorker:
    """Runs jobs of any run whose blueprint it knows (the same code on every worker)."""

    def __init__(
        self,
        *,
        store: CoordinationStore,
        queue: JobQueue,
        registry: Mapping[str, Any] | None = None,
        blueprints: Mapping[str, Blueprint | Mapping[str, Any]] | Iterable[Blueprint],
        dependencies: Mapping[str, Any] | None = None,
        event_bus: Any = None,
        middleware: Sequence[Any] = (),
        evaluator: Evaluator | None = None,
        webhook_registrar: Any = None,
        max_loop_iterations: int = 10_000,
    ) -> None:
        self.store = store
        self.queue = queue
        self.runtime = FlowRuntime(
            registry=registry,
            blueprints=blueprints,
            dependencies=dependencies,
            event_bus=event_bus,
            middleware=middleware,
            evaluator=evaluator,
            webhook_registrar=webhook_registrar,
            max_loop_iterations=max_loop_iterations,
        )
        self._known_plans: OrderedDict[str, ExecutionPlan] = OrderedDict()
        #: (blueprint id, pin) -> its plan, once pin and implementations checked out.
        self._ready_plans: dict[tuple[str, str], ExecutionPlan] = {}

    # ----------------------------------------------------------------- one job
    async def handle(self, job: Job, *, attempt: int | None = None) -> None:
        """Run one job. `attempt` (retry_mode="queue", SPEC 9.5): the node attempt this job
        runs; a retryable failure before the last one raises RetryLater (the queue retries)."""
        run_id = job.run_id
        key = akey(job.node_id, job.iteration)
        known = self._known_plans.get(run_id)
        keys = None
        if known is not None and job.node_id in known.by_id:
            keys = preload_keys(known, known.nodes[known.by_id[job.node_id]])
        elif known is not None and item_of(known, job.node_id) is not None:
            keys = ()  # a batch item's input is its item
        loaded = await self.store.load(run_id, key, keys)
        if loaded.status in FINISHED_STATUSES:
            self._known_plans.pop(run_id, None)
            return
        if job.kind == COMPENSATE or loaded.status in (COMPENSATING, PAUSED):
            # A paused run's job is acknowledged without running: its activation stays owed
            # (frontier) and is enqueued again on unpause (docs/run-control.md).
            if job.kind == COMPENSATE and loaded.status == COMPENSATING:
                plan = await self._plan(run_id, loaded.blueprint_id, loaded.pin)
                if plan is not None:
                    await compensate_run(self, plan, run_id)
            return
        plan = await self._plan(run_id, loaded.blueprint_id, loaded.pin)
        if plan is None:
            return
        self._remember(run_id, plan)
        if loaded.done is not None:
            await self.follow(plan, run_id, loaded.done, notify=loaded)
            return
        if loaded.child is not None or job.kind == CHILD:  # a subflow's child (SPEC 9.7)
            await subflows.sync(self, plan, job, loaded)
            return
        if job.kind != NODE or loaded.sleeping is not None or loaded.claimed is not None:
            # A wake or a resume, or a sleeping or resumed activation's job again (SPEC 9.7).
            await durable.handle_parked(self, plan, job, loaded)
            return
        item = item_of(plan, job.node_id)
        if item is not None:  # a batch item job (SPEC 9.7)
            await batching.run_item(self, plan, job, loaded, item, attempt=attempt)
            return
        node = plan.nodes[plan.by_id[job.node_id]]
        delivered = transitions.delivered_value(plan, node, loaded.join, loaded.fired)
        host = self._host(plan, run_id, loaded.values)
        host.queue_attempt = attempt
        host.batches.loaded = loaded.batch_input
        host.route = loaded.route
        if (
            node.is_header
            and job.iteration
            and job.iteration[-1] > self.runtime.max_loop_iterations
        ):
            limit = self.runtime.max_loop_iterations
            error = LoopLimitError(node.id, limit, kind="max_loop_iterations")
            transition = self._failure(host, plan, node, job.iteration, error, 0, None, delivered)
        else:
            try:
                transition = await self._execute(
                    host, plan, node, job.iteration, delivered, loaded.join
                )
            except RetryLater:
                await host.flush()  # node:retry; the queue runs the next attempt
                raise
        await host.flush()  # before `complete`: it may make successors ready (SPEC 7.1)
        applied = await self.store.complete(run_id, transition)
        applied = await durable.after_complete(
            self, host, plan, node, job.iteration, transition, applied
        )
        await self.follow(plan, run_id, applied, notify=loaded)
        if transition.child is not None and not applied.ignored:  # parked: start the child
            loaded.child = transition.child
            await subflows.sync(self, plan, job, loaded)

    def _remember(self, run_id: str, plan: ExecutionPlan) -> None:
        """Runs seen recently: their next jobs load only the keys their node needs."""
        plans = self._known_plans
        plans[run_id] = plan
        plans.move_to_end(run_id)
        while len(plans) > 10_000:
            plans.popitem(last=False)

    def _host(self, plan: ExecutionPlan, run_id: str, values: dict[str, Any]) -> _JobHost:
        impls, fallbacks = self.runtime.implementations(plan)
        return _JobHost(
            self.runtime, plan, impls, fallbacks, run_id, values, StoreContext(self.store, run_id)
        )

    async def fail_activation(self, job: Job, error: BaseException) -> None:
        """Fail one activation without running it (its job stalled too often: SPEC 9.4 fails
        the activation with WorkerLostError, and independent branches go on). Any job of the
        activation: its node job, a wake, a resume or a `-~child` notification; a subflow
        activation's live child is cancelled (nothing would ever read its result)."""
        run_id = job.run_id
        if job.kind == COMPENSATE:  # not an activation: the reconciler enqueues it again
            logger.error("run %s: its compensation job was lost", run_id, extra={"run_id": run_id})
            return
        loaded = await self.store.load(run_id, akey(job.node_id, job.iteration), ())
        if loaded.status in FINISHED_STATUSES or loaded.done is not None:
            return
        plan = await self._plan(run_id, loaded.blueprint_id, loaded.pin)
        if plan is None:
            return
        item = item_of(plan, job.node_id)
        if item is not None:
            await batching.run_item(self, plan, job, loaded, item, lost=error)
            return
        node = plan.nodes[plan.by_id[job.node_id]]
        host = self._host(plan, run_id, loaded.values)
        delivered = transitions.delivered_value(plan, node, loaded.join, loaded.fired)
        transition = self._failure(host, plan, node, job.iteration, error, 0, None, delivered)
        child_id = None if loaded.child is None else str(loaded.child["runId"])
        if child_id is not None:  # it may wait on its child, out of flight (subflows.py)
            transition.episode = await subflows.child_episode(self.store, child_id)
        applied = await self.store.complete(run_id, transition)
        if applied.replay or applied.ignored:
            # Two jobs of this activation stalled at once (its node job and a `-~child`
            # notification) and another failer applied it first: that one reports it and
            # follows up (as the `loaded.done` return above, when they do not overlap).
            return
        # After `complete` (a node job flushes before it), so that only the failer whose
        # failure counts reports it; its node:error may then follow a successor's node:start.
        await host.flush()
        await self.follow(plan, run_id, applied, notify=loaded)
        if child_id is not None:
            await subflows.cancel_if_started(self, child_id)

    async def _plan(self, run_id: str, blueprint_id: str, pin: str) -> ExecutionPlan | None:
        """The run's plan, or None after failing the run (unknown blueprint, other version)."""
        ready = self._ready_plans.get((blueprint_id, pin))
        if ready is not None:  # checked before: a dict lookup per job, not a pin comparison
            return ready
        bp = self.runtime.blueprints.get(blueprint_id)
        if bp is None:
            error: Exception = BlueprintError(
                blueprint_id,
                [Problem("$", "UNKNOWN_BLUEPRINT", "this worker has no blueprint with this id")],
            )
        elif blueprint_pin(bp) != pin:
            error = BlueprintVersionError(blueprint_id, pin, blueprint_pin(bp))
        else:
            plan = get_plan(bp, self.runtime.evaluator)
            try:
                self.runtime.implementations(plan)
            except BlueprintError as exc:
                error = exc
            else:
                self._ready_plans[(blueprint_id, pin)] = plan
                return plan
        logger.error("run %s failed: %s", run_id, error, extra={"run_id": run_id, "node_id": None})
        await self.store.fail_run(run_id, error_json(error, node_id=None))
        await subflows.notify_ended(self, run_id)
        return None

    async def _execute(
        self,
        host: _JobHost,
        plan: ExecutionPlan,
        node: NodePlan,
        iteration: tuple[int, ...],
        delivered: tuple[bool, Any],
        join: Mapping[str, Any],
    ) -> Transition:
        data = host.values
        value = node_input(node, data, entry=not join, delivered=delivered[1])
        if delivered[0]:
            data[INPUTS_PREFIX + node.id] = delivered[1]
        if (host.queue_attempt or 1) == 1:  # node:start once per activation
            host.node_started(node.id, iteration, value)
        parked = durable.sleeping(node, iteration, value, delivered)
        if parked is not None:  # a durable sleep holds no worker (SPEC 9.7)
            return parked
        if node.uses == SUBFLOW:  # nor does a subflow: its child is a run of its own
            return subflows.parking(self, host, node, iteration, value, delivered)
        spec = host.attempt_spec(node, iteration, value)
        if host.queue_attempt is not None:  # this job is attempt k; the queue retries
            spec.first_attempt, spec.defer_retries = host.queue_attempt, True
        started = time.perf_counter()
        outcome = await host.execute(node, spec)
        return self.outcome_transition(host, plan, node, iteration, outcome, delivered, started)

    def outcome_transition(
        self,
        host: _JobHost,
        plan: ExecutionPlan,
        node: NodePlan,
        iteration: tuple[int, ...],
        outcome: Outcome,
        delivered: tuple[bool, Any],
        started: float,
    ) -> Transition:
        if outcome.kind == OUT_SUCCEEDED:
            result = outcome.result
            assert result is not None
            try:
                decisions = route(node, result, host.data, outcome.ops, outcome.stand_in)
            except ExpressionError as exc:
                return self._failure(
                    host, plan, node, iteration, exc, outcome.attempts, None, delivered
                )
            host.node_finished(node.id, iteration, result, started)
            t = transitions.success(
                plan,
                node,
                iteration,
                output=result.output,
                ops=outcome.ops,
                stand_in=outcome.stand_in,
                decisions=decisions,
                delivered=delivered,
            )
            batching.open_batch(host, node, iteration, t)
            return t
        if outcome.kind == OUT_FAILED:
            assert outcome.error is not None
            return self._failure(
                host,
                plan,
                node,
                iteration,
                outcome.error,
                outcome.attempts,
                outcome.fallback_error,
                delivered,
            )
        details = dict(outcome.details or {})
        details.setdefault("iteration", list(iteration))
        host.emit(
            NodeAwaiting(
                run_id=host.run_id,
                blueprint_id=host.blueprint_id,
                node_id=node.id,
                iteration=iteration,
                details=details,
            )
        )
        return transitions.waiting(node, iteration, details, delivered)

    def _failure(
        self,
        host: _JobHost,
        plan: ExecutionPlan,
        node: NodePlan,
        iteration: tuple[int, ...],
        error: BaseException,
        attempts: int,
        fallback_error: BaseException | None,
        delivered: tuple[bool, Any],
    ) -> Transition:
        record = host.node_failed(node.id, iteration, error, attempts, fallback_error)
        return transitions.uniform(
            plan,
            node,
            iteration,
            FAILED_RES,
            outcome=FAILED,
            error=record.to_json(),
            delivered=delivered,
        )

    # ----------------------------------------------------------------- follow-ups
    async def follow(
        self,
        plan: ExecutionPlan,
        run_id: str,
        applied: Applied,
        *,
        notify: Loaded | None = None,
        route: Route | None = None,
    ) -> None:
        """Enqueue ready activations (on their queues, with the run's priority: `route`, else
        `notify.route`); propagate skips, blocks and loop ends (iteratively).
        `notify`: the job's load; if the run is a subflow child and ends here (awaiting or
        final), its parent's `-~child` job is added (a replayed end only if still current)."""
        if route is None:
            route = notify.route if notify is not None else DEFAULT_ROUTE
        todo = deque([applied])
        emitter = self.runtime._emitter
        ended: str | None = None
        while todo:
            current = todo.popleft()
            if current.finished == COMPENSATING:  # the run failed: compensate (once per run)
                await self.queue.add_bulk([compensation_job(run_id, route)])
            if current.ignored:
                continue
            if current.finished is not None and (
                not current.replay or notify is None or current.finished == notify.status
            ):
                ended = current.finished
            if emitter is not None:  # its node:skipped events before its ready jobs (SPEC 7.1)
                for f in current.skipped:
                    await emitter(
                        NodeSkipped(
                            run_id=run_id,
                            blueprint_id=plan.blueprint.id,
                            node_id=f.node_id,
                            iteration=f.iteration,
                            reason="dead_path" if f.status == DEAD else "upstream_failed",
                        )
                    )
            if current.ready:
                await self.queue.add_bulk(
                    [route.job(plan, run_id, f.node_id, f.iteration) for f in current.ready]
                )
            for f in current.skipped:
                node = plan.nodes[plan.by_id[f.node_id]]
                t = transitions.skipped(plan, node, f.iteration, f.status)
                todo.append(await self.store.complete(run_id, t))
            for end in current.loop_ends:
                t = transitions.loop_end(plan, end.header_id, end.prefix, end.delivered, end.rest)
                todo.append(await self.store.complete(run_id, t))
        if notify is not None and ended is not None:
            job = subflows.notification(notify, ended)
            if job is not None:
                await self.queue.add_bulk([job])

    # ----------------------------------------------------------------- runs
    async def create_run(
        self,
        bp: Blueprint,
        data: dict[str, Any],
        run_id: str,
        *,
        parent: tuple[str, str, tuple[int, ...]] | None = None,
        route: Route = DEFAULT_ROUTE,
        start_at: float | None = None,
    ) -> list[Followup] | None:
        """Write a new run (meta, context with `_executionId`, what it is owed); its entry
        activations for `launch`. An existing run raises ValueError, unless `parent` is given
        (a subflow started twice): then None, and nothing is done. `route` (its queue and
        priority) and `start_at` (a delayed start): docs/scheduling.md."""
        plan = get_plan(bp, self.runtime.evaluator)
        self.runtime.implementations(plan)
        data[EXECUTION_ID] = run_id
        entries, counters = transitions.entries(plan)
        try:
            await self.store.create_run(
                run_id,
                blueprint_id=bp.id,
                pin=blueprint_pin(bp),
                context=data,
                entries=entries,
                counters=counters,
                parent=parent,
                route=dataclasses.replace(route, routed=routed(plan)),
                start_at=start_at,
            )
        except ValueError:
            if parent is None:
                raise
            return None
        return entries

    async def launch(
        self,
        bp: Blueprint,
        run_id: str,
        entries: Sequence[Followup],
        *,
        parent: tuple[str, str, tuple[int, ...]] | None = None,
        route: Route = DEFAULT_ROUTE,
        delay_ms: int = 0,
    ) -> None:
        """After `create_run`: emit `workflow:start`, enqueue the entry activations (on their
        queues, with the run's priority, `delay_ms` later)."""
        emitter = self.runtime._emitter
        if emitter is not None:
            await emitter(
                WorkflowStart(
                    run_id=run_id,
                    blueprint_id=bp.id,
                    parent_run_id=parent[0] if parent else None,
                    parent_node_id=parent[1] if parent else None,
                )
            )
        plan = get_plan(bp, self.runtime.evaluator)
        await self.queue.add_bulk(
            [route.job(plan, run_id, e.node_id, e.iteration, delay_ms=delay_ms) for e in entries]
        )

    async def cancel(self, run_id: str) -> bool:
        """Cancel a running or awaiting run and its children (SPEC 9.8): True; False if it
        had finished."""
        return await subflows.cancel(self, run_id)

    # ----------------------------------------------------------------- resume
    async def resume(
        self,
        run_id: str,
        *,
        node_id: str | Sequence[str] | None,
        output: Any,
        action: str | None,
    ) -> str:
        """Resume a waiting activation with `NodeResult(output, action)` through a resume job:
        `"resumed"`, or `"buffered"` when none matches yet (SPEC 9.7; `durable.resume`)."""
        return await durable.resume(self, run_id, node_id=node_id, output=output, action=action)

    async def result(self, run_id: str) -> WorkflowResult:
        """The run's result shaped as the in-process runtime shapes it: awaiting node ids and
        details in blueprint order (RunNotFoundError for an unknown run)."""
        status, context, errors, waiting = await self.store.result(run_id)
        report = None
        if status in (COMPENSATING, PAUSED):  # live: not a final result yet
            status = RunStatus.RUNNING
        elif status == RunStatus.FAILED and hasattr(self.store, "compensation_items"):
            _, done = await self.store.compensation_items(run_id)
            report = report_of(done) if done else None
        if status == RunStatus.AWAITING:
            bp = await self._blueprint_of(run_id)
            order = get_plan(bp, self.runtime.evaluator).by_id if bp is not None else {}
            ordered = sorted(
                waiting.items(),
                key=lambda kv: (order.get(kv[0].split("@", 1)[0], len(order)), kv[0]),
            )
            ids: list[str] = []
            details: dict[str, Any] = {}
            for key, value in ordered:
                node_id = key.split("@", 1)[0]
                if node_id not in details:
                    ids.append(node_id)
                    details[node_id] = value
            context[AWAITING_NODE_IDS] = ids
            context[AWAITING_DETAILS] = details
        return WorkflowResult(
            run_id=run_id,
            status=RunStatus(status),
            context=context,
            serialized_context=self.runtime.serializer.serialize(context),
            errors=[ErrorRecord.from_json(e) for e in errors],
            compensated=report.compensated if report is not None else [],
            compensation_failed=report.failed if report is not None else [],
        )

    async def _blueprint_of(self, run_id: str) -> Blueprint | None:
        loaded = await self.store.load(run_id, "", ())
        return self.runtime.blueprints.get(loaded.blueprint_id)


__all__ = ["DistributedWorker", "StoreContext", "error_json"]
