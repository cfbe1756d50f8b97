"""`FlowRuntime`: the public in-process API (run, run_sync, resume)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ..blueprint.model import Blueprint
from ..cancellation import CancellationToken
from ..context import InMemoryContextStore
from ..errors import (
    BlueprintError,
    Problem,
    SerializationError,
)
from ..events import (
    EventBus,
    WorkflowFinish,
    WorkflowStall,
    WorkflowStart,
    make_emitter,
)
from ..expressions import Evaluator
from ..ids import new_run_id, validate_run_id
from ..middleware import compose
from ..registry import as_registry
from ..reserved import (
    BUILTIN_KEYS,
    ENGINE_STATE_KEYS,
    EXECUTION_ID,
    SUBFLOW,
)
from ..results import ErrorRecord, RunStatus, WorkflowResult
from ..serializer import JsonSerializer, Serializer, check_json
from ..typed import param_problems
from .activation import middleware_core
from .engine import Engine, direct_calls
from .executor import Implementation
from .plan import ExecutionPlan, get_plan

logger = logging.getLogger("flowcraft_core.runtime")

#: A blueprint with its plan, implementations, fallbacks and direct calls (FlowRuntime._prepared).
_Prepared = tuple[Blueprint, ExecutionPlan, list[Any], dict[str, Implementation], list[Any]]


def _builtin_table() -> dict[str, Any]:
    from ..nodes import BUILTINS

    return dict(BUILTINS)


class FlowRuntime:
    """Runs blueprints in this process on asyncio.

    Implementations come from `registry` (a NodeRegistry or any mapping) plus the built-ins;
    `blueprints` feeds subflows and lookups by id.
    """

    def __init__(
        self,
        *,
        registry: Mapping[str, Any] | None = None,
        blueprints: Mapping[str, Blueprint | Mapping[str, Any]] | Iterable[Blueprint] | None = None,
        dependencies: Mapping[str, Any] | None = None,
        event_bus: EventBus | None = None,
        middleware: Sequence[Any] = (),
        serializer: Serializer | None = None,
        evaluator: Evaluator | None = None,
        webhook_registrar: Any = None,
        concurrency: int | None = None,
        max_loop_iterations: int = 10_000,
    ) -> None:
        self.registry = as_registry(registry)
        self.evaluator = evaluator
        self.blueprints: dict[str, Blueprint] = self._index_blueprints(blueprints)
        self.dependencies: Mapping[str, Any] = dependencies if dependencies is not None else {}
        self.event_bus = event_bus
        self._emitter = make_emitter(event_bus)
        self.middleware = tuple(middleware)
        self._chain = compose(self.middleware, middleware_core) if self.middleware else None
        self.serializer: Serializer = serializer if serializer is not None else JsonSerializer()
        self.webhook_registrar = webhook_registrar
        self.concurrency = _check_concurrency(concurrency)
        if max_loop_iterations < 1:
            raise ValueError("max_loop_iterations must be >= 1")
        self.max_loop_iterations = max_loop_iterations
        self._builtins = _builtin_table()
        self._impl_cache: dict[int, tuple[ExecutionPlan, list[Any], dict[str, Implementation]]] = {}
        self._classified: dict[int, tuple[Any, Implementation]] = {}
        self._prepared_cache: dict[int, _Prepared] = {}

    # ----------------------------------------------------------------- inputs
    def _index_blueprints(self, blueprints: Any) -> dict[str, Blueprint]:
        if blueprints is None:
            return {}
        out: dict[str, Blueprint] = {}
        if isinstance(blueprints, Mapping):
            for key, value in blueprints.items():
                bp = self._load(value)
                if key != bp.id:
                    raise ValueError(f"blueprints[{key!r}] has id {bp.id!r}; keys must match ids")
                out[key] = bp
        else:
            for value in blueprints:
                bp = self._load(value)
                out[bp.id] = bp
        return out

    def _load(self, blueprint: Blueprint | Mapping[str, Any]) -> Blueprint:
        if isinstance(blueprint, Blueprint):
            return blueprint
        from ..blueprint.loader import load_blueprint

        return load_blueprint(blueprint, evaluator=self.evaluator)

    def resolve_blueprint(self, blueprint: Blueprint | Mapping[str, Any] | str) -> Blueprint:
        if isinstance(blueprint, str):
            try:
                return self.blueprints[blueprint]
            except KeyError:
                raise BlueprintError(
                    blueprint,
                    [Problem("$", "UNKNOWN_BLUEPRINT", f"no blueprint with id {blueprint!r}")],
                ) from None
        return self._load(blueprint)

    def initial_data(
        self, initial_context: Mapping[str, Any] | str | bytes | None
    ) -> dict[str, Any]:
        if initial_context is None:
            return {}
        if isinstance(initial_context, (str, bytes)):
            data = self.serializer.deserialize(initial_context)
        else:
            data = initial_context
        if not isinstance(data, Mapping):
            raise SerializationError("initial context must be a JSON object")
        out: dict[str, Any] = {}
        for key, value in data.items():
            if not isinstance(key, str) or not key:
                raise SerializationError(f"context key {key!r} must be a non-empty string")
            if key in ENGINE_STATE_KEYS:
                raise ValueError(f"initial context may not contain engine key {key!r}")
            out[key] = check_json(value, key=key)
        return out

    def _classify(self, impl: Any) -> Implementation:
        cached = self._classified.get(id(impl))
        if cached is not None and cached[0] is impl:
            return cached[1]
        info = Implementation.of(impl)
        self._classified[id(impl)] = (impl, info)
        return info

    def implementations(self, plan: ExecutionPlan) -> tuple[list[Any], dict[str, Implementation]]:
        """Resolve every `uses`, fallback key and batch worker once per plan (SPEC 2.1)."""
        cached = self._impl_cache.get(id(plan))
        if cached is not None and cached[0] is plan:
            return cached[1], cached[2]
        problems: list[Problem] = []
        impls: list[Any] = []
        fallbacks: dict[str, Implementation] = {}

        def lookup(key: str, path: str) -> Implementation | None:
            impl = self.registry.get(key)
            if impl is None:
                problems.append(
                    Problem(
                        path, "MISSING_IMPLEMENTATION", f"no implementation registered for {key!r}"
                    )
                )
                return None
            return self._classify(impl)

        for node in plan.nodes:
            if node.uses in BUILTIN_KEYS:
                impls.append(self._builtins[node.uses])
            else:
                impls.append(lookup(node.uses, f"nodes[{node.index}].uses"))
            if node.fallback_key is not None:
                info = lookup(node.fallback_key, f"nodes[{node.index}].config.fallback")
                if info is not None:
                    fallbacks[node.fallback_key] = info
            compensate = node.config.compensate
            if compensate is not None:
                info = lookup(compensate, f"nodes[{node.index}].config.compensate")
                if info is not None:
                    fallbacks[compensate] = info
            if node.uses == SUBFLOW:
                child = node.params.get("blueprintId")
                if child not in self.blueprints:
                    problems.append(
                        Problem(
                            f"nodes[{node.index}].params.blueprintId",
                            "UNKNOWN_SUBFLOW_BLUEPRINT",
                            f"no blueprint {child!r} in the runtime's blueprints",
                        )
                    )
            if node.is_scatter:
                worker = node.params.get("workerUsesKey")
                if isinstance(worker, str):
                    info = lookup(worker, f"nodes[{node.index}].params.workerUsesKey")
                    if info is not None:
                        fallbacks[worker] = info
        problems.extend(param_problems(plan.blueprint.nodes, self.registry))
        if problems:
            raise BlueprintError(plan.blueprint.id, problems)
        if len(self._impl_cache) > 256:
            self._impl_cache.clear()
        self._impl_cache[id(plan)] = (plan, impls, fallbacks)
        return impls, fallbacks

    def _prepared(self, bp: Blueprint) -> _Prepared:
        """`get_plan`, `implementations` and `direct_calls` for `bp`, remembered by the
        blueprint object: reading the plan cached on the blueprint (a pydantic private
        attribute) costs more than a whole chain10 node."""
        cached = self._prepared_cache.get(id(bp))
        if cached is not None and cached[0] is bp:
            return cached
        plan = get_plan(bp, self.evaluator)
        impls, fallbacks = self.implementations(plan)
        if len(self._prepared_cache) > 256:
            self._prepared_cache.clear()
        prepared = (bp, plan, impls, fallbacks, direct_calls(plan, impls, self._chain))
        self._prepared_cache[id(bp)] = prepared
        return prepared

    # ----------------------------------------------------------------- running
    async def run(
        self,
        blueprint: Blueprint | Mapping[str, Any] | str,
        initial_context: Mapping[str, Any] | str | bytes | None = None,
        *,
        run_id: str | None = None,
        signal: CancellationToken | None = None,
        concurrency: int | None = None,
        parent: tuple[str, str] | None = None,
        compensate: bool = True,
    ) -> WorkflowResult:
        """Run a blueprint to its end (or to `awaiting`); see SPEC 3.

        `compensate=False` opts this run out of compensation (docs/compensation.md)."""
        bp = self.resolve_blueprint(blueprint)
        data = self.initial_data(initial_context)
        run_id = validate_run_id(run_id) if run_id is not None else new_run_id()
        limit = _check_concurrency(concurrency) if concurrency is not None else self.concurrency
        _, plan, impls, fallbacks, direct = self._prepared(bp)
        data[EXECUTION_ID] = run_id
        engine = self._engine(plan, impls, fallbacks, run_id, data, limit, signal, direct)
        if logger.isEnabledFor(logging.INFO):
            logger.info(
                "run %s of %r started", run_id, bp.id, extra={"run_id": run_id, "node_id": None}
            )
        if self._emitter is not None:
            await self._emitter(
                WorkflowStart(
                    run_id=run_id,
                    blueprint_id=bp.id,
                    parent_run_id=parent[0] if parent else None,
                    parent_node_id=parent[1] if parent else None,
                )
            )
        engine.compensate = compensate
        engine.seed(plan.entries)
        return await self._drive(engine)

    def _engine(
        self,
        plan: ExecutionPlan,
        impls: list[Any],
        fallbacks: dict[str, Implementation],
        run_id: str,
        data: dict[str, Any],
        limit: int | None,
        signal: CancellationToken | None,
        direct: list[Any] | None = None,
    ) -> Engine:
        return Engine(
            plan=plan,
            impls=impls,
            fallback_impls=fallbacks,
            run_id=run_id,
            store=InMemoryContextStore(data),
            dependencies=self.dependencies,
            emitter=self._emitter,
            middleware_chain=self._chain,
            concurrency=limit,
            max_loop_iterations=self.max_loop_iterations,
            builtins=self._builtins,
            token=signal if signal is not None else CancellationToken(),
            runtime=self,
            direct=direct,
        )

    async def _drive(self, engine: Engine) -> WorkflowResult:
        try:
            try:
                await engine.drive()
            except asyncio.CancelledError:
                await self._finish(engine, RunStatus.CANCELLED)
                raise
            if engine.token.cancelled:
                engine.cancelled = True
            status = self._status(engine)
            return await self._finish(engine, status)
        finally:
            engine.release()

    def _status(self, engine: Engine) -> RunStatus:
        if engine.cancelled:
            return RunStatus.CANCELLED
        if engine.errors:
            return RunStatus.FAILED
        if engine.waiting:
            return RunStatus.AWAITING
        if engine.pending():
            return RunStatus.STALLED
        return RunStatus.COMPLETED

    async def _finish(self, engine: Engine, status: RunStatus) -> WorkflowResult:
        await engine.flush()
        report = None
        if status == RunStatus.FAILED and engine.compensate and engine.completed:
            report = await engine.compensate_all()
        context = dict(engine.data)
        if status == RunStatus.AWAITING:
            context.update(engine.awaiting_state())
        if status == RunStatus.STALLED and self._emitter is not None:
            await self._emitter(
                WorkflowStall(
                    run_id=engine.run_id,
                    blueprint_id=engine.blueprint_id,
                    remaining=tuple(engine.pending()),
                )
            )
        errors: list[ErrorRecord] = list(engine.errors)
        if self._emitter is not None:
            await self._emitter(
                WorkflowFinish(
                    run_id=engine.run_id,
                    blueprint_id=engine.blueprint_id,
                    status=status.value,
                    errors=tuple(errors),
                )
            )
        if logger.isEnabledFor(logging.INFO):
            logger.info(
                "run %s of %r finished: %s",
                engine.run_id,
                engine.blueprint_id,
                status.value,
                extra={"run_id": engine.run_id, "node_id": None},
            )
        return WorkflowResult(
            run_id=engine.run_id,
            status=status,
            context=context,
            serialized_context=self.serializer.serialize(context),
            errors=errors,
            compensated=report.compensated if report is not None else [],
            compensation_failed=report.failed if report is not None else [],
        )

    async def resume(
        self,
        blueprint: Blueprint | Mapping[str, Any] | str,
        serialized_context: Mapping[str, Any] | str | bytes,
        *,
        node_id: str | Sequence[str] | None = None,
        output: Any = None,
        action: str | None = None,
        signal: CancellationToken | None = None,
    ) -> WorkflowResult:
        """Complete a waiting activation and continue the same run (SPEC 3.11)."""
        from .resume import resume_run

        return await resume_run(
            self,
            blueprint,
            serialized_context,
            node_id=node_id,
            output=output,
            action=action,
            signal=signal,
        )

    async def send_event(
        self,
        blueprint: Blueprint | Mapping[str, Any] | str,
        serialized_context: Mapping[str, Any] | str | bytes,
        name: str,
        payload: Any = None,
    ) -> WorkflowResult:
        """Resume the awaiting run's `wait` node whose `params.event` is `name`, with `payload`
        as its output (docs/events.md); RunNotAwaitingError if none waits on it now."""
        from .named_events import send_event

        return await send_event(self, blueprint, serialized_context, name, payload)

    def run_sync(
        self,
        blueprint: Blueprint | Mapping[str, Any] | str,
        initial_context: Mapping[str, Any] | str | bytes | None = None,
        **kwargs: Any,
    ) -> WorkflowResult:
        """Blocking `run` for scripts; refuses to nest inside a running event loop."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(self.run(blueprint, initial_context, **kwargs))
        raise RuntimeError("run_sync() cannot be called from a running event loop; await run()")


def _check_concurrency(value: int | None) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"concurrency must be an integer >= 1, got {value!r}")
    return value


__all__ = ["FlowRuntime"]
