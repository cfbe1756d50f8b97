"""blueprints/subflow: a parent blueprint running a child blueprint as a subflow."""

from __future__ import annotations

import pytest
from examples_support import example_blueprint, example_runtime

from flowcraft_core import BlueprintError

PARENT, CHILD = "customer-report.yaml", "customer-enrichment.yaml"


CASES = [
    ("C-1", "gold", {"count": 3, "total": 1145.5}, "3 orders totalling 1145.50"),
    ("C-2", "silver", {"count": 3, "total": 105.0}, "3 orders totalling 105.00"),
    ("C-3", "bronze", {"count": 0, "total": 0}, "0 orders totalling 0.00"),
]


@pytest.mark.parametrize(("customer", "segment", "orders", "summary"), CASES)
async def test_child_results_come_back_as_parent_keys(
    customer: str, segment: str, orders: dict[str, float], summary: str
) -> None:
    child = example_blueprint("subflow", CHILD)
    runtime, bus = example_runtime("subflow", blueprints=[child])
    result = await runtime.run(example_blueprint("subflow", PARENT), {"customerId": customer})

    assert result.status == "completed", result.errors
    assert result.context["segment"] == segment
    assert result.context["orders"] == orders
    assert result.outputs["enrich"] == {"segment": segment, "orders": orders}
    assert result.outputs["report"] == f"{customer}: {segment} customer, {summary}"
    starts = bus.of_type("workflow:start")
    assert [(s.blueprint_id, s.parent_node_id) for s in starts] == [
        ("customer-report", None),
        ("customer-enrichment", "enrich"),
    ]
    assert starts[1].parent_run_id == result.run_id
    child_nodes = [e.node_id for e in bus.of_type("node:finish") if e.run_id != result.run_id]
    assert child_nodes == ["normalize", "order_stats", "classify"]


async def test_unknown_customer_fails_before_the_subflow() -> None:
    runtime, bus = example_runtime("subflow", blueprints=[example_blueprint("subflow", CHILD)])
    result = await runtime.run(example_blueprint("subflow", PARENT), {"customerId": "C-9"})

    assert result.status == "failed"
    assert [(e.node_id, e.type) for e in result.errors] == [("load_customer", "NonRetryableError")]
    assert len(bus.of_type("workflow:start")) == 1


async def test_the_child_blueprint_must_be_known() -> None:
    runtime, _bus = example_runtime("subflow")

    with pytest.raises(BlueprintError) as info:
        await runtime.run(example_blueprint("subflow", PARENT), {"customerId": "C-1"})
    assert [p.code for p in info.value.problems] == ["UNKNOWN_SUBFLOW_BLUEPRINT"]
