"""Subflow scenarios run in-process and distributed (SPEC 5.6, 9.7): each is a set of
blueprints, the root blueprint, its initial context and the resumes applied in turn."""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flowcraft_core import FlowRuntime, WorkflowResult, load_blueprint
from flowcraft_core.blueprint import Blueprint
from flowcraft_core.distributed import LocalCluster

#: (node id or path, output, action) of one resume.
Resume = tuple[str | list[str] | None, Any, str | None]


def n(node_id: str, uses: str, **extra: Any) -> dict[str, Any]:
    return {"id": node_id, "uses": uses, **extra}


def e(source: str, target: str, **extra: Any) -> dict[str, Any]:
    return {"source": source, "target": target, **extra}


@dataclass(frozen=True)
class Scenario:
    blueprints: list[Any]
    root: str
    context: dict[str, Any] | None = None
    resumes: list[Resume] = field(default_factory=list)
    #: A registry other than make_registry()'s ("module:attribute").
    registry: str | None = None


CHILD = {
    "id": "child",
    "nodes": [n("c1", "inc", inputs="seed"), n("c2", "inc")],
    "edges": [e("c1", "c2")],
}
CHAIN_CHILD = {
    "id": "chain-child",
    "nodes": [n("c1", "inc"), n("c2", "inc")],
    "edges": [e("c1", "c2")],
}
TERMINALS_CHILD = {
    "id": "terminals-child",
    "nodes": [n("s", "route"), n("x", "inc"), n("y", "inc")],
    "edges": [e("s", "x", action="big"), e("s", "y", action="small")],
}
FAILING_CHILD = {
    "id": "failing-child",
    "nodes": [n("c1", "inc"), n("bad", "boom")],
    "edges": [e("c1", "bad")],
}
WAIT_CHILD = {
    "id": "wait-child",
    "nodes": [n("c1", "inc"), n("w", "wait"), n("go", "inc"), n("stop", "inc")],
    "edges": [e("c1", "w"), e("w", "go", action="go"), e("w", "stop", action="stop")],
}
TWO_WAITS_CHILD = {
    "id": "two-waits-child",
    "nodes": [n("c1", "inc"), n("w1", "wait"), n("w2", "wait"), n("j", "sum")],
    "edges": [e("c1", "w1"), e("c1", "w2"), e("w1", "j"), e("w2", "j")],
}


def parent(
    blueprint_id: str, child_id: str, *, params: dict[str, Any] | None = None, **config: Any
) -> dict[str, Any]:
    """a -> sub (runs `child_id`) -> z."""
    sub = n("sub", "subflow", params={"blueprintId": child_id, **(params or {})})
    if config:
        sub["config"] = config
    nodes = [n("a", "inc"), sub, n("z", "inc")]
    if config.get("fallback"):
        nodes.append(n(config["fallback"], "inc"))
    return {"id": blueprint_id, "nodes": nodes, "edges": [e("a", "sub"), e("sub", "z")]}


_EXAMPLE = Path(__file__).resolve().parents[2] / "blueprints" / "subflow"

