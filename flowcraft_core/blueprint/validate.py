"""Semantic checks of SPEC 1.4 that pydantic cannot express, and expression compilation.

The checks run on a `Draft`: the parts of a blueprint that passed schema validation. A check that
needs a broken part is skipped rather than guessed at, so one mistake is reported once instead of
cascading. Every check is a single pass over nodes or edges with dict/set lookups, so validation
stays linear in the size of the blueprint.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, NamedTuple, TypeVar

from flowcraft_core import reserved
from flowcraft_core.errors import BlueprintError, ExpressionError, Problem
from flowcraft_core.expressions import Compiled, Evaluator, SafeEvaluator

from .builtin_params import check_builtin_params
from .model import Blueprint, BlueprintMetadata, EdgeDefinition, NodeDefinition

if TYPE_CHECKING:
    from flowcraft_core.analysis.graph import GraphStructure

T = TypeVar("T")
Loc = tuple[str | int, ...]
#: Keys of the compiled-expression map: ("edge", index, "condition" | "transform") or
#: ("node", node_id, "condition") for a loop-controller.
ExpressionKey = tuple[str, int | str, str]

_ITEM_ID_RE: Final = re.compile(r"(.+)\[([0-9]+)\]", re.ASCII)


class Issue(NamedTuple):
    """A problem before its path is rendered: `loc` is a tuple of JSON keys and indices."""

    loc: Loc
    code: str
    message: str


def format_loc(loc: Loc) -> str:
    """`("nodes", 2, "config", "joinStrategy")` -> `nodes[2].config.joinStrategy`; `()` -> `$`."""
    if not loc:
        return "$"
    parts: list[str] = []
    for element in loc:
        if isinstance(element, int):
            parts.append(f"[{element}]")
        elif _IDENT_RE.fullmatch(element):
            parts.append(f".{element}" if parts else element)
        else:
            parts.append("[" + _quote(element) + "]")
    return "".join(parts)


_IDENT_RE: Final = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*")


#: Characters a path must not print raw: controls (a key could carry terminal escape
#: sequences into `flowcraft validate` output) and line separators (one problem, one line).
_UNPRINTABLE_RE: Final = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _quote(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    escaped = _UNPRINTABLE_RE.sub(lambda m: f"\\u{ord(m.group()):04x}", escaped)
    return f'"{escaped}"'


@dataclass(slots=True)
class Draft:
    """The parts of a blueprint that passed schema validation.

    `nodes[i]`/`edges[i]` are None when that entry is broken. `node_ids[i]` is the id of entry `i`
    when its `id` field is valid, even if other fields of that node are not, so one bad `config`
    does not make every edge into that node look dangling.
    """

    nodes: list[NodeDefinition | None]
    node_ids: list[str | None]
    nodes_valid: bool  # `nodes` is an array: ids not listed do not exist
    edges: list[EdgeDefinition | None]
    edges_valid: bool  # `edges` is an array and every edge is valid
    metadata: BlueprintMetadata | None
    blueprint: Blueprint | None = None

    @classmethod
    def of(cls, bp: Blueprint) -> Draft:
        return cls(
            nodes=list(bp.nodes),
            node_ids=[n.id for n in bp.nodes],
            nodes_valid=True,
            edges=list(bp.edges),
            edges_valid=True,
            metadata=bp.metadata,
            blueprint=bp,
        )


def check_semantics(draft: Draft) -> list[Issue]:
    """Every rule of the SPEC 1.4 table except the schema rules and expressions."""
    issues: list[Issue] = []
    first: dict[str, int] = {}
    for i, node_id in enumerate(draft.node_ids):
        if node_id is None:
            continue
        j = first.setdefault(node_id, i)
        if j != i:
            issues.append(
                Issue(
                    ("nodes", i, "id"),
                    "DUPLICATE_NODE_ID",
                    f"duplicate node id {node_id!r} (first used at nodes[{j}])",
                )
            )
    ids = first if draft.nodes_valid else None
    # Generators, not lists: (index, model) pairs for a million-node blueprint cost 0.2 GB.
    nodes = functools.partial(_present, draft.nodes)
    edges = functools.partial(_present, draft.edges)

    def node_by_id(node_id: str) -> tuple[int, NodeDefinition | None]:
        index = first[node_id]
        return index, draft.nodes[index]

    if ids is not None:
        issues.extend(_check_endpoints(edges(), ids, draft.metadata))
    fallback_of = _fallback_targets(nodes(), ids, issues)
    for fallback_id, owner in fallback_of.items():
        index, target = node_by_id(fallback_id)
        own = target.config.fallback if target is not None else None
        if own is not None and own != fallback_id:
            issues.append(
                Issue(
                    ("nodes", index, "config", "fallback"),
                    "FALLBACK_CHAIN",
                    f"node {fallback_id!r} is the fallback of {owner!r} and cannot have a "
                    f"fallback of its own ({own!r})",
                )
            )
    for i, edge in edges() if fallback_of else ():
        for end in ("source", "target"):
            node_id = edge.source if end == "source" else edge.target
            if node_id in fallback_of:
                issues.append(
                    Issue(
                        ("edges", i, end),
                        "FALLBACK_HAS_EDGES",
                        f"{node_id!r} is the fallback of {fallback_of[node_id]!r}; "
                        "fallback nodes cannot have edges",
                    )
                )

    # Only batch-scatter nodes look edges up by their ends: build that set only for them.
    has_scatter = any(n is not None and n.uses == reserved.BATCH_SCATTER for n in draft.nodes)
    pairs = (
        {(e.source, e.target) for _, e in edges()} if draft.edges_valid and has_scatter else None
    )
    continues = {e.source for _, e in edges() if e.action == "continue"}
    scatter_ids: set[str] = set()
    for i, node in nodes():
        uses = node.uses
        issues.extend(_event_config(i, node))
        if uses not in reserved.BUILTIN_KEYS:
            continue
        for sub, code, message in check_builtin_params(uses, node.params):
            issues.append(Issue(("nodes", i, "params", *sub), code, message))
        if uses in reserved.NO_RETRY_KEYS:
            issues.extend(_unsupported_config(i, node))
        if uses == reserved.LOOP_CONTROLLER and draft.edges_valid and node.id not in continues:
            issues.append(
                Issue(
                    ("nodes", i),
                    "LOOP_WITHOUT_CONTINUE",
                    f"loop-controller {node.id!r} has no outgoing edge with action 'continue'",
                )
            )
        if uses == reserved.BATCH_SCATTER:
            scatter_ids.add(node.id)
            gather = node.params.get("gatherNodeId")
            if ids is not None and isinstance(gather, str) and gather:
                problem = _gather_problem(node.id, gather, ids, node_by_id, pairs)
                if problem is not None:
                    loc: Loc = ("nodes", i, "params", "gatherNodeId")
                    issues.append(Issue(loc, "INVALID_PARAM", problem))
    if scatter_ids:
        issues.extend(_reserved_ids(draft.node_ids, scatter_ids))
    if draft.blueprint is not None and len(first) == len(draft.node_ids):
        issues.extend(_irreducible(draft.blueprint))
    return issues


def _present(items: list[T | None]) -> Iterator[tuple[int, T]]:
    return ((i, item) for i, item in enumerate(items) if item is not None)


def _check_endpoints(
    edges: Iterable[tuple[int, EdgeDefinition]],
    ids: dict[str, int],
    metadata: BlueprintMetadata | None,
) -> Iterable[Issue]:
    for i, edge in edges:
        if edge.source not in ids:
            yield Issue(
                ("edges", i, "source"), "UNKNOWN_EDGE_SOURCE", f"unknown node {edge.source!r}"
            )
        if edge.target not in ids:
            yield Issue(
                ("edges", i, "target"), "UNKNOWN_EDGE_TARGET", f"unknown node {edge.target!r}"
            )
    if metadata is not None:
        for k, node_id in enumerate(metadata.cycle_entry_points):
            if node_id not in ids:
                yield Issue(
                    ("metadata", "cycleEntryPoints", k),
                    "UNKNOWN_CYCLE_ENTRY_POINT",
                    f"unknown node {node_id!r}",
                )


def _fallback_targets(
    nodes: Iterable[tuple[int, NodeDefinition]], ids: dict[str, int] | None, issues: list[Issue]
) -> dict[str, str]:
    """Fallback node id -> id of the first node naming it; reports FALLBACK_SELF on the way."""
    fallback_of: dict[str, str] = {}
    for i, node in nodes:
        fallback = node.config.fallback
        if fallback is None:
            continue
        if fallback == node.id:
            issues.append(
                Issue(
                    ("nodes", i, "config", "fallback"),
                    "FALLBACK_SELF",
                    f"node {node.id!r} names itself as its fallback",
                )
            )
        elif ids is not None and fallback in ids:
            fallback_of.setdefault(fallback, node.id)
    return fallback_of


def _event_config(i: int, node: NodeDefinition) -> Iterable[Issue]:
    """`config.event` (issue 8's spelling of a wait's named event) only on `wait` nodes, and
    not contradicting `params.event`."""
    event = node.config.event
    if event is None:
        return
    if node.uses != reserved.WAIT:
        yield Issue(
            ("nodes", i, "config", "event"),
            "UNSUPPORTED_CONFIG",
            f"only 'wait' nodes wait on a named event; {node.uses!r} nodes take no event",
        )
    elif node.params.get("event") not in (None, event):
        yield Issue(
            ("nodes", i, "config", "event"),
            "UNSUPPORTED_CONFIG",
            f"config.event {event!r} and params.event {node.params['event']!r} differ",
        )


def _unsupported_config(i: int, node: NodeDefinition) -> Iterable[Issue]:
    if node.config.max_retries > 1:
        yield Issue(
            ("nodes", i, "config", "maxRetries"),
            "UNSUPPORTED_CONFIG",
            f"{node.uses!r} nodes are not retried; maxRetries must be 1",
        )
    if node.config.timeout is not None:
        yield Issue(
            ("nodes", i, "config", "timeout"),
            "UNSUPPORTED_CONFIG",
            f"{node.uses!r} nodes take no timeout",
        )


def _gather_problem(
    scatter_id: str,
    gather_id: str,
    ids: dict[str, int],
    node_by_id: Callable[[str], tuple[int, NodeDefinition | None]],
    pairs: set[tuple[str, str]] | None,
) -> str | None:
    if gather_id not in ids:
        return f"unknown node {gather_id!r}"
    _, gather = node_by_id(gather_id)
    if gather is None:
        return None  # the gather node is broken; reported there
    if gather.uses != reserved.BATCH_GATHER:
        return f"node {gather_id!r} is not a 'batch-gather' node"
    if pairs is not None and (scatter_id, gather_id) not in pairs:
        return f"requires an edge from {scatter_id!r} to {gather_id!r}"
    return None


def _reserved_ids(node_ids: list[str | None], scatter_ids: set[str]) -> Iterable[Issue]:
    for i, node_id in enumerate(node_ids):
        if node_id is None or not node_id.endswith("]"):
            continue
        match = _ITEM_ID_RE.fullmatch(node_id)
        if match is not None and match.group(1) in scatter_ids:
            yield Issue(
                ("nodes", i, "id"),
                "RESERVED_NODE_ID",
                f"{node_id!r} is reserved for an item of batch-scatter {match.group(1)!r}",
            )


def _irreducible(bp: Blueprint) -> Iterable[Issue]:
    structure = _structure(bp)
    for i in structure.irreducible_edges:
        edge = bp.edges[i]
        yield Issue(
            ("edges", i),
            "IRREDUCIBLE_CYCLE",
            f"edge {edge.source!r} -> {edge.target!r} closes a cycle with more than one entry node",
        )


def _structure(bp: Blueprint) -> GraphStructure:
    from flowcraft_core.analysis.graph import compute_structure  # analysis imports blueprint

    return compute_structure(bp)


# --- expressions ------------------------------------------------------------------------------


@functools.cache
def default_evaluator() -> Evaluator:
    """The shared `SafeEvaluator` (one instance, so compiled-expression caches can be shared)."""
    return SafeEvaluator()


def compile_expressions(
    draft: Draft, evaluator: Evaluator
) -> tuple[dict[ExpressionKey, Compiled], list[Issue]]:
    """Compile every edge condition/transform and loop-controller condition of the valid parts."""
    compiled: dict[ExpressionKey, Compiled] = {}
    issues: list[Issue] = []

    def add(key: ExpressionKey, loc: Loc, text: str) -> None:
        try:
            compiled[key] = evaluator.compile(text)
        except ExpressionError as exc:
            issues.append(Issue(loc, "INVALID_EXPRESSION", _expression_message(exc)))

    for i, node in enumerate(draft.nodes):
        if node is None or node.uses != reserved.LOOP_CONTROLLER:
            continue
        condition = node.params.get("condition")
        if isinstance(condition, str) and condition:
            add(("node", node.id, "condition"), ("nodes", i, "params", "condition"), condition)
    for i, edge in enumerate(draft.edges):
        if edge is None:
            continue
        if edge.condition is not None:
            add(("edge", i, "condition"), ("edges", i, "condition"), edge.condition)
        if edge.transform is not None:
            add(("edge", i, "transform"), ("edges", i, "transform"), edge.transform)
    return compiled, issues


def _expression_message(exc: ExpressionError) -> str:
    reason = exc.reason
    column = getattr(exc, "column", None)
    if column is not None and "column" not in reason:
        reason = f"{reason} at column {column}"
    return f"expression does not compile: {reason}"


def cache_key(evaluator: Evaluator) -> str:
    return f"expressions@{id(evaluator)}"


def compile_blueprint_expressions(
    bp: Blueprint, evaluator: Evaluator | None = None
) -> dict[ExpressionKey, Compiled]:
    """Compiled expressions of `bp` for `evaluator` (default: the safe evaluator), cached on `bp`.

    For blueprints made with `Blueprint.model_validate` rather than `load_blueprint`. Keys are
    `("edge", i, "condition" | "transform")` and `("node", node_id, "condition")`. Raises
    BlueprintError with INVALID_EXPRESSION problems when one does not compile.
    """
    compiler = evaluator if evaluator is not None else default_evaluator()
    key = cache_key(compiler)
    cached = bp._cache.get(key)
    if cached is not None and cached[0] is compiler:
        hit: dict[ExpressionKey, Compiled] = cached[1]
        return hit
    compiled, issues = compile_expressions(Draft.of(bp), compiler)
    if issues:
        problems = [Problem(format_loc(i.loc), i.code, i.message) for i in issues]
        raise BlueprintError(bp.id, problems)
    bp._cache[key] = (compiler, compiled)  # keeps `compiler` alive, so its id is not reused
    return compiled


__all__ = [
    "Draft",
    "Issue",
    "check_semantics",
    "compile_blueprint_expressions",
    "compile_expressions",
    "default_evaluator",
    "format_loc",
]
