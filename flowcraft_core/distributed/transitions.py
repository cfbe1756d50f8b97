"""Building transitions from activation outcomes, with the in-process engine's own rules.

The iteration arithmetic (`forward_iteration`, `next_iteration`), the merging of parallel
edges and the delivered-value rule are the ones `RunState` uses, so both modes route alike.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ..context import DELETED
from ..reserved import INPUTS_PREFIX, OUTPUTS_PREFIX
from ..runtime.plan import BACK, EdgePlan, ExecutionPlan, NodePlan
from ..runtime.state import DEAD, TAKEN, forward_iteration, merge_parallel, next_iteration
from .protocol import (
    BLOCKED,
    FAILED,
    LOOP_END,
    PARKED,
    SKIPPED,
    SLEEPING,
    SUCCEEDED,
    WAITING,
    Close,
    Followup,
    NextIteration,
    Resolution,
    Transition,
    akey,
    loop_instance_key,
)


def counters(plan: ExecutionPlan, node: NodePlan, iteration: tuple[int, ...]) -> tuple[str, ...]:
    """The loop-iteration counters an activation of `node` keeps open (outermost first)."""
    return tuple(
        akey(plan.nodes[h].id, iteration[: depth + 1]) for depth, h in enumerate(node.loops)
    )


def closes(plan: ExecutionPlan, node: NodePlan, iteration: tuple[int, ...]) -> list[Close]:
    """Counters to release when the activation ends, innermost first (as RunState.close)."""
    out = []
    for depth in range(len(node.loops) - 1, -1, -1):
        header = plan.nodes[node.loops[depth]]
        out.append(Close(akey(header.id, iteration[: depth + 1]), header.id, iteration[:depth]))
    return out


def entries(plan: ExecutionPlan) -> tuple[list[Followup], list[str]]:
    """A new run's entry activations, and the loop counters they open (an entry may be a
    loop header: its iteration counts as live from the start, as in RunState.seed)."""
    followups: list[Followup] = []
    opened: list[str] = []
    for index in plan.entries:
        node = plan.nodes[index]
        iteration = (0,) * len(node.loops)
        followups.append(Followup(akey(node.id, iteration), node.id, iteration))
        opened += counters(plan, node, iteration)
    return followups, opened


def _dead_preds(plan: ExecutionPlan, node: NodePlan) -> tuple[str, ...]:
    return tuple(plan.nodes[p].id for p in node.preds if not plan.nodes[p].reachable)


def add_edge(
    plan: ExecutionPlan,
    t: Transition,
    edge: EdgePlan,
    status: int,
    value: Any,
    iteration: tuple[int, ...],
) -> None:
    """Record one edge resolution (SPEC 3.4, 3.7) on the transition."""
    nodes = plan.nodes
    if edge.kind == BACK:
        if status == TAKEN:
            header = nodes[edge.target]
            nxt = next_iteration(header, iteration)
            t.next.append(
                NextIteration(
                    back_key=akey(header.id, iteration[: len(header.loops)]),
                    target=akey(header.id, nxt),
                    pred=edge.source_id,
                    node_id=header.id,
                    iteration=nxt,
                    value=value,
                    open=counters(plan, header, nxt),
                )
            )
        return
    target_iteration = forward_iteration(edge, iteration)
    if edge.exit_header is not None:
        if status == DEAD:
            return  # resolved when the loop entry ends
        header = nodes[edge.exit_header]
        instance = loop_instance_key(header.id, iteration[: len(header.loops) - 1])
        t.exits.append((instance, edge.index))
    t.resolutions.append(_resolution(plan, edge, status, value, target_iteration))


def _resolution(
    plan: ExecutionPlan,
    edge: EdgePlan,
    status: int,
    value: Any,
    target_iteration: tuple[int, ...],
) -> Resolution:
    target = plan.nodes[edge.target]
    return Resolution(
        target=akey(target.id, target_iteration),
        node_id=target.id,
        iteration=target_iteration,
        pred=edge.source_id,
        status=status,
        value=value,
        expected=len(target.preds) if target.tracked else 0,
        join_any=target.join_any,
        dead=_dead_preds(plan, target) if target.tracked else (),
        open=counters(plan, target, target_iteration),
        gate=(
            akey(plan.nodes[target.scatter_of_gather].id, target_iteration)
            if target.scatter_of_gather is not None
            else None
        ),
    )


def _ops(ops: Mapping[str, Any]) -> list[tuple[str, Any, bool]]:
    return [(k, None, True) if v is DELETED else (k, v, False) for k, v in ops.items()]


def success(
    plan: ExecutionPlan,
    node: NodePlan,
    iteration: tuple[int, ...],
    *,
    output: Any,
    ops: Mapping[str, Any],
    stand_in: str | None,
    decisions: Iterable[tuple[EdgePlan, int, Any]],
    delivered: tuple[bool, Any],
) -> Transition:
    keys = (OUTPUTS_PREFIX + node.id,) + ((OUTPUTS_PREFIX + stand_in,) if stand_in else ())
    t = Transition(
        akey=akey(node.id, iteration),
        node_id=node.id,
        iteration=iteration,
        outcome=SUCCEEDED,
        output=output,
        output_keys=keys,
        ops=_inputs_op(node, delivered) + _ops(ops),
        close=closes(plan, node, iteration),
        compensable=node.config.compensate is not None,
    )
    for edge, status, value in merge_parallel(decisions):
        add_edge(plan, t, edge, status, value, iteration)
    return t


def _inputs_op(node: NodePlan, delivered: tuple[bool, Any]) -> list[tuple[str, Any, bool]]:
    has_value, value = delivered
    return [(INPUTS_PREFIX + node.id, value, False)] if has_value else []


def uniform(
    plan: ExecutionPlan,
    node: NodePlan,
    iteration: tuple[int, ...],
    status: int,
    *,
    outcome: str,
    error: dict[str, Any] | None = None,
    delivered: tuple[bool, Any] = (False, None),
) -> Transition:
    """Every out-edge resolves with one status: a failure, a skip or a block."""
    t = Transition(
        akey=akey(node.id, iteration),
        node_id=node.id,
        iteration=iteration,
        outcome=outcome,
        error=error,
        ops=_inputs_op(node, delivered) if outcome == FAILED else [],
        close=closes(plan, node, iteration),
    )
    for edge in node.distinct_out:
        add_edge(plan, t, edge, status, None, iteration)
    return t


def skipped(
    plan: ExecutionPlan, node: NodePlan, iteration: tuple[int, ...], status: int
) -> Transition:
    return uniform(plan, node, iteration, status, outcome=SKIPPED if status == DEAD else BLOCKED)


def waiting(
    node: NodePlan,
    iteration: tuple[int, ...],
    details: dict[str, Any],
    delivered: tuple[bool, Any],
) -> Transition:
    """The activation stays open (its loop counters too) until a resume completes it."""
    return Transition(
        akey=akey(node.id, iteration) + "~wait",
        node_id=node.id,
        iteration=iteration,
        outcome=WAITING,
        waiting=details,
        ops=_inputs_op(node, delivered),
    )


def sleeping(
    node: NodePlan,
    iteration: tuple[int, ...],
    wake_at_ms: float,
    value: Any,
    delivered: tuple[bool, Any],
) -> Transition:
    """A durable sleep (SPEC 9.7): the activation stays in flight (and its loop counters open)
    until its wake job completes it with `value`, its input, as output."""
    return Transition(
        akey=akey(node.id, iteration) + "~sleep",
        node_id=node.id,
        iteration=iteration,
        outcome=SLEEPING,
        ops=_inputs_op(node, delivered),
        sleep=(float(wake_at_ms), value),
    )


def parked(
    node: NodePlan,
    iteration: tuple[int, ...],
    child: dict[str, Any],
    delivered: tuple[bool, Any],
) -> Transition:
    """A subflow activation parked on its child run (SPEC 9.7): it stays in flight (and its
    loop counters open) until the child's outcome completes it or makes it wait."""
    return Transition(
        akey=akey(node.id, iteration) + "~child",
        node_id=node.id,
        iteration=iteration,
        outcome=PARKED,
        ops=_inputs_op(node, delivered),
        child=child,
    )


