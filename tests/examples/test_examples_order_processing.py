"""blueprints/order_processing: the main example, run as README and scripts/demo.sh run it."""

from __future__ import annotations

from typing import Any

import pytest
from examples_support import example_blueprint, example_runtime, node_ids

from flowcraft_core import WorkflowResult

DEMO_CONTEXT = {"order": {"id": "A-100", "amount": 120.0, "customer": "ada@example.com"}}
FILE = "order-processing.yaml"


async def run(order: dict[str, Any]) -> tuple[WorkflowResult, Any]:
    runtime, bus = example_runtime("order_processing")
    result = await runtime.run(example_blueprint("order_processing", FILE), {"order": order})
    return result, bus


async def run_then_resume(
    order: dict[str, Any], **resume: Any
) -> tuple[WorkflowResult, WorkflowResult]:
    """Run a large order to its approval wait, then resume it: (paused, final)."""
    runtime, _bus = example_runtime("order_processing")
    blueprint = example_blueprint("order_processing", FILE)
    first = await runtime.run(blueprint, {"order": order})
    return first, await runtime.resume(blueprint, first.serialized_context, **resume)


async def test_demo_order_is_charged_by_card_and_notified_without_waiting() -> None:
    runtime, bus = example_runtime("order_processing")
    result = await runtime.run(example_blueprint("order_processing", FILE), DEMO_CONTEXT)

    assert result.status == "completed"
    assert result.errors == []
    assert result.outputs == {
        "validate": {
            "id": "A-100",
            "amount": 120.0,
            "customer": "ada@example.com",
            "payment": "card",
        },
        "score": {"score": 0.06},
        "reserve": {"orderId": "A-100", "reservation": "R-A-100"},
        "charge_card": {
            "method": "card",
            "orderId": "A-100",
            "customer": "ada@example.com",
            "amount": 120.0,
            "transactionId": "TX-A-100",
        },
        "notify": {
            "to": "ada@example.com",
            "subject": "Order A-100 paid",
            "body": "We charged 120.00 to your card (TX-A-100).",
        },
    }
    assert "_awaitingNodeIds" not in result.context
    assert sorted(node_ids(bus, "node:skipped")) == ["approval", "reject_order", "send_invoice"]
    assert result.context["_inputs.notify"]["status"] == "paid"


async def test_invoice_orders_take_the_invoice_branch() -> None:
    result, _bus = await run(
        {"id": "B-7", "amount": 80, "customer": " Eve@Example.com ", "payment": "invoice"}
    )

    assert result.status == "completed"
    assert result.outputs["send_invoice"]["invoiceNumber"] == "INV-B-7"
    assert "charge_card" not in result.outputs
    assert result.outputs["notify"] == {
        "to": "eve@example.com",
        "subject": "Order B-7 invoiced",
        "body": "Invoice INV-B-7 over 80.00 is due in 30 days.",
    }


@pytest.mark.parametrize("amount", [1000, 1500.0])
async def test_large_orders_wait_for_approval(amount: float) -> None:
    result, _bus = await run({"id": "C-1", "amount": amount, "customer": "bob@example.com"})

    assert result.status == "awaiting"
    assert result.errors == []
    assert result.context["_awaitingNodeIds"] == ["approval"]
    assert result.context["_awaitingDetails"]["approval"]["reason"] == "external_event"
    assert set(result.outputs) == {"validate", "score"}
    assert result.outputs["score"]["score"] >= 0.5


async def test_approved_large_order_is_charged_after_resume() -> None:
    first, done = await run_then_resume(
        {"id": "C-2", "amount": 4000, "customer": "bob@example.com"},
        node_id="approval",
        output={"by": "alice"},
        action="approve",
    )

    assert done.status == "completed"
    assert done.run_id == first.run_id
    assert done.outputs["approval"] == {"by": "alice"}
    assert done.outputs["charge_card"]["transactionId"] == "TX-C-2"
    assert done.outputs["notify"]["subject"] == "Order C-2 paid"
    assert "reject_order" not in done.outputs


async def test_rejected_large_order_notifies_the_rejection() -> None:
    _first, done = await run_then_resume(
        {"id": "C-3", "amount": 2500, "customer": "bob@example.com"},
        output={"reason": "limit exceeded"},
        action="reject",
    )

    assert done.status == "completed"
    assert "reserve" not in done.outputs
    assert "charge_card" not in done.outputs
    assert done.outputs["notify"] == {
        "to": "bob@example.com",
        "subject": "Order C-3 rejected",
        "body": "We could not accept your order: limit exceeded.",
    }


@pytest.mark.parametrize(
    ("order", "message"),
    [
        ({"id": "X", "amount": 10}, "order is missing customer"),
        ({"id": "X", "amount": -5, "customer": "a@b.c"}, "positive number"),
        ({"id": "X", "amount": 5, "customer": "a@b.c", "payment": "cash"}, "payment must be"),
    ],
)
async def test_invalid_orders_fail_at_validation_without_retries(
    order: dict[str, Any], message: str
) -> None:
    result, _bus = await run(order)

    assert result.status == "failed"
    [error] = result.errors
    assert (error.node_id, error.type, error.attempts) == ("validate", "NonRetryableError", 1)
    assert message in error.message
    assert result.outputs == {}
