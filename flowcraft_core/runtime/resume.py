"""Resuming an awaiting in-process run (SPEC 3.11): checks first, then the same engine."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..blueprint.model import Blueprint
from ..cancellation import CancellationToken
from ..errors import BlueprintVersionError, RunNotAwaitingError
from ..events import WorkflowResume
from ..ids import new_run_id
from ..nodes.subflow import subflow_outcome
from ..reserved import AWAITING_DETAILS, AWAITING_NODE_IDS, EXECUTION_ID, RUN_STATE, SUBFLOW
from ..results import NodeResult, WorkflowResult
from ..serializer import check_json
from ..versioning import blueprint_pin
from .engine import Engine
from .executor import SUCCEEDED, WAITING, Outcome
from .plan import get_plan
from .snapshot import restore

if TYPE_CHECKING:
    from .runtime import FlowRuntime


async def resume_run(
    runtime: FlowRuntime,
    blueprint: Blueprint | Mapping[str, Any] | str,
    serialized_context: Mapping[str, Any] | str | bytes,
    *,
    node_id: str | Sequence[str] | None = None,
    output: Any = None,
    action: str | None = None,
    signal: CancellationToken | None = None,
) -> WorkflowResult:
    bp = runtime.resolve_blueprint(blueprint)
    if isinstance(serialized_context, (str, bytes)):
        data = runtime.serializer.deserialize(serialized_context)
    else:
        data = dict(serialized_context)
    if not isinstance(data, dict) or RUN_STATE not in data:
        raise RunNotAwaitingError("run is not awaiting: its context has no _runState")
    state = data.pop(RUN_STATE)
    data.pop(AWAITING_NODE_IDS, None)
    data.pop(AWAITING_DETAILS, None)
    pin = blueprint_pin(bp)
    if not isinstance(state, dict) or state.get("blueprintId") != bp.id:
        got = state.get("blueprintId") if isinstance(state, dict) else None
        raise BlueprintVersionError(bp.id, f"blueprint {got!r}", pin)
    if state.get("pin") != pin:
        raise BlueprintVersionError(bp.id, str(state.get("pin")), pin)
    output = check_json(output, key="output")
    if action is not None and not isinstance(action, str):
        raise ValueError(f"action must be a string, got {action!r}")
    run_id = str(data.get(EXECUTION_ID) or new_run_id())
    plan = get_plan(bp, runtime.evaluator)
    impls, fallbacks = runtime.implementations(plan)
    engine = runtime._engine(plan, impls, fallbacks, run_id, data, runtime.concurrency, signal)
    restore(engine, state)
    path = [node_id] if isinstance(node_id, str) else list(node_id or [])
    key = _choose_waiting(engine, path[0] if path else None)
    node = plan.nodes[key[0]]
    if node.uses == SUBFLOW:
        _check_child_path(
            runtime,
            runtime.blueprints[node.params["blueprintId"]],
            engine.waiting_state[key],
            path[1:],
        )
    if runtime._emitter is not None:
        await runtime._emitter(WorkflowResume(run_id=run_id, blueprint_id=bp.id, node_id=node.id))
    if node.uses == SUBFLOW:
        child = runtime.blueprints[node.params["blueprintId"]]
        child_result = await runtime.resume(
            child,
            engine.waiting_state[key],
            node_id=path[1:] or None,
            output=output,
            action=action,
            signal=signal,
        )
        outcome = subflow_outcome(engine, node, child, child_result)
    else:
        outcome = Outcome(SUCCEEDED, result=NodeResult(output=output, action=action))
    if outcome.kind == WAITING:
        engine.waiting[key] = {**(outcome.details or {}), "iteration": list(key[1])}
        engine.waiting_state[key] = outcome.state
    else:
        engine.complete_waiting(key, outcome)
    return await runtime._drive(engine)


def _check_child_path(
    runtime: FlowRuntime, child: Blueprint, child_context: Any, path: Sequence[str]
) -> None:
    """Refuse a resume through subflows (pin, path) before anything is emitted or changed."""
    data = runtime.serializer.deserialize(child_context) if isinstance(child_context, str) else {}
    state = data.get(RUN_STATE) if isinstance(data, dict) else None
    if not isinstance(state, dict):
        raise RunNotAwaitingError(f"subflow child of blueprint {child.id!r} is not awaiting")
    pin = blueprint_pin(child)
    if state.get("blueprintId") != child.id or state.get("pin") != pin:
        raise BlueprintVersionError(child.id, str(state.get("pin")), pin)
    entries = [item for item in state.get("waiting", []) if isinstance(item, dict)]
    waiting = list(dict.fromkeys(str(item["at"][0]) for item in entries))
    if not path:
        return
    if path[0] not in waiting:
        raise RunNotAwaitingError(
            f"node {path[0]!r} is not waiting; waiting nodes: {waiting}", waiting=waiting
        )
    node = child.node(path[0])
    if node.uses == SUBFLOW:
        grandchild = runtime.blueprints[node.params["blueprintId"]]
        for item in entries:
            if item["at"][0] == path[0]:
                _check_child_path(runtime, grandchild, item.get("state"), path[1:])
                return


def _choose_waiting(engine: Engine, node_id: str | None) -> tuple[int, tuple[int, ...]]:
    keys = sorted(engine.waiting)
    if not keys:
        raise RunNotAwaitingError("run has no waiting node")
    if node_id is None:
        return keys[0]
    for key in keys:
        if engine.nodes[key[0]].id == node_id:
            return key
    waiting = list(dict.fromkeys(engine.nodes[k[0]].id for k in keys))
    raise RunNotAwaitingError(
        f"node {node_id!r} is not waiting; waiting nodes: {waiting}", waiting=waiting
    )


__all__ = ["resume_run"]
