"""The execution plan: a blueprint compiled once into integer-indexed nodes and edges.

Everything the engine needs per activation (out-edges with compiled expressions, join sizes,
loop nesting, how an edge maps the source's iteration to the target's) is computed here, so
the hot path does work proportional to a node's edges only. Plans are cached on the blueprint
per evaluator.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final

from .._gc import gc_paused
from ..analysis.graph import GraphStructure, build_structure
from ..blueprint.model import Blueprint, NodeConfig, NodeDefinition
from ..errors import BlueprintError, Problem
from ..expressions import Compiled, Evaluator
from ..reserved import BATCH_GATHER, BATCH_SCATTER, LOOP_CONTROLLER

# Edge kinds.
FORWARD = 0
BACK = 1


@dataclass(slots=True, eq=False)
class EdgePlan:
    index: int
    source: int
    target: int
    source_id: str
    target_id: str
    action: str | None
    condition_text: str | None
    condition: Compiled | None
    transform_text: str | None
    transform: Compiled | None
    kind: int
    #: Length of the common loop prefix of source and target.
    common: int
    #: How many loop levels the target adds (0, or 1 when entering a loop at its header).
    enter: int
    #: For an edge leaving loops: the outermost exited header (its end resolves it dead).
    exit_header: int | None


@dataclass(slots=True, eq=False)
class NodePlan:
    index: int
    id: str
    definition: NodeDefinition
    uses: str
    params: Mapping[str, Any]
    config: NodeConfig
    out_edges: tuple[EdgePlan, ...] = ()
    #: Out-edges with parallel duplicates removed (one per target and kind): what a failed or
    #: skipped node resolves, so a target hears from it once.
    distinct_out: tuple[EdgePlan, ...] = ()
    #: Distinct predecessors over forward edges, in order of first edge declaration.
    preds: tuple[int, ...] = ()
    join_any: bool = False
    #: Enclosing loop headers, outermost first (a header is inside its own loop).
    loops: tuple[int, ...] = ()
    is_header: bool = False
    #: Resolutions must be tracked per activation (several preds, or fed by a loop exit).
    tracked: bool = False
    is_loop_controller: bool = False
    loop_condition: Compiled | None = None
    #: Forward edges whose target is this node, for "first declared edge supplies the value".
    fallback_node: int | None = None
    fallback_key: str | None = None
    is_fallback: bool = False
    is_scatter: bool = False
    is_gather: bool = False
    scatter_of_gather: int | None = None
    reachable: bool = True
    #: Some out-edge has a condition or transform (routing needs a context reader).
    has_expressions: bool = False
    exit_edges: tuple[EdgePlan, ...] = ()
    #: `ids.node_token(id)`, filled on first use (activation ids).
    token: str | None = None


@dataclass(slots=True, eq=False)
class ExecutionPlan:
    blueprint: Blueprint
    nodes: tuple[NodePlan, ...]
    edges: tuple[EdgePlan, ...]
    by_id: dict[str, int]
    entries: tuple[int, ...]
    structure: GraphStructure
    has_loops: bool
    extra: dict[str, Any] = field(default_factory=dict)


def _compile(
    evaluator: Evaluator | None, text: str, path: str, problems: list[Problem]
) -> Compiled | None:
    from ..errors import ExpressionSyntaxError
    from ..expressions import compile_expression

    try:
        return evaluator.compile(text) if evaluator is not None else compile_expression(text)
    except ExpressionSyntaxError as exc:
        problems.append(Problem(path, "INVALID_EXPRESSION", str(exc.reason)))
        return None


def get_plan(bp: Blueprint, evaluator: Evaluator | None = None) -> ExecutionPlan:
    """The cached plan for `bp` under `evaluator` (None = the default safe evaluator)."""
    cache: dict[Any, ExecutionPlan] = bp._cache.setdefault("plans", {})
    key = id(evaluator) if evaluator is not None else None
    plan = cache.get(key)
    if plan is None or (evaluator is not None and plan.extra.get("evaluator") is not evaluator):
        plan = build_plan(bp, evaluator)
        plan.extra["evaluator"] = evaluator
        cache[key] = plan
    return plan


def build_plan(bp: Blueprint, evaluator: Evaluator | None = None) -> ExecutionPlan:
    with gc_paused():
        return _build_plan(bp, evaluator)


#: The params view of every node without params (most nodes): one instead of one per node.
_NO_PARAMS: Final[Mapping[str, Any]] = MappingProxyType({})


def _build_plan(bp: Blueprint, evaluator: Evaluator | None) -> ExecutionPlan:
    built = build_structure(bp)
    structure = built.structure
    position = built.position
    by_id: dict[str, int]
    if isinstance(position, dict) and len(position) == len(bp.nodes):
        # Unique ids: the structure's id -> position dict is this very map; share it (and its
        # int objects) rather than build a second million-entry dict.
        by_id = position
    else:  # duplicate ids (a blueprint not from load_blueprint): the last one wins, as before
        by_id = {n.id: i for i, n in enumerate(bp.nodes)}
    #: One int object per position, shared by node and edge plans (an int above 256 is an
    #: object of its own: 28 bytes each, twice per node otherwise).
    ints = list(by_id.values()) if by_id is position else list(range(len(bp.nodes)))
    ints.extend(range(len(ints), len(bp.edges)))
    problems: list[Problem] = []

    nodes: list[NodePlan] = []
    has_loops = bool(structure.loop_headers)
    node_loops = structure.node_loops
    loop_body = structure.loop_body
    fallback_ids = structure.fallback_ids
    reachable = structure.reachable
    for i, n in zip(ints, bp.nodes, strict=False):  # ints may be longer (edges)
        nodes.append(
            NodePlan(
                index=i,
                id=n.id,
                definition=n,
                uses=n.uses,
                params=MappingProxyType(n.params) if n.params else _NO_PARAMS,
                config=n.config,
                join_any=n.config.join_strategy == "any",
                loops=tuple(by_id[h] for h in node_loops.get(n.id, ())) if has_loops else (),
                is_header=n.id in loop_body,
                is_loop_controller=n.uses == LOOP_CONTROLLER,
                is_fallback=n.id in fallback_ids,
                is_scatter=n.uses == BATCH_SCATTER,
                is_gather=n.uses == BATCH_GATHER,
                reachable=n.id in reachable,
            )
        )
        fb = n.config.fallback
        if fb is not None:
            if fb in by_id:
                nodes[i].fallback_node = by_id[fb]
            else:
                nodes[i].fallback_key = fb
        if n.uses == LOOP_CONTROLLER:
            cond = n.params.get("condition")
            if isinstance(cond, str):
                nodes[i].loop_condition = _compile(
                    evaluator, cond, f"nodes[{i}].params.condition", problems
                )

    edges: list[EdgePlan] = []
    out: list[list[EdgePlan]] = [[] for _ in nodes]
    # Distinct predecessors over forward edges, in order of first declaration (SPEC 3.6).
    preds: list[dict[int, None]] = [{} for _ in nodes]
    exits: dict[int, list[EdgePlan]] = {}
    back_edges = structure.back_edges
    for j, e in zip(ints, bp.edges, strict=False):
        s, t = by_id.get(e.source), by_id.get(e.target)
        if s is None or t is None:
            problems.append(Problem(f"edges[{j}]", "UNKNOWN_EDGE_TARGET", "unknown node"))
            continue
        s_loops, t_loops = nodes[s].loops, nodes[t].loops
        common = 0
        while (
            common < len(s_loops) and common < len(t_loops) and s_loops[common] == t_loops[common]
        ):
            common += 1
        kind = BACK if j in back_edges else FORWARD
        if kind == FORWARD:
            preds[t][s] = None
        exit_header = s_loops[common] if kind == FORWARD and common < len(s_loops) else None
        ep = EdgePlan(
            index=j,
            source=s,
            target=t,
            source_id=e.source,
            target_id=e.target,
            action=e.action,
            condition_text=e.condition,
            condition=_compile(evaluator, e.condition, f"edges[{j}].condition", problems)
            if e.condition is not None
            else None,
            transform_text=e.transform,
            transform=_compile(evaluator, e.transform, f"edges[{j}].transform", problems)
            if e.transform is not None
            else None,
            kind=kind,
            common=common,
            enter=len(t_loops) - common if kind == FORWARD else 0,
            exit_header=exit_header,
        )
        edges.append(ep)
        out[s].append(ep)
        if exit_header is not None:
            exits.setdefault(exit_header, []).append(ep)
    if problems:
        raise BlueprintError(bp.id, problems)

    for node in nodes:
        node_out = out[node.index]
        node.out_edges = tuple(node_out)
        if len(node_out) <= 1:
            node.distinct_out = node.out_edges
        else:
            seen: set[tuple[int, int]] = set()
            distinct = []
            for ep in node_out:
                if (ep.target, ep.kind) not in seen:
                    seen.add((ep.target, ep.kind))
                    distinct.append(ep)
            node.distinct_out = tuple(distinct)
        if exits:
            node.exit_edges = tuple(exits.get(node.index, ()))
        node.preds = tuple(preds[node.index])
        node.has_expressions = node.is_loop_controller or any(
            e.condition is not None or e.transform is not None for e in node_out
        )
    fed_by_exit = {ep.target for ep in edges if ep.exit_header is not None}
    for node in nodes:
        node.tracked = len(node.preds) > 1 or node.index in fed_by_exit or node.is_gather
    for node in nodes:
        if node.is_scatter:
            gather = node.params.get("gatherNodeId")
            if isinstance(gather, str) and gather in by_id:
                nodes[by_id[gather]].scatter_of_gather = node.index

    return ExecutionPlan(
        blueprint=bp,
        nodes=tuple(nodes),
        edges=tuple(edges),
        by_id=by_id,
        entries=tuple(by_id[n] for n in structure.entry_ids),
        structure=structure,
        has_loops=has_loops,
    )


__all__ = ["BACK", "FORWARD", "EdgePlan", "ExecutionPlan", "NodePlan", "build_plan", "get_plan"]
