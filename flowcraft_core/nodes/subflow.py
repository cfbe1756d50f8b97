"""`subflow`: run another registered blueprint as a child run (SPEC 5.6)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import SubflowError
from ..reserved import INPUTS_PREFIX, OUTPUTS_PREFIX
from ..results import NodeResult, RunStatus, WorkflowResult
from ..runtime.executor import FAILED, SUCCEEDED, WAITING, AttemptSpec, Outcome
from ..runtime.plan import get_plan
from ..runtime.routing import ContextReader, resolve_reference

if TYPE_CHECKING:
    from ..blueprint.model import Blueprint
    from ..runtime.engine import Engine
    from ..runtime.plan import NodePlan
    from ..runtime.runtime import FlowRuntime


class SubflowHost(Protocol):
    """What the pure subflow rules read: the in-process engine, or a distributed job's host."""

    @property
    def runtime(self) -> FlowRuntime: ...

    @property
    def data(self) -> Mapping[str, Any]: ...


def child_blueprint(runtime: FlowRuntime, node: NodePlan) -> Blueprint:
    """The blueprint a subflow node runs (`implementations` checked that it is known)."""
    return runtime.blueprints[node.params["blueprintId"]]


def child_context(
    engine: SubflowHost, node: NodePlan, value: Any, child: Blueprint
) -> dict[str, Any]:
    mapping = node.params.get("inputs")
    if isinstance(mapping, dict):
        reader = ContextReader(engine.data)
        return {key: resolve_reference(ref, reader) for key, ref in mapping.items()}
    context: dict[str, Any] = {}
    if value is not None:
        for start in get_plan(child, engine.runtime.evaluator).structure.start_ids:
            context[INPUTS_PREFIX + start] = value
    return context


def first_error(result: WorkflowResult) -> str | None:
    if not result.errors:
        return None
    err = result.errors[0]
    return f"{err.node_id}: {err.type}: {err.message}"


def subflow_outcome(
    engine: SubflowHost, node: NodePlan, child: Blueprint, result: WorkflowResult
) -> Outcome:
    """Map the child's result onto the subflow node's activation."""
    if result.status == RunStatus.COMPLETED:
        ctx = result.context
        mapping = node.params.get("outputs")
        if isinstance(mapping, dict):
            ops: dict[str, Any] = {}
            for parent_key, ref in mapping.items():
                out_key = OUTPUTS_PREFIX + ref
                ops[parent_key] = ctx[out_key] if out_key in ctx else ctx.get(ref)
            return Outcome(SUCCEEDED, result=NodeResult(output=dict(ops)), ops=ops, attempts=1)
        plan = get_plan(child, engine.runtime.evaluator)
        terminals = [n.id for n in plan.nodes if not n.out_edges and not n.is_fallback]
        outputs = {t: ctx.get(OUTPUTS_PREFIX + t) for t in terminals}
        output = outputs[terminals[0]] if len(terminals) == 1 else outputs
        return Outcome(SUCCEEDED, result=NodeResult(output=output), attempts=1)
    if result.status == RunStatus.AWAITING:
        details = {
            "reason": "subflow",
            "childRunId": result.run_id,
            "awaiting": list(result.context.get("_awaitingNodeIds", [])),
        }
        return Outcome(WAITING, details=details, attempts=1, state=result.serialized_context)
    error = SubflowError(
        node_id=node.id,
        blueprint_id=child.id,
        child_run_id=result.run_id,
        child_status=result.status.value,
        first_error=first_error(result),
    )
    return Outcome(FAILED, error=error, attempts=1)


async def subflow_node(engine: Engine, node: NodePlan, spec: AttemptSpec) -> Outcome:
    runtime = engine.runtime
    child = child_blueprint(runtime, node)
    context = child_context(engine, node, spec.input, child)
    result = await runtime.run(
        child, context, run_id=spec.activation_id, parent=(engine.run_id, node.id)
    )
    return subflow_outcome(engine, node, child, result)


__all__ = ["SubflowHost", "child_blueprint", "child_context", "subflow_node", "subflow_outcome"]
