"""Node code of the named-events example: place an order, wait for `payment.received`, ship.

`ship` receives the event's payload (the wait node's output) as its input.
"""

from __future__ import annotations

from typing import Any

from flowcraft_core import NodeContext, NodeRegistry

registry = NodeRegistry()


@registry.node("shop.place_order")
async def place_order(ctx: NodeContext) -> dict[str, Any]:
    return {"output": {"order": ctx.input["order"], "total": 19.5}}


@registry.node("shop.ship")
async def ship(ctx: NodeContext) -> dict[str, Any]:
    payment = ctx.input or {}
    return {"output": {"shipped": True, "paid": payment.get("amount")}}
