"""blueprints/retry_fallback: retries with exponential backoff, and a fallback stand-in."""

from __future__ import annotations

import json

from examples_support import EXAMPLES, example_blueprint, example_runtime

from flowcraft_core import load_blueprint

FILE = "retry-fallback.json"


async def test_flaky_node_succeeds_on_its_third_attempt_and_the_cache_stands_in() -> None:
    runtime, bus = example_runtime("retry_fallback")
    result = await runtime.run(example_blueprint("retry_fallback", FILE))

    assert result.status == "completed", result.errors
    assert result.errors == []
    assert result.outputs["fetch_rates"]["attempt"] == 3
    retries = [(e.node_id, e.attempt, e.delay_ms) for e in bus.of_type("node:retry")]
    assert sorted(retries) == [
        ("fetch_quote", 1, 10),
        ("fetch_rates", 1, 50),
        ("fetch_rates", 2, 100),
    ]
    cached = {
        "amount": 100.0,
        "currency": "EUR",
        "source": "cache",
        "because": "quote service is down",
    }
    assert result.outputs["fetch_quote"] == cached
    assert result.outputs["cached_quote"] == cached
    assert result.context["_catch_error"]["nodeId"] == "fetch_quote"
    [fallback] = bus.of_type("node:fallback")
    assert (fallback.node_id, fallback.fallback) == ("fetch_quote", "cached_quote")
    assert result.outputs["price"] == {"amount": 108.0, "currency": "USD", "quoteSource": "cache"}


async def test_live_quote_needs_no_fallback() -> None:
    data = json.loads((EXAMPLES / "retry_fallback" / FILE).read_text())
    data["nodes"][1]["params"]["available"] = True
    data["nodes"][0]["params"]["failures"] = 0
    runtime, bus = example_runtime("retry_fallback")
    result = await runtime.run(load_blueprint(data))

    assert result.status == "completed"
    assert bus.of_type("node:retry") == []
    assert "cached_quote" not in result.outputs
    assert result.outputs["price"] == {"amount": 102.6, "currency": "USD", "quoteSource": "live"}


async def test_too_many_failures_fail_the_run_and_block_the_join() -> None:
    data = json.loads((EXAMPLES / "retry_fallback" / FILE).read_text())
    data["nodes"][0]["params"]["failures"] = 3
    runtime, bus = example_runtime("retry_fallback")
    result = await runtime.run(load_blueprint(data))

    assert result.status == "failed"
    [error] = result.errors
    assert (error.node_id, error.type, error.attempts) == ("fetch_rates", "ConnectionError", 3)
    assert error.message == "rates service unavailable (attempt 3)"
    assert "price" not in result.outputs
    skipped = [(e.node_id, e.reason) for e in bus.of_type("node:skipped")]
    assert skipped == [("price", "upstream_failed")]
