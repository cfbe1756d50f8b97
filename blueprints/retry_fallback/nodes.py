"""Node code of the retry/fallback example.

`rates.flaky_fetch` fails its first `params.failures` attempts (it uses `ctx.attempt`, so the
example is deterministic); `rates.quote_service` is down while `params.available` is false, and
the blueprint's `fallback: cached_quote` stands in for it once its attempts are spent.
"""

from __future__ import annotations

from typing import Any

from flowcraft_core import NodeContext, NodeRegistry

registry = NodeRegistry()

RATES = {"EUR": 1.0, "USD": 1.08, "GBP": 0.86}


@registry.node("rates.flaky_fetch")
async def flaky_fetch(ctx: NodeContext) -> dict[str, Any]:
    if ctx.attempt <= int(ctx.params.get("failures", 0)):
        raise ConnectionError(f"rates service unavailable (attempt {ctx.attempt})")
    return {"output": {"rates": RATES, "attempt": ctx.attempt}}


@registry.node("rates.quote_service")
async def quote_service(ctx: NodeContext) -> dict[str, Any]:
    if not ctx.params.get("available", True):
        raise ConnectionError("quote service is down")
    return {"output": {"amount": 95.0, "currency": "EUR", "source": "live"}}


@registry.node("rates.cached_quote")
async def cached_quote(ctx: NodeContext) -> dict[str, Any]:
    """The stand-in: the engine wrote `_catch_error` (what went wrong) before it runs."""
    failure = await ctx.context.get("_catch_error") or {}
    return {
        "output": {
            "amount": 100.0,
            "currency": "EUR",
            "source": "cache",
            "because": failure.get("message"),
        }
    }


@registry.node("rates.price")
async def price(ctx: NodeContext) -> dict[str, Any]:
    rates, quote = ctx.input["rates"]["rates"], ctx.input["quote"]
    usd = round(quote["amount"] * rates["USD"] / rates[quote["currency"]], 2)
    return {"output": {"amount": usd, "currency": "USD", "quoteSource": quote["source"]}}
