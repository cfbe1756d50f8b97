"""Node code of the saga example: book a trip, undo the bookings when a later step fails.

Each booking returns a confirmation; its compensation cancels by that confirmation. The
`payments.charge` step fails when the context holds `"cardDeclined": true`, so the same
blueprint shows a completed run and a compensated one.
"""

from __future__ import annotations

from typing import Any

from flowcraft_core import NodeContext, NodeRegistry, NonRetryableError

registry = NodeRegistry()


@registry.node("trip.book_flight")
async def book_flight(ctx: NodeContext) -> dict[str, Any]:
    return {"output": {"confirmation": f"FL-{ctx.input['trip']}", "seat": "12A"}}


@registry.node("trip.book_hotel")
async def book_hotel(ctx: NodeContext) -> dict[str, Any]:
    return {"output": {"confirmation": f"HT-{ctx.input['trip']}", "nights": 3}}


@registry.node("trip.charge")
async def charge(ctx: NodeContext) -> dict[str, Any]:
    if await ctx.context.get("cardDeclined"):
        raise NonRetryableError("card declined")
    return {"output": {"charged": 540.0}}


@registry.node("trip.cancel_booking")
async def cancel_booking(ctx: NodeContext) -> dict[str, Any]:
    """Compensation: `ctx.input` is the booking's output; the activation id makes it idempotent
    against a real cancellation API."""
    cancelled = list(await ctx.context.get("cancelled") or [])
    cancelled.append(ctx.input["confirmation"])
    await ctx.context.set("cancelled", cancelled)
    return {"output": None}


@registry.node("trip.confirm")
async def confirm(ctx: NodeContext) -> dict[str, Any]:
    return {"output": {"status": "booked"}}
