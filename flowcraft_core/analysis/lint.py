"""`lint_blueprint`: problems a valid blueprint can still have (SPEC 8.2).

The loader rejects what cannot run; the linter reports what will run badly or not as meant
(unregistered code, dead nodes, unguarded loops, actions nobody returns). Expressions are not
compiled here: that is the loader's `INVALID_EXPRESSION`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Literal

from flowcraft_core.analysis.graph import Built, build_structure
from flowcraft_core.blueprint.model import Blueprint, NodeDefinition
from flowcraft_core.reserved import (
    BATCH_SCATTER,
    BUILTIN_KEYS,
    LOOP_CONTROLLER,
    SUBFLOW,
    WAITING_KEYS,
)
from flowcraft_core.typed import param_problems

Severity = Literal["error", "warning"]

#: Every code with its severity, in the order issues of one location are reported.
CODES: Mapping[str, Severity] = {
    "MISSING_IMPLEMENTATION": "error",
    "MISSING_FALLBACK_IMPLEMENTATION": "error",
    "INVALID_BATCH_WORKER": "error",
    "INVALID_PARAMS": "error",
    "UNKNOWN_SUBFLOW_BLUEPRINT": "error",
    "UNREACHABLE_NODE": "warning",
    "CYCLE_WITHOUT_ENTRY_POINT": "warning",
    "UNGUARDED_LOOP": "warning",
    "USELESS_JOIN_STRATEGY": "warning",
    "UNREACHABLE_ACTION": "warning",
    "DUPLICATE_EDGE": "warning",
}
_RANK = {code: i for i, code in enumerate(CODES)}
_LOOP_ACTIONS = frozenset({"continue", "break"})


@dataclass(frozen=True, slots=True)
class LintIssue:
    """One finding; `path` uses JSON names (`nodes[2].uses`, `edges[3].action`)."""

    code: str
    severity: Severity
    message: str
    node_id: str | None = None
    edge_index: int | None = None
    path: str = ""

    def __str__(self) -> str:
        return f"{self.path}: {self.severity} {self.code}: {self.message}"


@dataclass(frozen=True, slots=True)
class LintReport:
    """Issues in document order (nodes, then edges)."""

    issues: tuple[LintIssue, ...]

    @property
    def is_valid(self) -> bool:
        """True when no issue is an error (warnings allowed)."""
        return all(issue.severity != "error" for issue in self.issues)


def lint_blueprint(
    bp: Blueprint,
    registry: Mapping[str, object] | None = None,
    blueprints: Mapping[str, Blueprint] | Iterable[Blueprint] | None = None,
) -> LintReport:
    """Lint `bp`. Registry checks run only with `registry`, subflow checks with `blueprints`.

    Built-in keys always count as registered. `blueprints` is a mapping id -> blueprint or an
    iterable of blueprints.
    """
    linter = _Linter(bp, build_structure(bp), registry)
    found = list(linter.nodes())
    found.extend(linter.loops())
    found.extend(linter.edges())
    if registry is not None:
        found.extend(linter.registry_checks())
        found.extend(linter.typed_params())
    if blueprints is not None:
        ids = blueprints.keys() if isinstance(blueprints, Mapping) else {b.id for b in blueprints}
        found.extend(linter.subflows(ids))
    found.sort(key=lambda item: (item[0], _RANK[item[1].code]))
    return LintReport(tuple(issue for _, issue in found))


_Found = tuple[tuple[int, int], LintIssue]  # ((0 node | 1 edge, index), issue)


class _Linter:
    def __init__(self, bp: Blueprint, built: Built, registry: Mapping[str, object] | None) -> None:
        self.bp = bp
        self.s = built.structure
        self.registry = registry
        self.position = built.position
        self.known: dict[str, bool] = {}  # implementation key -> registered

    def node_issue(self, code: str, node_id: str, message: str, field: str = "") -> _Found:
        i = self.position[node_id]
        path = f"nodes[{i}]{field}"
        return (0, i), LintIssue(code, CODES[code], message, node_id=node_id, path=path)

    def edge_issue(self, code: str, i: int, message: str, field: str = "") -> _Found:
        source = self.bp.edges[i].source
        issue = LintIssue(code, CODES[code], message, source, i, f"edges[{i}]{field}")
        return (1, i), issue

    def registered(self, key: str) -> bool:
        found = self.known.get(key)
        if found is None:
            found = key in BUILTIN_KEYS or (self.registry is not None and key in self.registry)
            self.known[key] = found
        return found

    def nodes(self) -> Iterator[_Found]:
        s = self.s
        for i, node in enumerate(self.bp.nodes):
            if self.position[node.id] != i:
                continue  # a duplicate id: the loader reports it
            if node.id not in s.reachable and node.id not in s.fallback_ids:
                yield self.node_issue(
                    "UNREACHABLE_NODE",
                    node.id,
                    f"node {node.id!r} is not reachable from the entry nodes and never runs",
                )
            if "join_strategy" in node.config.model_fields_set:
                preds = s.predecessors[node.id]
                if len(preds) <= 1:
                    count = "one predecessor" if preds else "no predecessor"
                    yield self.node_issue(
                        "USELESS_JOIN_STRATEGY",
                        node.id,
                        f"node {node.id!r} sets joinStrategy {node.config.join_strategy!r} but "
                        f"has {count}, so there is nothing to join",
                        ".config.joinStrategy",
                    )
        for members in s.closed_cycles_without_entry:
            entry = next((m for m in members if m in s.entry_ids), None)
            fate = "it never runs" if entry is None else f"it enters at {entry!r}"
            yield self.node_issue(
                "CYCLE_WITHOUT_ENTRY_POINT",
                members[0],
                f"closed cycle {list(members)!r} has no node in metadata.cycleEntryPoints; {fate}",
            )

    def loops(self) -> Iterator[_Found]:
        s = self.s
        guarded: set[str] = set()
        for e in self.bp.edges:
            if e.condition is None and e.action is None:
                continue
            for h in s.node_loops.get(e.source, ()):
                if e.target in s.loop_body[h]:
                    guarded.add(h)
        for h in s.loop_headers:
            if h in guarded or self.bp.nodes[self.position[h]].uses == LOOP_CONTROLLER:
                continue
            yield self.node_issue(
                "UNGUARDED_LOOP",
                h,
                f"loop at {h!r} has no edge with a condition or action and its header is not "
                f"a {LOOP_CONTROLLER}; it only stops at the iteration limit",
            )

    def edges(self) -> Iterator[_Found]:
        seen: dict[tuple[str, str, str | None, str | None], int] = {}
        for i, e in enumerate(self.bp.edges):
            key = (e.source, e.target, e.action, e.condition)
            first = seen.setdefault(key, i)
            if first != i:
                yield self.edge_issue(
                    "DUPLICATE_EDGE",
                    i,
                    f"edge {e.source!r} -> {e.target!r} repeats edges[{first}] (same action "
                    "and condition)",
                )
            if e.action is None or e.source not in self.position:
                continue
            possible = self.actions_of(self.bp.nodes[self.position[e.source]])
            if possible is not None and e.action not in possible:
                known = ", ".join(repr(a) for a in sorted(possible)) or "none"
                yield self.edge_issue(
                    "UNREACHABLE_ACTION",
                    i,
                    f"edge {e.source!r} -> {e.target!r} needs action {e.action!r}, which "
                    f"{e.source!r} never returns (possible actions: {known})",
                    ".action",
                )

    def actions_of(self, node: NodeDefinition) -> frozenset[str] | None:
        """Actions `node`'s result may carry, None when unknown. A fallback stand-in's result
        routes the node's edges, so its actions count too (SPEC 4.4)."""
        own = self.impl_actions(node.uses)
        fb = node.config.fallback
        if fb is None or own is None:
            return own
        if fb in self.position:
            other = self.impl_actions(self.bp.nodes[self.position[fb]].uses)
        else:
            other = self.impl_actions(fb)
        return None if other is None else own | other

    def impl_actions(self, key: str) -> frozenset[str] | None:
        if key == LOOP_CONTROLLER:
            return _LOOP_ACTIONS
        if key in WAITING_KEYS:
            return None  # resumed with any action
        if key in BUILTIN_KEYS:
            return frozenset()
        if self.registry is None or key not in self.registry:
            return None
        declared = getattr(self.registry[key], "actions", None)
        if declared is None:
            return None
        if isinstance(declared, str):
            return frozenset({declared})
        try:
            return frozenset(a for a in declared if isinstance(a, str))
        except TypeError:  # not iterable: treat as undeclared
            return None

    def registry_checks(self) -> Iterator[_Found]:
        for i, node in enumerate(self.bp.nodes):
            if self.position[node.id] != i:
                continue
            if not self.registered(node.uses):
                yield self.node_issue(
                    "MISSING_IMPLEMENTATION",
                    node.id,
                    f"node {node.id!r} uses {node.uses!r}, which is not registered",
                    ".uses",
                )
            fb = node.config.fallback
            if fb is not None and fb not in self.position and not self.registered(fb):
                yield self.node_issue(
                    "MISSING_FALLBACK_IMPLEMENTATION",
                    node.id,
                    f"node {node.id!r} falls back to {fb!r}, which is neither a node id nor "
                    "a registered implementation",
                    ".config.fallback",
                )
            undo = node.config.compensate
            if undo is not None and not self.registered(undo):
                yield self.node_issue(
                    "MISSING_IMPLEMENTATION",
                    node.id,
                    f"node {node.id!r} is compensated by {undo!r}, which is not registered",
                    ".config.compensate",
                )
            worker = node.params.get("workerUsesKey")
            if node.uses == BATCH_SCATTER and isinstance(worker, str):
                if not self.registered(worker):
                    yield self.node_issue(
                        "INVALID_BATCH_WORKER",
                        node.id,
                        f"batch-scatter {node.id!r} runs workerUsesKey {worker!r}, which is "
                        "not registered",
                        ".params.workerUsesKey",
                    )

    def typed_params(self) -> Iterator[_Found]:
        """Params that do not match a typed implementation's model (flowcraft_core.typed)."""
        for problem in param_problems(self.bp.nodes, self.registry):
            close = problem.path.index("]")  # paths read `nodes[<i>].params...`
            node = self.bp.nodes[int(problem.path[len("nodes[") : close])]
            yield self.node_issue(problem.code, node.id, problem.message, problem.path[close + 1 :])

    def subflows(self, known: Iterable[str]) -> Iterator[_Found]:
        ids = set(known)
        for i, node in enumerate(self.bp.nodes):
            target = node.params.get("blueprintId")
            if node.uses != SUBFLOW or not isinstance(target, str) or target in ids:
                continue
            if self.position[node.id] == i:
                yield self.node_issue(
                    "UNKNOWN_SUBFLOW_BLUEPRINT",
                    node.id,
                    f"subflow {node.id!r} runs blueprint {target!r}, which is not in blueprints",
                    ".params.blueprintId",
                )
