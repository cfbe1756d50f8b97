"""The execution plan: a blueprint compiled once into integer-indexed nodes and edges.

Everything the engine needs per activation (out-edges with compiled expressions, join sizes,
loop nesting, how an edge maps the source's iteration to the target's) is computed here, so
the hot path does work proportional to a node's edges only. Plans are cached on the blueprint
per evaluator.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
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


# Plans of a million-node blueprint are a million objects each of nodes and edges, and most
# attributes are at their default on most of them. So each class keeps in slots only what
# every plan has; the rest are class attributes holding the default (the `_...Defaults`
# bases), and a plan with some of them set is an instance of the `_Full...` subclass, which has
# slots for them. Either way `plan.loops` etc. read the same; only _build_plan assigns them.


class _EdgeDefaults:
    __slots__ = ()
    action: str | None = None
    condition_text: str | None = None
    condition: Compiled | None = None
    transform_text: str | None = None
    transform: Compiled | None = None
    kind: int = FORWARD
    #: Length of the common loop prefix of source and target.
    common: int = 0
    #: How many loop levels the target adds (0, or 1 when entering a loop at its header).
    enter: int = 0
    #: For an edge leaving loops: the outermost exited header (its end resolves it dead).
    exit_header: int | None = None


@dataclass(slots=True, eq=False)
class EdgePlan(_EdgeDefaults):
    index: int
    source: int
    target: int
    source_id: str
    target_id: str


class _NodeDefaults:
    __slots__ = ()
    join_any: bool = False
    #: Enclosing loop headers, outermost first (a header is inside its own loop).
    loops: tuple[int, ...] = ()
    is_header: bool = False
    is_loop_controller: bool = False
    loop_condition: Compiled | None = None
    fallback_node: int | None = None
    fallback_key: str | None = None
    is_fallback: bool = False
    is_scatter: bool = False
    is_gather: bool = False
    scatter_of_gather: int | None = None
    #: Some out-edge has a condition or transform (routing needs a context reader).
    has_expressions: bool = False
    exit_edges: tuple[EdgePlan, ...] = ()


@dataclass(slots=True, eq=False)
class NodePlan(_NodeDefaults):
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
    #: Resolutions must be tracked per activation (several preds, or fed by a loop exit).
    tracked: bool = False
    reachable: bool = True
    #: `ids.node_token(id)`, filled on first use (activation ids).
    token: str | None = None


def _with_slots_for(base: type, defaults: type) -> Any:
    """`base` with a slot for every attribute `defaults` holds at class level, defaulting to
    it: the class of plans that set some. Derived, so a new default cannot be forgotten here."""
    names = defaults.__annotations__
    namespace: dict[str, Any] = {
        "__annotations__": dict(names),
        "__module__": __name__,
        "__qualname__": f"_Full{base.__name__}",
        **{name: getattr(defaults, name) for name in names},
    }
    return dataclass(slots=True, eq=False)(type(f"_Full{base.__name__}", (base,), namespace))


_FullEdgePlan = _with_slots_for(EdgePlan, _EdgeDefaults)
_FullNodePlan = _with_slots_for(NodePlan, _NodeDefaults)
#: NodePlan's own fields, which a plan that sets a rare attribute copies into its _Full one.
_NODE_FIELDS: Final = tuple(f.name for f in fields(NodePlan))


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


def _full_node(base: NodePlan, extra: dict[str, Any]) -> NodePlan:
    node: NodePlan = _FullNodePlan(**{name: getattr(base, name) for name in _NODE_FIELDS}, **extra)
    return node


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
    #: Node index -> its attributes that differ from the `_NodeDefaults` (few nodes have any).
    rare: dict[int, dict[str, Any]] = {}
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
                reachable=n.id in reachable,
            )
        )
        extra: dict[str, Any] = {}
        if n.config.join_strategy == "any":
            extra["join_any"] = True
        if has_loops:
            loops = tuple(by_id[h] for h in node_loops.get(n.id, ()))
            if loops:
                extra["loops"] = loops
            if n.id in loop_body:
                extra["is_header"] = True
        if n.id in fallback_ids:
            extra["is_fallback"] = True
        if n.uses == BATCH_SCATTER:
            extra["is_scatter"] = True
        elif n.uses == BATCH_GATHER:
            extra["is_gather"] = True
        elif n.uses == LOOP_CONTROLLER:
            extra["is_loop_controller"] = True
            cond = n.params.get("condition")
            if isinstance(cond, str):
                extra["loop_condition"] = _compile(
                    evaluator, cond, f"nodes[{i}].params.condition", problems
                )
        fb = n.config.fallback
        if fb is not None:
            if fb in by_id:
                extra["fallback_node"] = by_id[fb]
            else:
                extra["fallback_key"] = fb
        if extra:
            rare[i] = extra

    def loops_of(index: int) -> tuple[int, ...]:
        extra = rare.get(index)
        return extra.get("loops", ()) if extra is not None else ()

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
        kind = BACK if j in back_edges else FORWARD
        if kind == FORWARD:
            preds[t][s] = None
        common = enter = 0
        exit_header = None
        if has_loops:
            s_loops, t_loops = loops_of(s), loops_of(t)
            while (
                common < len(s_loops)
                and common < len(t_loops)
                and s_loops[common] == t_loops[common]
            ):
                common += 1
            exit_header = s_loops[common] if kind == FORWARD and common < len(s_loops) else None
            enter = len(t_loops) - common if kind == FORWARD else 0
        ep: EdgePlan
        if (
            kind != FORWARD
            or common
            or enter
            or exit_header is not None
            or e.action is not None
            or e.condition is not None
            or e.transform is not None
        ):
            ep = _FullEdgePlan(
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
                enter=enter,
                exit_header=exit_header,
            )
            if exit_header is not None:
                exits.setdefault(exit_header, []).append(ep)
        else:  # a plain forward edge outside loops: every other attribute is the default
            ep = EdgePlan(index=j, source=s, target=t, source_id=e.source, target_id=e.target)
        edges.append(ep)
        out[s].append(ep)
    if problems:
        raise BlueprintError(bp.id, problems)

    for node in nodes:
        i = node.index
        node_out = out[i]
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
        if exits and i in exits:
            rare.setdefault(i, {})["exit_edges"] = tuple(exits[i])
        node.preds = tuple(preds[i])
        if (i in rare and "is_loop_controller" in rare[i]) or any(
            e.condition is not None or e.transform is not None for e in node_out
        ):
            rare.setdefault(i, {})["has_expressions"] = True
    del out, preds
    fed_by_exit = {ep.target for ep in edges if ep.exit_header is not None}
    for node in nodes:
        i = node.index
        node.tracked = (
            len(node.preds) > 1 or i in fed_by_exit or (i in rare and "is_gather" in rare[i])
        )
    for i, extra in list(rare.items()):
        if extra.get("is_scatter"):
            gather = nodes[i].params.get("gatherNodeId")
            if isinstance(gather, str) and gather in by_id:
                rare.setdefault(by_id[gather], {})["scatter_of_gather"] = i
    for i, extra in rare.items():
        nodes[i] = _full_node(nodes[i], extra)

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
