"""Node code of the typed-orders example: every node declares pydantic models.

`orders.parse` checks the incoming order (`input=Order`), `orders.price` takes typed params
(`params=Pricing`: a tax rate with bounds and a default currency) and returns an `Invoice`
model, which reaches the context as JSON. A blueprint whose `taxRate` is out of bounds is
refused when it is loaded with `registry=` (or by `flowcraft validate --registry`), and an order
with a missing field fails the run naming the node and the field.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from flowcraft_core import NodeContext, NodeRegistry, NodeResult

registry = NodeRegistry()


class Line(BaseModel):
    sku: str = Field(min_length=1)
    quantity: int = Field(ge=1)
    unit_price: float = Field(ge=0)


class Order(BaseModel):
    id: str = Field(min_length=1)
    customer: str
    lines: list[Line] = Field(min_length=1)


class Pricing(BaseModel):
    taxRate: float = Field(ge=0, le=0.5)  # blueprint params are camelCase
    currency: str = Field(default="EUR", pattern="^[A-Z]{3}$")


class Invoice(BaseModel):
    order_id: str
    net: float
    tax: float
    total: float
    currency: str


@registry.node("orders.parse", input=Order, output=Order)
async def parse(ctx: NodeContext) -> Order:
    order: Order = ctx.input  # validated: a model instance
    return order


@registry.node("orders.price", params=Pricing, input=Order, output=Invoice)
def price(ctx: NodeContext) -> Invoice:
    order: Order = ctx.input
    rate = float(ctx.params["taxRate"])
    net = round(sum(line.quantity * line.unit_price for line in order.lines), 2)
    tax = round(net * rate, 2)
    return Invoice(
        order_id=order.id,
        net=net,
        tax=tax,
        total=round(net + tax, 2),
        currency=str(ctx.params["currency"]),
    )


@registry.node("orders.route", input=Invoice)
async def route(ctx: NodeContext) -> NodeResult:
    invoice: Invoice = ctx.input
    return NodeResult(
        output=invoice.model_dump(), action="review" if invoice.total > 1000 else "ok"
    )


@registry.node("orders.done")
async def done(ctx: NodeContext) -> dict[str, Any]:
    return {"output": {"status": "invoiced", "invoice": ctx.input}}


@registry.node("orders.review")
async def review(ctx: NodeContext) -> dict[str, Any]:
    return {"output": {"status": "needs-review", "invoice": ctx.input}}
