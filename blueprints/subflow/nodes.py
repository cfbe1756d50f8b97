"""Node code of the subflow example: one registry serves the parent and the child blueprint."""

from __future__ import annotations

from typing import Any

from flowcraft_core import NodeContext, NodeRegistry, NonRetryableError

registry = NodeRegistry()

CUSTOMERS: dict[str, dict[str, Any]] = {
    "C-1": {"id": "C-1", "name": "  Ada Lovelace ", "email": "ADA@Example.com"},
    "C-2": {"id": "C-2", "name": "Grace Hopper", "email": "grace@example.com"},
    "C-3": {"id": "C-3", "name": "Alan Turing", "email": "alan@example.com"},
}
ORDERS: dict[str, list[float]] = {
    "C-1": [120.0, 980.5, 45.0],
    "C-2": [15.0, 60.0, 30.0],
    "C-3": [],
}


@registry.node("customers.load")
async def load_customer(ctx: NodeContext) -> dict[str, Any]:
    customer_id = ctx.input
    if customer_id not in CUSTOMERS:
        raise NonRetryableError(f"unknown customer {customer_id!r} (try C-1, C-2 or C-3)")
    return {"output": CUSTOMERS[customer_id]}


# --- the child blueprint ---------------------------------------------------------------------


@registry.node("customers.normalize")
async def normalize(ctx: NodeContext) -> dict[str, Any]:
    customer = ctx.input
    return {
        "output": {
            "id": customer["id"],
            "name": " ".join(customer["name"].split()),
            "email": customer["email"].strip().lower(),
        }
    }


@registry.node("customers.order_stats")
async def order_stats(ctx: NodeContext) -> dict[str, Any]:
    amounts = ORDERS.get(ctx.input["id"], [])
    return {"output": {"count": len(amounts), "total": round(sum(amounts), 2)}}


@registry.node("customers.classify")
async def classify(ctx: NodeContext) -> dict[str, Any]:
    total = ctx.input["orders"]["total"]
    segment = "gold" if total >= 1000 else "silver" if total >= 100 else "bronze"
    return {"output": segment}


# --- back in the parent ----------------------------------------------------------------------


@registry.node("customers.report")
async def report(ctx: NodeContext) -> dict[str, Any]:
    customer, segment, orders = ctx.input["customer"], ctx.input["segment"], ctx.input["orders"]
    return {
        "output": (
            f"{customer['id']}: {segment} customer, {orders['count']} orders "
            f"totalling {orders['total']:.2f}"
        )
    }
