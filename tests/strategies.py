"""Hypothesis strategies shared by the suite.

`workflow_dags()` draws random *acyclic* workflows, acyclic by construction: nodes come in
topological order and every edge goes from an earlier node to a later one, so shrinking (fewer
nodes, fewer edges, plainer nodes) always keeps the graph valid. Each drawn spec knows how to
render itself as a blueprint mapping and how its edge expressions evaluate, so a test can
predict the run with a small reference model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

#: Node behaviours. "input" fails when the weight of the node's input is odd.
FAIL_MODES = ("never", "always", "flaky", "nonretryable", "fatal", "input")
ACTIONS = ("x", "y")


def weight(value: Any) -> int:
    """Sum of the integers found in a JSON value (booleans excluded)."""
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return value
    if isinstance(value, dict):
        return sum(weight(v) for v in value.values())
    if isinstance(value, list):
        return sum(weight(v) for v in value)
    return 0


@dataclass(frozen=True)
class EdgeSpec:
    source: str
    target: str
    action: str | None = None
    #: (kind, constant): "gt" result.output.v > K; "ctx_le" context['<source>'].v <= K;
    #: "action_is" result.action == '<x|y>' (constant 0 -> x, else y).
    condition: tuple[str, int] | None = None
    #: (kind, constant): "add" input.v + K; "wrap" {'w': input.v}.
    transform: tuple[str, int] | None = None

    def condition_text(self) -> str | None:
        if self.condition is None:
            return None
        kind, k = self.condition
        if kind == "gt":
            return f"result.output.v > {k}"
        if kind == "ctx_le":
            return f"context['{self.source}'].v <= {k}"
        return f"result.action == '{ACTIONS[0] if k == 0 else ACTIONS[1]}'"

    def transform_text(self) -> str | None:
        if self.transform is None:
            return None
        kind, k = self.transform
        return f"input.v + {k}" if kind == "add" else "{'w': input.v}"

    def holds(self, output: dict[str, Any], action: str | None) -> bool:
        """Python twin of the condition (True when there is none)."""
        if self.condition is None:
            return True
        kind, k = self.condition
        if kind == "gt":
            return bool(output["v"] > k)
        if kind == "ctx_le":
            return bool(output["v"] <= k)
        return action == (ACTIONS[0] if k == 0 else ACTIONS[1])

    def value(self, output: dict[str, Any]) -> Any:
        """Python twin of the transform (the output itself when there is none)."""
        if self.transform is None:
            return output
        kind, k = self.transform
        return output["v"] + k if kind == "add" else {"w": output["v"]}

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"source": self.source, "target": self.target}
        if self.action is not None:
            data["action"] = self.action
        if self.condition is not None:
            data["condition"] = self.condition_text()
        if self.transform is not None:
            data["transform"] = self.transform_text()
        return data


@dataclass(frozen=True)
class NodeSpec:
    id: str
    join: str = "all"
    fail: str = "never"
    v: int = 0
    action: str | None = None
    max_retries: int = 1
    #: None, the id of a fallback node, or the implementation key "fb_impl".
    fallback: str | None = None
    #: Only for the "fb_impl" fallback: make it fail too.
    fallback_fails: bool = False
    sync: bool = False
    delay_ms: int = 0

    def to_json(self) -> dict[str, Any]:
        config: dict[str, Any] = {"joinStrategy": self.join, "maxRetries": self.max_retries}
        if self.fallback is not None:
            config["fallback"] = self.fallback
        return {
            "id": self.id,
            "uses": "gen_sync" if self.sync else "gen",
            "params": {
                "v": self.v,
                "fail": self.fail,
                "action": self.action,
                "fbFail": self.fallback_fails,
                "delayMs": self.delay_ms,
            },
            "config": config,
        }


@dataclass(frozen=True)
class FallbackSpec:
    id: str
    fail: str = "never"  # "never" or "always"
    v: int = 0
    action: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "uses": "gen",
            "params": {"v": self.v, "fail": self.fail, "action": self.action, "delayMs": 0},
        }


@dataclass(frozen=True)
class DagSpec:
    nodes: tuple[NodeSpec, ...]
    fallbacks: tuple[FallbackSpec, ...]
    edges: tuple[EdgeSpec, ...]
    concurrency: int | None = None

    def blueprint(self, blueprint_id: str = "random-dag") -> dict[str, Any]:
        return {
            "id": blueprint_id,
            "nodes": [n.to_json() for n in self.nodes] + [f.to_json() for f in self.fallbacks],
            "edges": [e.to_json() for e in self.edges],
        }

    def node(self, node_id: str) -> NodeSpec:
        return next(n for n in self.nodes if n.id == node_id)

    def fallback_node(self, node_id: str) -> FallbackSpec:
        return next(f for f in self.fallbacks if f.id == node_id)


conditions = st.one_of(
    st.none(),
    st.tuples(st.sampled_from(["gt", "ctx_le", "action_is"]), st.integers(0, 9)),
)
transforms = st.one_of(st.none(), st.tuples(st.sampled_from(["add", "wrap"]), st.integers(0, 5)))
actions = st.sampled_from([None, None, *ACTIONS])


@st.composite
def acyclic_edges(
    draw: st.DrawFn, size: int, max_edges: int | None = None
) -> list[tuple[int, int]]:
    """(source, target) index pairs with source < target; parallel edges allowed."""
    if size < 2:
        return []
    limit = max_edges if max_edges is not None else 2 * size
    pairs = draw(
        st.lists(
            st.integers(1, size - 1).flatmap(
                lambda target: st.tuples(st.integers(0, target - 1), st.just(target))
            ),
            max_size=limit,
        )
    )
    return pairs


@st.composite
def workflow_dags(draw: st.DrawFn, max_nodes: int = 8) -> DagSpec:
    """A random acyclic workflow (see the module docstring)."""
    size = draw(st.integers(1, max_nodes))
    fallbacks = tuple(
        FallbackSpec(
            id=f"F{k}",
            fail=draw(st.sampled_from(["never", "never", "always"])),
            v=draw(st.integers(0, 9)),
            action=draw(actions),
        )
        for k in range(draw(st.integers(0, 2)))
    )
    fallback_choices: list[str | None] = [None, None, "fb_impl", *(f.id for f in fallbacks)]
    nodes = []
    for i in range(size):
        join = draw(st.sampled_from(["all", "any"]))
        fail = draw(st.sampled_from(["never", "never", "never", *FAIL_MODES[1:]]))
        if fail == "input" and join == "any":
            fail = "never"  # an `any` join's input depends on timing
        fallback = draw(st.sampled_from(fallback_choices))
        nodes.append(
            NodeSpec(
                id=f"n{i}",
                join=join,
                fail=fail,
                v=draw(st.integers(0, 9)),
                action=draw(actions),
                max_retries=draw(st.integers(1, 3)),
                fallback=fallback,
                fallback_fails=fallback == "fb_impl" and draw(st.booleans()),
                sync=draw(st.integers(0, 4)) == 0,
                delay_ms=draw(st.sampled_from([0, 0, 0, 1, 3])),
            )
        )
    edges = tuple(
        EdgeSpec(
            source=f"n{s}",
            target=f"n{t}",
            action=draw(actions),
            condition=draw(conditions),
            transform=draw(transforms),
        )
        for s, t in draw(acyclic_edges(size))
    )
    concurrency = draw(st.sampled_from([None, None, 1, 2, 3]))
    # An unreferenced fallback node would be an ordinary start node: keep only used ones.
    used = {n.fallback for n in nodes}
    fallbacks = tuple(f for f in fallbacks if f.id in used)
    return DagSpec(nodes=tuple(nodes), fallbacks=fallbacks, edges=edges, concurrency=concurrency)


__all__ = [
    "ACTIONS",
    "FAIL_MODES",
    "DagSpec",
    "EdgeSpec",
    "FallbackSpec",
    "NodeSpec",
    "acyclic_edges",
    "weight",
    "workflow_dags",
]
