"""blueprints/saga: a declined card cancels both bookings, newest first."""

from __future__ import annotations

from examples_support import example_blueprint, example_runtime

from flowcraft_core import RunStatus


async def test_declined_card_cancels_hotel_then_flight() -> None:
    runtime, _ = example_runtime("saga")
    bp = example_blueprint("saga", "trip-saga.yaml")
    result = await runtime.run(bp, {"trip": "T-9", "cardDeclined": True})
    assert result.status == RunStatus.FAILED
    assert result.compensated == ["hotel", "flight"]
    assert result.context["cancelled"] == ["HT-T-9", "FL-T-9"]


async def test_accepted_card_books_the_trip_and_cancels_nothing() -> None:
    runtime, _ = example_runtime("saga")
    bp = example_blueprint("saga", "trip-saga.yaml")
    result = await runtime.run(bp, {"trip": "T-9"})
    assert result.status == RunStatus.COMPLETED
    assert result.compensated == [] and "cancelled" not in result.context
    assert result.outputs["confirm"] == {"status": "booked"}
