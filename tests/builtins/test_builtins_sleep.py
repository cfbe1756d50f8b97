"""SPEC 5.3 `sleep`: durations, `until`, pass-through output, no awaiting, cancellation."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import flow_maps
import pytest
from builtins_support import (
    Timer,
    assert_not_awaiting,
    cancel_midway,
    echo,
    make_runtime,
    of_type,
    ran,
    still_running,
    trace,
)


def sleep_flow(params: dict[str, Any]) -> dict[str, Any]:
    return flow_maps.flow(
        "sleepy", "start:echo nap:sleep after:echo", "start>nap nap>after", params={"nap": params}
    )


@pytest.mark.parametrize(
    ("duration", "low", "high"),
    [
        (0, 0.0, 0.5),
        (60, 0.055, 1.0),
        (60.0, 0.055, 1.0),
        ("60ms", 0.055, 1.0),
        ("1s", 0.95, 2.5),
    ],
)
async def test_sleep_duration(duration: Any, low: float, high: float) -> None:
    runtime, bus = make_runtime({"echo": echo})
    payload = {"order": 1, "tags": ["a"]}
    with Timer() as timer:
        result = await runtime.run(sleep_flow({"duration": duration}), {"_inputs.start": payload})
    assert low <= timer.elapsed < high
    assert result.status == "completed"
    assert result.errors == []
    assert result.context["_outputs.nap"] == payload
    assert result.context["_outputs.after"] == payload
    assert_not_awaiting(result)
    assert of_type(bus, "node:awaiting") == []
    assert trace(bus) == ran("start", "nap", "after")


async def test_sleep_until_future_timestamp() -> None:
    runtime, _ = make_runtime({"echo": echo})
    until = (datetime.now(UTC) + timedelta(milliseconds=400)).isoformat()
    with Timer() as timer:
        result = await runtime.run(sleep_flow({"until": until}), {"_inputs.start": "x"})
    assert 0.3 <= timer.elapsed < 2.0
    assert result.status == "completed"
    assert result.context["_outputs.nap"] == "x"


async def test_sleep_until_future_timestamp_with_other_offset() -> None:
    runtime, _ = make_runtime({"echo": echo})
    zone = timezone(timedelta(hours=5, minutes=30))
    until = (datetime.now(UTC) + timedelta(milliseconds=300)).astimezone(zone).isoformat()
    assert until.endswith("+05:30")
    with Timer() as timer:
        result = await runtime.run(sleep_flow({"until": until}))
    assert 0.2 <= timer.elapsed < 2.0
    assert result.status == "completed"


async def test_sleep_until_past_timestamp_does_not_wait() -> None:
    runtime, _ = make_runtime({"echo": echo})
    until = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    with Timer() as timer:
        result = await runtime.run(sleep_flow({"until": until}), {"_inputs.start": [1, 2]})
    assert timer.elapsed < 0.3
    assert result.status == "completed"
    assert result.context["_outputs.nap"] == [1, 2]
    assert result.context["_outputs.after"] == [1, 2]


async def test_sleeping_run_is_running_not_awaiting() -> None:
    runtime, bus = make_runtime({"echo": echo})
    task = asyncio.ensure_future(runtime.run(sleep_flow({"duration": "300ms"})))
    await asyncio.sleep(0.1)
    assert not task.done()
    assert [e.node_id for e in of_type(bus, "node:start")] == ["start", "nap"]
    assert of_type(bus, "workflow:finish") == []
    result = await task
    assert result.status == "completed"
    assert_not_awaiting(result)


async def test_cancellation_during_a_long_sleep() -> None:
    runtime, bus = make_runtime({"echo": echo})
    result = await cancel_midway(
        lambda token: runtime.run(
            sleep_flow({"duration": "30s"}), {"_inputs.start": "s"}, signal=token
        ),
        after_s=0.1,
        while_running=still_running,
    )
    assert result.status == "cancelled"
    assert result.context["_outputs.start"] == "s"
    assert "_outputs.nap" not in result.context
    assert "_outputs.after" not in result.context
    assert [e.status for e in of_type(bus, "workflow:finish")] == ["cancelled"]
    assert [e.node_id for e in of_type(bus, "node:start")] == ["start", "nap"]


async def test_cancelling_the_task_during_a_sleep() -> None:
    runtime, bus = make_runtime({"echo": echo})
    task = asyncio.ensure_future(runtime.run(sleep_flow({"duration": "30s"})))
    await asyncio.sleep(0.1)
    with Timer() as timer:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, timeout=5)
    assert timer.elapsed < 1.0
    assert [e.status for e in of_type(bus, "workflow:finish")] == ["cancelled"]


async def test_sleep_does_not_block_a_parallel_branch() -> None:
    seen: list[str] = []

    async def mark(ctx: Any) -> None:
        seen.append(ctx.node_id)

    flow = flow_maps.flow(
        "parallel-sleep",
        "nap:sleep fast:mark slow:mark",
        "nap>slow",
        params={"nap": {"duration": 200}},
    )
    runtime, _ = make_runtime({"mark": mark})
    task = asyncio.ensure_future(runtime.run(flow))
    await asyncio.sleep(0.1)
    assert seen == ["fast"]
    result = await task
    assert result.status == "completed"
    assert seen == ["fast", "slow"]