def loop_end(
    plan: ExecutionPlan,
    header_id: str,
    prefix: tuple[int, ...],
    delivered: Iterable[int],
    rest: Iterable[Close] = (),
) -> Transition:
    """A loop entry ended: its exit edges never taken resolve dead (SPEC 3.7 rule 5)."""
    header = plan.nodes[plan.by_id[header_id]]
    done = set(delivered)
    t = Transition(
        akey="~end:" + loop_instance_key(header_id, prefix),
        node_id=header_id,
        iteration=prefix,
        outcome=LOOP_END,
        close=list(rest),
    )
    for edge in header.exit_edges:
        if edge.index not in done:
            target_iteration = forward_iteration(edge, prefix)
            t.resolutions.append(_resolution(plan, edge, DEAD, None, target_iteration))
    return t


def delivered_value(
    plan: ExecutionPlan, node: NodePlan, join: Mapping[str, tuple[int, Any]], fired: str | None
) -> tuple[bool, Any]:
    """SPEC 3.6 from a join record: (has a delivered value, the value)."""
    if fired is not None and fired in join:
        return True, join[fired][1]
    taken = {p: v for p, (s, v) in join.items() if s == TAKEN}
    if not taken:
        return False, None
    if len(taken) == 1:
        return True, next(iter(taken.values()))
    order = [plan.nodes[p].id for p in node.preds]
    return True, {p: taken[p] for p in order if p in taken}


__all__ = [
    "add_edge",
    "closes",
    "counters",
    "delivered_value",
    "entries",
    "loop_end",
    "parked",
    "skipped",
    "sleeping",
    "success",
    "uniform",
    "waiting",
]
