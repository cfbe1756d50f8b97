"""A job preloads exactly the keys its node can read before running (SPEC 9.4 step 1)."""

from __future__ import annotations

from typing import Any

from flowcraft_core import load_blueprint
from flowcraft_core.distributed.preload import preload_keys, reference_keys
from flowcraft_core.runtime.plan import get_plan


def keys_of(blueprint: dict[str, Any], node_id: str) -> tuple[str, ...] | None:
    plan = get_plan(load_blueprint(blueprint))
    return preload_keys(plan, plan.nodes[plan.by_id[node_id]])


def test_reference_keys_follow_reference_resolution() -> None:
    assert reference_keys("_threshold") == ["_threshold"]
    assert reference_keys("fetch") == ["_outputs.fetch", "fetch"]
    assert reference_keys("fetch.customer.email") == [
        "_outputs.fetch.customer.email",
        "fetch.customer.email",
        "_outputs.fetch",
        "fetch",
    ]


def test_inputs_and_expression_names_are_preloaded() -> None:
    bp = {
        "id": "p",
        "nodes": [
            {"id": "a", "uses": "x", "inputs": {"o": "fetch.total", "t": "_limit"}},
            {"id": "b", "uses": "x"},
        ],
        "edges": [{"source": "a", "target": "b", "condition": "result.output > limit"}],
    }
    assert keys_of(bp, "a") == (
        "_inputs.a",
        "_outputs.fetch.total",
        "fetch.total",
        "_outputs.fetch",
        "fetch",
        "_limit",
        "limit",
        "_outputs.limit",
    )
    assert keys_of(bp, "b") == ("_inputs.b",)


def test_context_lookups_need_the_whole_context() -> None:
    bp = {
        "id": "p",
        "nodes": [{"id": "a", "uses": "x"}, {"id": "b", "uses": "x"}],
        "edges": [{"source": "a", "target": "b", "condition": "context['my-node'] > 1"}],
    }
    assert keys_of(bp, "a") is None
