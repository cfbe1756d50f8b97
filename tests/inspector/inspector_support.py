"""Blueprints and nodes the inspector tests run on a real Redis (the adapter suite's helpers,
plus a run with a failing node and a long output)."""

from __future__ import annotations

from typing import Any

from bullmq_adapter.adapter_support import APPROVAL, chain, e, n
from distributed.test_memory_parity import make_registry as parity_registry

from flowcraft_core import NodeRegistry

#: load -> charge (fails) -> ship (blocked); load -> audit (runs)
BROKEN: dict[str, Any] = {
    "id": "broken",
    "nodes": [n("load", "big"), n("charge", "declined"), n("ship", "inc"), n("audit", "inc")],
    "edges": [e("load", "charge"), e("charge", "ship"), e("load", "audit")],
}
CHAIN = chain(3)
BLUEPRINTS = [APPROVAL, BROKEN, CHAIN]
#: The output of `load`: long enough to be cut in the page.
BIG = {"items": [{"sku": f"SKU-{i:04d}", "qty": i} for i in range(40)]}
#: The failing node's message (markup in it must be shown, not interpreted).
DECLINED = "card declined <b>twice</b>"


def make_registry() -> NodeRegistry:
    registry = parity_registry()

    @registry.node("big")
    async def big(ctx: Any) -> dict[str, Any]:
        return {"output": BIG}

    @registry.node("declined")
    async def declined(ctx: Any) -> None:
        raise ValueError(DECLINED)

    return registry


__all__ = ["APPROVAL", "BIG", "BLUEPRINTS", "BROKEN", "CHAIN", "DECLINED", "make_registry"]
