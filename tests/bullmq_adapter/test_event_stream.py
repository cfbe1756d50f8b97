"""Events across processes (`event_stream=True`): a `flowcraft worker --event-stream`
subprocess appends the node events it emits to the run's Redis Stream, and a client in this
process follows them with `adapter.events(run_id)`: the same node events, in the same order,
as the in-process run emits; the stream expires with the run. Events survive the JSON round
trip."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from adapter_support import adapter
from bullmq_processes import worker_processes
from distributed.test_memory_parity import CASES, make_registry
from redis.asyncio import Redis

from flowcraft_bullmq.event_stream import RemoteError, RunEventStream, event_data, event_of
from flowcraft_core import FlowRuntime, InMemoryEventBus
from flowcraft_core import events as ev
from flowcraft_core.results import ErrorRecord, NodeResult

HERE = Path(__file__).parent
ROUTED, CONTEXT = CASES["if_else_join"]
KINDS = {"workflow:start", "node:start", "node:finish", "node:error", "node:skipped"}
TTL_S = 86_400  # the worker's state_ttl_s: its final script sets the run's TTL


def _seen(events: list[ev.FlowEvent]) -> list[tuple[str, str | None, Any]]:
    """(type, node id, output) of the events both modes emit."""
    out = []
    for event in events:
        if event.type in KINDS:
            result = getattr(event, "result", None)
            out.append((event.type, getattr(event, "node_id", None), getattr(result, "output", 0)))
    return out


def test_a_client_follows_the_events_of_a_worker_process(
    tmp_path: Path, redis_url: str, prefix: str
) -> None:
    (tmp_path / "ifelse.json").write_text(json.dumps(ROUTED), encoding="utf-8")
    args = ["--redis", redis_url, "--prefix", prefix, "--blueprints", str(tmp_path)]
    args += ["--registry", "worker_nodes:registry", "--event-stream"]
    context = CONTEXT

    async def scenario() -> tuple[list[ev.FlowEvent], int]:
        async with adapter(
            redis_url, prefix, blueprints=[ROUTED], consume=False, event_stream=True
        ) as client:
            run_id = await client.start_run("ifelse", context, run_id="r1")
            followed = [event async for event in client.events(run_id)]
            assert client._client is not None
            ttl = await client._client.ttl(f"{prefix}:{{r1}}:events")
        return followed, ttl

    with worker_processes(1, args, tmp_path / "trace", HERE) as [worker]:
        followed, ttl = asyncio.run(scenario())
        assert followed, worker.stderr
    bus = InMemoryEventBus()
    runtime = FlowRuntime(registry=make_registry(), blueprints=[ROUTED], event_bus=bus)
    asyncio.run(runtime.run("ifelse", context, run_id="r1"))
    expected = _seen(bus.events)
    assert ("node:skipped", "y", 0) in expected
    assert _seen(followed) == expected
    assert {event.run_id for event in followed} == {"r1"}
    assert 0 < ttl <= TTL_S  # it expires with the run


class _SlowBus:
    """Holds some events back: the adapter's stream appends each event after its bus took it."""

    def __init__(self, delays: dict[tuple[str, str], float]) -> None:
        self.delays = delays

    async def emit(self, event: ev.FlowEvent) -> None:
        await asyncio.sleep(self.delays.get((event.type, getattr(event, "node_id", "")), 0))


@pytest.mark.parametrize(
    "delays",
    [{("node:skipped", "y"): 0.05}, {("node:skipped", "y"): 0.05, ("node:finish", "x"): 0.2}],
    ids=["skip_late", "skip_and_finish_late"],
)
async def test_the_stream_keeps_the_order_when_appends_are_slow(
    redis_url: str, prefix: str, delays: dict[tuple[str, str], float]
) -> None:
    """SPEC 7.1 across activations: a slow append of y's node:skipped (by s's job) or of x's
    node:finish (by x's job) lands before x, or the join j, starts (a job emits its events
    before its completion can make a successor ready)."""
    bus = _SlowBus(delays)
    async with adapter(
        redis_url,
        prefix,
        blueprints=[ROUTED],
        registry=make_registry(),
        event_stream=True,
        event_bus=bus,
    ) as instance:
        run_id = await instance.start_run("ifelse", CONTEXT, run_id="r1")
        followed = [event async for event in instance.events(run_id, settle_s=0.3)]
    runtime_bus = InMemoryEventBus()
    runtime = FlowRuntime(registry=make_registry(), blueprints=[ROUTED], event_bus=runtime_bus)
    await runtime.run("ifelse", CONTEXT, run_id="r1")
    assert _seen(followed) == _seen(runtime_bus.events)


def _samples() -> list[ev.FlowEvent]:
    at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    base: dict[str, Any] = {"run_id": "r", "blueprint_id": "b", "timestamp": at}
    record = ErrorRecord(node_id="n", type="ValueError", message="bad", iteration=(1,), attempts=2)
    return [
        ev.WorkflowStart(**base, parent_run_id="p", parent_node_id="s"),
        ev.NodeStart(**base, node_id="n", iteration=(1, 2), input={"a": [1, None]}),
        ev.NodeFinish(**base, node_id="n", result=NodeResult("out", "go"), duration_ms=1.5),
        ev.NodeError(**base, node_id="n", iteration=(1,), error=record),
        ev.NodeAwaiting(**base, node_id="w", details={"k": "v"}),
        ev.NodeSkipped(**base, node_id="n", reason="dead_path"),
        ev.WorkflowFinish(**base, status="failed", errors=(record,)),
        ev.ContextChange(**base, source_node="n", key="k", op="set", value=3),
        ev.BatchStart(**base, batch_id="s", scatter_node_id="s", gather_node_id="g", item_count=2),
    ]


@pytest.mark.parametrize("event", _samples(), ids=lambda event: event.type)
def test_events_survive_the_round_trip(event: ev.FlowEvent) -> None:
    text = json.dumps(event_data(event))
    assert event_of(event.type, json.loads(text)) == event


def test_an_exception_comes_back_as_a_remote_error() -> None:
    retry = ev.NodeRetry(
        run_id="r", blueprint_id="b", node_id="n", attempt=1, delay_ms=5, error=KeyError("k")
    )
    back = event_of("node:retry", json.loads(json.dumps(event_data(retry))))
    assert isinstance(back, ev.NodeRetry) and isinstance(back.error, RemoteError)
    assert (back.error.type_name, str(back.error), back.attempt) == ("KeyError", "'k'", 1)


async def test_an_event_of_a_missing_run_is_dropped(redis_url: str, prefix: str) -> None:
    client = Redis.from_url(redis_url, decode_responses=True, socket_timeout=None)
    try:
        stream = RunEventStream(prefix, maxlen=10, ttl_s=0)
        stream.attach(client)
        await stream.emit(ev.NodeStart(run_id="gone", blueprint_id="b", node_id="n"))
        assert not await client.exists(f"{prefix}:{{gone}}:events")
        await client.hset(f"{prefix}:{{live}}:meta", "status", "running")
        for i in range(300):
            await stream.emit(ev.NodeStart(run_id="live", blueprint_id="b", node_id=f"n{i}"))
        assert 10 <= await client.xlen(f"{prefix}:{{live}}:events") < 300  # MAXLEN ~ 10
        assert await client.ttl(f"{prefix}:{{live}}:events") == -1  # state_ttl_s=0: kept
    finally:
        await client.aclose()
