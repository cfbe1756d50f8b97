"""blueprints/payment_events: the order waits for `payment.received`, then ships (in-process
and through LocalCluster, where the event may come before the wait)."""

from __future__ import annotations

from examples_support import example_blueprint, example_registry, example_runtime

from flowcraft_core import RunStatus
from flowcraft_core.distributed import LocalCluster


async def test_the_payment_event_resumes_the_order() -> None:
    runtime, _ = example_runtime("payment_events")
    bp = example_blueprint("payment_events", "order-payment.yaml")
    waiting = await runtime.run(bp, {"order": "42"})
    assert waiting.status == RunStatus.AWAITING
    assert waiting.context["_awaitingDetails"]["paid"]["event"] == "payment.received"
    done = await runtime.send_event(
        bp, waiting.serialized_context, "payment.received", {"amount": 19.5}
    )
    assert done.status == RunStatus.COMPLETED
    assert done.outputs["ship"] == {"shipped": True, "paid": 19.5}


async def test_an_early_event_is_kept_until_the_wait() -> None:
    bp = example_blueprint("payment_events", "order-payment.yaml")
    cluster = LocalCluster(registry=example_registry("payment_events"), blueprints=[bp])
    run_id = await cluster.start_run(bp.id, {"order": "42"})
    assert await cluster.send_event(run_id, "payment.received", {"amount": 19.5}) == "buffered"
    await cluster.drain()
    result = await cluster.result(run_id)
    assert result.status == RunStatus.COMPLETED
    assert result.outputs["ship"] == {"shipped": True, "paid": 19.5}