SCENARIOS: dict[str, Scenario] = {
    "inputs_and_outputs": Scenario(
        [
            CHILD,
            parent(
                "p-io",
                "child",
                params={"inputs": {"seed": "a"}, "outputs": {"got": "c2", "first": "_inputs.c1"}},
            ),
        ],
        "p-io",
        {"_inputs.a": 4},
    ),
    "one_terminal": Scenario([CHAIN_CHILD, parent("p-one", "chain-child")], "p-one"),
    "several_terminals": Scenario(
        [TERMINALS_CHILD, parent("p-terms", "terminals-child")], "p-terms", {"_inputs.a": 6}
    ),
    "failing_child": Scenario([FAILING_CHILD, parent("p-fail", "failing-child")], "p-fail"),
    "failing_child_fallback": Scenario(
        [FAILING_CHILD, parent("p-fb", "failing-child", fallback="fb")], "p-fb"
    ),
    "wait_resumed_through_the_parent": Scenario(
        [WAIT_CHILD, parent("p-wait", "wait-child")], "p-wait", resumes=[("sub", 5, "stop")]
    ),
    "two_waits_resumed_by_path": Scenario(
        [TWO_WAITS_CHILD, parent("p-two", "two-waits-child")],
        "p-two",
        resumes=[(["sub", "w2"], 20, None), (None, 10, None)],
    ),
    "nested_two_levels": Scenario(
        [
            WAIT_CHILD,
            {
                "id": "middle",
                "nodes": [n("b", "inc"), n("s2", "subflow", params={"blueprintId": "wait-child"})],
                "edges": [e("b", "s2")],
            },
            {
                "id": "top",
                "nodes": [
                    n("a", "inc"),
                    n("s1", "subflow", params={"blueprintId": "middle"}),
                    n("z", "inc"),
                ],
                "edges": [e("a", "s1"), e("s1", "z")],
            },
        ],
        "top",
        resumes=[(["s1", "s2", "w"], 3, "go")],
    ),
    "subflow_in_a_loop": Scenario(
        [
            CHAIN_CHILD,
            {
                "id": "p-loop",
                "nodes": [
                    n("a", "inc"),
                    n("L", "loop-controller", params={"condition": "count < 2"}),
                    n("sub", "subflow", params={"blueprintId": "chain-child"}),
                    n("b", "count"),
                    n("done", "inc"),
                ],
                "edges": [
                    e("a", "L"),
                    e("L", "sub", action="continue"),
                    e("sub", "b"),
                    e("b", "L"),
                    e("L", "done", action="break"),
                ],
            },
        ],
        "p-loop",
        {"count": 0},
    ),
    "batch_in_the_child": Scenario(
        [
            {
                "id": "batch-child",
                "nodes": [
                    n(
                        "s",
                        "batch-scatter",
                        inputs="items",
                        params={"workerUsesKey": "double", "gatherNodeId": "g", "chunkSize": 2},
                    ),
                    n("g", "batch-gather"),
                    n("total", "sum"),
                ],
                "edges": [e("s", "g"), e("g", "total")],
            },
            parent(
                "p-batch",
                "batch-child",
                params={"inputs": {"items": "items"}, "outputs": {"doubled": "g", "sum": "total"}},
            ),
        ],
        "p-batch",
        {"items": [1, 2, 3, 4, 5]},
    ),
    "repo_example": Scenario(
        [_EXAMPLE / "customer-enrichment.yaml", _EXAMPLE / "customer-report.yaml"],
        "customer-report",
        {"customerId": "C-1"},
        registry="blueprints.subflow.nodes:registry",
    ),
}


def registry_of(scenario: Scenario) -> Any:
    if scenario.registry is None:
        from distributed.test_memory_parity import make_registry  # it imports this module

        return make_registry()
    module, _, attribute = scenario.registry.partition(":")
    return getattr(importlib.import_module(module), attribute)


def blueprints(scenario: Scenario) -> list[Blueprint | dict[str, Any]]:
    return [load_blueprint(b) if isinstance(b, Path) else b for b in scenario.blueprints]


async def in_process(runtime: FlowRuntime, scenario: Scenario, run_id: str) -> list[WorkflowResult]:
    """The result after the run, then after each resume."""
    result = await runtime.run(scenario.root, scenario.context, run_id=run_id)
    results = [result]
    for node_id, output, action in scenario.resumes:
        result = await runtime.resume(
            scenario.root, result.serialized_context, node_id=node_id, output=output, action=action
        )
        results.append(result)
    return results


async def on_cluster(
    cluster: LocalCluster, scenario: Scenario, run_id: str
) -> list[WorkflowResult]:
    """The same steps on a `LocalCluster` (either store)."""
    results = [await cluster.run(scenario.root, scenario.context, run_id=run_id)]
    for node_id, output, action in scenario.resumes:
        results.append(await cluster.resume_with_action(run_id, action, output, node_id=node_id))
    return results


def same(distributed: list[WorkflowResult], local: list[WorkflowResult]) -> None:
    from distributed.test_memory_parity import comparable  # it imports this module

    assert [comparable(r) for r in distributed] == [comparable(r) for r in local]


__all__ = ["SCENARIOS", "Scenario", "blueprints", "in_process", "on_cluster", "registry_of", "same"]
