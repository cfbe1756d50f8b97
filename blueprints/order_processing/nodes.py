"""Node code of the order-processing example.

Function nodes may be `async def` or plain functions (plain ones run in a worker thread);
`FraudScore` shows a class node. Everything is deterministic so the example's output is too.
"""

from __future__ import annotations

from typing import Any

from flowcraft_core import BaseNode, NodeContext, NodeRegistry, NonRetryableError

registry = NodeRegistry()

PAYMENT_METHODS = ("card", "invoice")


@registry.node("orders.validate")
async def validate_order(ctx: NodeContext) -> dict[str, Any]:
    """Check the order and normalise it; a bad order is not worth retrying."""
    order = ctx.input
    if not isinstance(order, dict):
        raise NonRetryableError("the context needs an 'order' object")
    missing = [name for name in ("id", "amount", "customer") if name not in order]
    if missing:
        raise NonRetryableError(f"order is missing {', '.join(missing)}")
    amount = order["amount"]
    if isinstance(amount, bool) or not isinstance(amount, int | float) or amount <= 0:
        raise NonRetryableError(f"order amount must be a positive number, got {amount!r}")
    customer = str(order["customer"]).strip().lower()
    if "@" not in customer:
        raise NonRetryableError(f"customer must be an email address, got {customer!r}")
    payment = order.get("payment", "card")
    if payment not in PAYMENT_METHODS:
        raise NonRetryableError(f"payment must be one of {PAYMENT_METHODS}, got {payment!r}")
    return {
        "output": {
            "id": str(order["id"]),
            "amount": float(amount),
            "customer": customer,
            "payment": payment,
        }
    }


@registry.node("orders.fraud_score")
class FraudScore(BaseNode):
    """Score in [0, 1]: the amount relative to twice `params.reviewAmount`."""

    async def exec(self, prep_result: Any, ctx: NodeContext) -> dict[str, Any]:
        review_amount = float(self.params.get("reviewAmount", 1000))
        score = min(1.0, prep_result["amount"] / (2 * review_amount))
        return {"output": {"score": round(score, 3)}}


@registry.node("orders.reserve_stock")
def reserve_stock(ctx: NodeContext) -> dict[str, Any]:
    """A plain function: it runs in a worker thread, so blocking calls are fine here."""
    order = ctx.input
    return {"output": {"orderId": order["id"], "reservation": f"R-{order['id']}"}}


@registry.node("orders.charge_card")
async def charge_card(ctx: NodeContext) -> dict[str, Any]:
    order = ctx.input
    return {
        "output": {
            "method": "card",
            "orderId": order["id"],
            "customer": order["customer"],
            "amount": order["amount"],
            "transactionId": f"TX-{order['id']}",
        }
    }


@registry.node("orders.send_invoice")
async def send_invoice(ctx: NodeContext) -> dict[str, Any]:
    order = ctx.input
    return {
        "output": {
            "method": "invoice",
            "orderId": order["id"],
            "customer": order["customer"],
            "amount": order["amount"],
            "invoiceNumber": f"INV-{order['id']}",
            "dueInDays": 30,
        }
    }


@registry.node("orders.reject")
async def reject_order(ctx: NodeContext) -> dict[str, Any]:
    order, review = ctx.input["order"], ctx.input["review"]
    reason = review.get("reason") if isinstance(review, dict) else None
    return {
        "output": {
            "orderId": order["id"],
            "customer": order["customer"],
            "reason": reason or "not approved",
        }
    }


@registry.node("orders.notify")
async def notify(ctx: NodeContext) -> dict[str, Any]:
    """Compose the customer message from whichever branch delivered its value."""
    status, detail = ctx.input["status"], ctx.input["detail"]
    if status == "paid":
        body = f"We charged {detail['amount']:.2f} to your card ({detail['transactionId']})."
    elif status == "invoiced":
        body = (
            f"Invoice {detail['invoiceNumber']} over {detail['amount']:.2f} "
            f"is due in {detail['dueInDays']} days."
        )
    else:
        body = f"We could not accept your order: {detail['reason']}."
    return {
        "output": {
            "to": detail["customer"],
            "subject": f"Order {detail['orderId']} {status}",
            "body": body,
        }
    }
