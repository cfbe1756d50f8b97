"""Blueprints for the differential test (issue 7): the random DAGs of `tests/strategies.py`
grown to ~30 nodes, plus guarded loops hanging off them and a random initial context.

Timing-dependent runs are designed out rather than filtered (SPEC 9.1): an `any` join whose
outcome or input depends on which predecessor arrives first (several taken edges, a taken and a
failed one, or an unpredictable one) becomes an `all` join, decided with the reference model of
`tests/runtime/test_random_dags.py`. Loops write only their own keys and end in a terminal exit
node, so they never race the DAG.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st
from runtime.test_random_dags import predict, route
from strategies import DagSpec, workflow_dags


@dataclass(frozen=True)
class LoopSpec:
    """`source → L`, `L → B0 [continue]`, `B0 (→ B1)`, `last → L` (back edge), `L → X [break]`.

    `B0` ticks the loop's counter (`count_<L>`); the optional `B1` is a `gen` node that may fail
    on its input (the tick), after retries, and with a fallback.
    """

    id: str
    source: str
    condition: str
    max_iterations: int
    second: dict[str, Any] | None = None  # B1's params and config, or no B1

    def nodes(self) -> list[dict[str, Any]]:
        header = {
            "id": self.id,
            "uses": "loop-controller",
            "params": {"condition": self.condition, "maxIterations": self.max_iterations},
        }
        result = [header, {"id": f"{self.id}b0", "uses": "tick", "params": {"loop": self.id}}]
        if self.second is not None:
            result.append({"id": f"{self.id}b1", "uses": "gen", **self.second})
        result.append({"id": f"{self.id}x", "uses": "gen", "params": _gen_params(7, "never", None)})
        return result

    def edges(self) -> list[dict[str, Any]]:
        last = f"{self.id}b1" if self.second is not None else f"{self.id}b0"
        edges = [
            {"source": self.source, "target": self.id},
            {"source": self.id, "target": f"{self.id}b0", "action": "continue"},
            {"source": last, "target": self.id},
            {"source": self.id, "target": f"{self.id}x", "action": "break"},
        ]
        if self.second is not None:
            edges.insert(2, {"source": f"{self.id}b0", "target": f"{self.id}b1"})
        return edges


def _gen_params(v: int, fail: str, action: str | None) -> dict[str, Any]:
    return {"v": v, "fail": fail, "action": action, "fbFail": False, "delayMs": 0}


@dataclass(frozen=True)
class DiffSpec:
    dag: DagSpec
    loops: tuple[LoopSpec, ...] = ()
    context: dict[str, Any] = field(default_factory=dict)
    #: node id -> its `config.queue` (docs/scheduling.md): in-process it changes nothing.
    queues: dict[str, str] = field(default_factory=dict)

    def blueprint(self, blueprint_id: str = "diff") -> dict[str, Any]:
        bp = self.dag.blueprint(blueprint_id)
        for loop in self.loops:
            bp["nodes"].extend(loop.nodes())
            bp["edges"].extend(loop.edges())
        for node in bp["nodes"]:
            if node["id"] in self.queues:
                node["config"] = {**node.get("config", {}), "queue": self.queues[node["id"]]}
        return bp

    def racy_keys(self) -> frozenset[str]:
        """Keys several parallel activations may write with different values (SPEC 9.1)."""
        # Every fallback (a stand-in node or an implementation) writes `_catch_error` first.
        fallbacks = [n for n in self.dag.nodes if n.fallback is not None]
        fallbacks += [
            loop for loop in self.loops if "fallback" in (loop.second or {}).get("config", {})
        ]
        return frozenset({"_catch_error"}) if len(fallbacks) > 1 else frozenset()


def timing_free(dag: DagSpec) -> DagSpec:
    """Turn every timing-dependent `any` join into an `all` join, upstream first."""
    while True:
        expect = predict(dag)
        racy = next((n for n in dag.nodes if n.join == "any" and _racy(dag, n.id, expect)), None)
        if racy is None:
            return dag
        nodes = tuple(dataclasses.replace(n, join="all") if n is racy else n for n in dag.nodes)
        dag = dataclasses.replace(dag, nodes=nodes)


def _racy(dag: DagSpec, node_id: str, expect: dict[str, Any]) -> bool:
    if expect[node_id].status == "unknown":
        return True
    taken = failed = 0
    for pred in dict.fromkeys(e.source for e in dag.edges if e.target == node_id):
        outcome = expect[pred]
        if outcome.status in ("failed", "blocked"):
            failed += 1
        elif outcome.status == "ok" and node_id in route(dag, pred, outcome.output, outcome.action):
            taken += 1
    return taken > 1 or (taken > 0 and failed > 0)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(exclude_categories=("Cs",)), max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.text(st.characters(exclude_categories=("Cs",)), max_size=4), inner, max_size=3
        )
    ),
    max_leaves=8,
)


@st.composite
def loops(draw: st.DrawFn, sources: list[str]) -> tuple[LoopSpec, ...]:
    result = []
    for k in range(draw(st.integers(0, 2))):
        bound = draw(st.integers(0, 4))
        condition = draw(
            st.sampled_from([f"iteration < {bound}"] * 3 + [f"input.v < {bound + 5}", "true"])
        )
        second = None
        if draw(st.booleans()):
            fail = draw(st.sampled_from(["never", "flaky", "input"]))
            config: dict[str, Any] = {"maxRetries": draw(st.integers(1, 2))}
            if draw(st.booleans()):
                config["fallback"] = "fb_impl"
            second = {"params": _gen_params(draw(st.integers(0, 9)), fail, None), "config": config}
        result.append(
            LoopSpec(
                id=f"L{k}",
                source=draw(st.sampled_from(sources)),
                condition=condition,
                max_iterations=draw(st.integers(1, 5)),
                second=second,
            )
        )
    return tuple(result)


#: The queues nodes are routed to, besides the default one (workers consume all of them).
QUEUES = ("q1", "q2")


@st.composite
def diff_specs(draw: st.DrawFn, max_nodes: int = 30) -> DiffSpec:
    """A random blueprint and initial context whose outcome does not depend on timing."""
    dag = draw(workflow_dags(max_nodes=max_nodes))
    if draw(st.booleans()):
        # Half the runs mostly succeed: only flaky nodes (and inputs) fail, so large DAGs
        # still reach their far ends.
        nodes = tuple(
            dataclasses.replace(n, fail="never") if n.fail not in ("never", "flaky") else n
            for n in dag.nodes
        )
        dag = dataclasses.replace(dag, nodes=nodes)
    dag = timing_free(dag)
    context = draw(
        st.dictionaries(st.sampled_from(["u_a", "u_b", "u.c", "u-d"]), json_values, max_size=3)
    )
    node_ids = [n.id for n in dag.nodes]
    queues = draw(st.dictionaries(st.sampled_from(node_ids), st.sampled_from(QUEUES), max_size=4))
    return DiffSpec(dag=dag, loops=draw(loops(node_ids)), context=context, queues=queues)


__all__ = ["QUEUES", "DiffSpec", "LoopSpec", "diff_specs", "json_values", "timing_free"]
