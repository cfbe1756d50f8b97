"""On Redis too, a wait that takes a buffered resume emits node:start, node:awaiting and
node:finish, as the in-process run and resume do (SPEC 7)."""

from __future__ import annotations

from distributed.test_buffered_resume_events import APPROVE, in_process_events, node_events
from distributed.test_memory_parity import make_registry

from flowcraft_bullmq import BullMQAdapter
from flowcraft_core import InMemoryEventBus


async def test_buffered_resume_events_match_in_process(redis_url: str, prefix: str) -> None:
    bus = InMemoryEventBus()
    adapter = BullMQAdapter(
        connection=redis_url,
        registry=make_registry(),
        blueprints=[APPROVE],
        prefix=prefix,
        event_bus=bus,
    )
    try:
        await adapter.connect()  # not consuming yet: the resume is buffered before ask starts
        run_id = await adapter.start_run("approve")
        assert await adapter.resume_with_action(run_id, "approve", "ok", node_id="ask") == (
            "buffered"
        )
        await adapter.start()
        result = await adapter.wait_for_result(run_id, timeout_s=10)
    finally:
        await adapter.close(timeout_s=10)
    assert result.status == "completed"
    assert node_events(bus) == await in_process_events()
