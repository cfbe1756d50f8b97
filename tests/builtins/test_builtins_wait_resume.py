"""SPEC 5.4 `wait` and 3.11 resume: several waits, node choice, action routing, errors, events."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import flow_maps
import pytest
from builtins_support import (
    assert_awaiting,
    assert_not_awaiting,
    echo,
    make_runtime,
    of_type,
    started,
    trace,
)

from flowcraft_core import (
    BlueprintVersionError,
    CancellationToken,
    FlowRuntime,
    InMemoryEventBus,
    RunNotAwaitingError,
    SerializationError,
    load_blueprint,
)

TWO_WAITS = flow_maps.flow(
    "two-waits",
    "start:echo w1:wait w2:wait a:tag b:tag end:echo",
    "start>w1 start>w2 w1>a w2>b a>end b>end",
)


async def tag(ctx: Any) -> dict[str, Any]:
    return {"output": f"{ctx.node_id}:{ctx.input}"}


IMPLS = {"echo": echo, "tag": tag}


async def test_two_waits_resumed_separately() -> None:
    runtime, bus = make_runtime(IMPLS)
    first = await runtime.run(TWO_WAITS, {"_inputs.start": "go"}, run_id="run-2w")

    assert first.status == "awaiting"
    assert first.context["_awaitingNodeIds"] == ["w1", "w2"]
    assert first.context["_awaitingDetails"] == {
        "w1": {"reason": "external_event", "iteration": []},
        "w2": {"reason": "external_event", "iteration": []},
    }
    assert first.context["_inputs.w1"] == "go"
    assert first.context["_inputs.w2"] == "go"

    second = await runtime.resume(TWO_WAITS, first.serialized_context, node_id="w2", output="B")
    assert second.status == "awaiting"
    assert second.run_id == "run-2w"
    assert second.context["_executionId"] == "run-2w"
    assert second.context["_awaitingNodeIds"] == ["w1"]
    assert second.context["_awaitingDetails"] == {
        "w1": {"reason": "external_event", "iteration": []}
    }
    assert second.context["_outputs.w2"] == "B"
    assert second.context["_outputs.b"] == "b:B"
    assert "_outputs.w1" not in second.context
    assert "_outputs.a" not in second.context
    assert "_outputs.end" not in second.context
    assert_awaiting(second)

    third = await runtime.resume(TWO_WAITS, second.serialized_context, node_id="w1", output="A")
    assert third.status == "completed"
    assert third.errors == []
    assert third.run_id == "run-2w"
    assert third.context["_executionId"] == "run-2w"
    assert_not_awaiting(third)
    assert third.context["_outputs.w1"] == "A"
    assert third.context["_outputs.a"] == "a:A"
    assert third.context["_outputs.b"] == "b:B"
    assert third.context["_outputs.end"] == {"a": "a:A", "b": "b:B"}
    assert started(bus, "end") == [()]
    assert started(bus, "b") == [()]
    assert [e.status for e in of_type(bus, "workflow:finish")] == [
        "awaiting",
        "awaiting",
        "completed",
    ]


FIRST_IN_BLUEPRINT_ORDER = flow_maps.flow(
    "order-of-waits", "start:echo zeta:wait hop:echo alpha:wait", "start>alpha start>hop hop>zeta"
)


async def test_resume_without_node_id_picks_first_waiting_node_in_blueprint_order() -> None:
    runtime, bus = make_runtime(IMPLS, concurrency=1)
    paused = await runtime.run(FIRST_IN_BLUEPRINT_ORDER)
    # alpha started waiting first, but zeta comes first in the blueprint.
    assert [e.node_id for e in of_type(bus, "node:awaiting")] == ["alpha", "zeta"]
    assert paused.context["_awaitingNodeIds"] == ["zeta", "alpha"]

    bus.clear()
    resumed = await runtime.resume(FIRST_IN_BLUEPRINT_ORDER, paused.serialized_context, output=1)
    assert bus.events[0].type == "workflow:resume"
    assert bus.events[0].node_id == "zeta"
    assert resumed.status == "awaiting"
    assert resumed.context["_outputs.zeta"] == 1
    assert resumed.context["_awaitingNodeIds"] == ["alpha"]

    done = await runtime.resume(FIRST_IN_BLUEPRINT_ORDER, resumed.serialized_context, output=2)
    assert done.status == "completed"
    assert done.context["_outputs.alpha"] == 2
    assert_not_awaiting(done)


ACTIONS = flow_maps.flow(
    "actions", "w:wait yes:echo no:echo always:echo", "w>yes:yes w>no:no w>always"
)


@pytest.mark.parametrize(
    ("action", "ran", "skipped"),
    [
        ("yes", ["yes"], ["no", "always"]),
        ("no", ["no"], ["yes", "always"]),
        ("maybe", ["always"], ["yes", "no"]),
        (None, ["always"], ["yes", "no"]),
    ],
)
async def test_resume_output_is_node_output_and_action_routes(
    action: str | None, ran: list[str], skipped: list[str]
) -> None:
    runtime, bus = make_runtime(IMPLS)
    paused = await runtime.run(ACTIONS)
    assert paused.context["_awaitingNodeIds"] == ["w"]
    body = {"decision": action, "n": [1, 2]}
    result = await runtime.resume(ACTIONS, paused.serialized_context, output=body, action=action)

    assert result.status == "completed"
    assert result.context["_outputs.w"] == body
    finish_w = [e for e in of_type(bus, "node:finish") if e.node_id == "w"]
    assert len(finish_w) == 1
    assert finish_w[0].result.output == body
    assert finish_w[0].result.action == action
    for node in ran:
        assert result.context[f"_outputs.{node}"] == body
    for node in skipped:
        assert f"_outputs.{node}" not in result.context
    assert sorted(e.node_id for e in of_type(bus, "node:skipped")) == sorted(skipped)
    assert {e.reason for e in of_type(bus, "node:skipped")} == {"dead_path"}


async def test_resume_of_a_finished_run_raises() -> None:
    runtime, _ = make_runtime(IMPLS)
    paused = await runtime.run(ACTIONS)
    done = await runtime.resume(ACTIONS, paused.serialized_context)
    assert done.status == "completed"
    with pytest.raises(RunNotAwaitingError):
        await runtime.resume(ACTIONS, done.serialized_context)

    plain = {"id": "plain", "nodes": [{"id": "x", "uses": "echo"}]}
    finished = await runtime.run(plain)
    assert finished.status == "completed"
    with pytest.raises(RunNotAwaitingError):
        await runtime.resume(plain, finished.serialized_context, node_id="x")


@pytest.mark.parametrize("node_id", ["start", "a", "nope"])
async def test_resume_of_a_non_waiting_node_lists_waiting_nodes(node_id: str) -> None:
    runtime, bus = make_runtime(IMPLS)
    paused = await runtime.run(TWO_WAITS)
    bus.clear()
    with pytest.raises(RunNotAwaitingError) as info:
        await runtime.resume(TWO_WAITS, paused.serialized_context, node_id=node_id)
    message = str(info.value)
    assert "w1" in message
    assert "w2" in message
    assert node_id in message
    # Nothing ran: the rejected resume emits no node events.
    assert trace(bus) == []


async def test_resume_with_a_changed_version_raises() -> None:
    v1 = {**ACTIONS, "metadata": {"version": "1"}}
    v2 = {**ACTIONS, "metadata": {"version": "2"}}
    runtime, bus = make_runtime(IMPLS)
    paused = await runtime.run(v1)
    bus.clear()
    with pytest.raises(BlueprintVersionError) as info:
        await runtime.resume(v2, paused.serialized_context, action="yes")
    assert "'1'" in str(info.value)
    assert "'2'" in str(info.value)
    assert trace(bus) == []
    # The same version (even with different content) is accepted: the pin is the version.
    v1_edited = {**v1, "nodes": [*ACTIONS["nodes"], {"id": "extra", "uses": "echo"}]}
    resumed = await runtime.resume(v1_edited, paused.serialized_context, action="yes")
    assert resumed.status == "completed"


async def test_resume_with_changed_content_and_no_version_raises() -> None:
    runtime, _ = make_runtime(IMPLS)
    paused = await runtime.run(ACTIONS)
    changed = {
        **ACTIONS,
        "nodes": [*ACTIONS["nodes"][:3], {"id": "always", "uses": "echo", "params": {"v": 2}}],
    }
    with pytest.raises(BlueprintVersionError) as info:
        await runtime.resume(changed, paused.serialized_context, action="yes")
    assert "sha256:" in str(info.value)
    # An equal blueprint (a fresh copy, loaded again) resumes fine.
    copy = load_blueprint(json.loads(json.dumps(ACTIONS)))
    resumed = await runtime.resume(copy, paused.serialized_context, action="yes")
    assert resumed.status == "completed"


async def test_resume_with_another_blueprint_id_raises() -> None:
    runtime, _ = make_runtime(IMPLS)
    paused = await runtime.run(ACTIONS)
    other = {**ACTIONS, "id": "actions-2"}
    with pytest.raises(BlueprintVersionError):
        await runtime.resume(other, paused.serialized_context, action="yes")


async def test_resume_events_and_reserved_keys() -> None:
    runtime, bus = make_runtime(IMPLS)
    paused = await runtime.run(TWO_WAITS, run_id="ev-run")
    assert bus.events[0].type == "workflow:start"
    assert bus.events[-1].type == "workflow:finish"
    assert_awaiting(paused)

    bus.clear()
    mid = await runtime.resume(TWO_WAITS, paused.serialized_context, node_id="w1", output=1)
    types = [e.type for e in bus.events]
    assert types[0] == "workflow:resume"
    assert types[-1] == "workflow:finish"
    assert types.count("workflow:finish") == 1
    assert types.count("workflow:resume") == 1
    assert "workflow:start" not in types
    assert {e.run_id for e in bus.events} == {"ev-run"}
    assert bus.events[-1].status == "awaiting"
    assert trace(bus) == [
        ("node:finish", "w1", ()),
        ("node:start", "a", ()),
        ("node:finish", "a", ()),
    ]
    assert_awaiting(mid)

    bus.clear()
    final = await runtime.resume(TWO_WAITS, mid.serialized_context, node_id="w2", output=2)
    types = [e.type for e in bus.events]
    assert types[0] == "workflow:resume"
    assert bus.events[0].node_id == "w2"
    assert types[-1] == "workflow:finish"
    assert types.count("workflow:finish") == 1
    assert bus.events[-1].status == "completed"
    assert_not_awaiting(final)
    assert json.loads(final.serialized_context) == final.context


async def test_serialized_context_round_trips_in_a_fresh_runtime() -> None:
    runtime, _ = make_runtime(IMPLS)
    paused = await runtime.run(TWO_WAITS, {"_inputs.start": {"k": [1, None, "x"]}}, run_id="rt")
    text = paused.serialized_context
    assert isinstance(text, str)
    decoded = json.loads(text)
    assert decoded == paused.context
    assert runtime.serializer.deserialize(text) == paused.context
    assert json.loads(runtime.serializer.serialize(decoded)) == decoded

    # Another runtime (another process, say) resumes from the re-encoded text.
    other_bus = InMemoryEventBus()
    other = FlowRuntime(registry=IMPLS, event_bus=other_bus)
    mid = await other.resume(TWO_WAITS, json.dumps(decoded), node_id="w1", output=None)
    assert mid.status == "awaiting"
    assert mid.context["_outputs.w1"] is None
    assert mid.context["_outputs.a"] == "a:None"
    final = await other.resume(TWO_WAITS, mid.serialized_context.encode(), output=[1])
    assert final.status == "completed"
    assert final.run_id == "rt"
    assert final.context["_outputs.end"] == {"a": "a:None", "b": "b:[1]"}
    assert final.context["_inputs.start"] == {"k": [1, None, "x"]}


WAIT_IN_LOOP = flow_maps.flow(
    "wait-in-loop",
    "start:echo L w:wait done:echo",
    "start>L L>w:continue w>L L>done:break",
    loops={"L": "iteration < 2"},
)


async def test_wait_inside_a_loop_body() -> None:
    runtime, bus = make_runtime(IMPLS)
    first = await runtime.run(WAIT_IN_LOOP, {"_inputs.start": "s"}, run_id="loopw")
    assert first.status == "awaiting"
    assert first.context["_awaitingNodeIds"] == ["w"]
    assert first.context["_awaitingDetails"] == {
        "w": {"reason": "external_event", "iteration": [0]}
    }
    awaiting = of_type(bus, "node:awaiting")
    assert [(e.node_id, e.iteration) for e in awaiting] == [("w", (0,))]

    second = await runtime.resume(WAIT_IN_LOOP, first.serialized_context, output="r0")
    assert second.status == "awaiting"
    assert second.context["_awaitingDetails"] == {
        "w": {"reason": "external_event", "iteration": [1]}
    }
    assert second.context["_outputs.w"] == "r0"

    third = await runtime.resume(WAIT_IN_LOOP, second.serialized_context, node_id="w", output="r1")
    assert third.status == "completed"
    assert third.run_id == "loopw"
    assert third.errors == []
    assert third.context["_outputs.w"] == "r1"
    assert third.context["_outputs.done"] == "r1"
    assert started(bus, "L") == [(0,), (1,), (2,)]
    assert started(bus, "w") == [(0,), (1,)]
    assert started(bus, "done") == [()]
    assert_not_awaiting(third)


async def test_failure_beside_a_wait_makes_the_run_failed_not_awaiting() -> None:
    async def boom(ctx: Any) -> None:
        raise RuntimeError("boom")

    flow = {
        "id": "fail-and-wait",
        "nodes": [{"id": "w", "uses": "wait"}, {"id": "bad", "uses": "boom"}],
    }
    runtime, bus = make_runtime({**IMPLS, "boom": boom})
    result = await runtime.run(flow)
    assert result.status == "failed"
    assert [(e.node_id, e.message) for e in result.errors] == [("bad", "boom")]
    assert_not_awaiting(result)
    assert [e.node_id for e in of_type(bus, "node:awaiting")] == ["w"]
    with pytest.raises(RunNotAwaitingError):
        await runtime.resume(flow, result.serialized_context, node_id="w")


async def test_awaiting_context_is_not_a_valid_initial_context() -> None:
    runtime, _ = make_runtime(IMPLS)
    paused = await runtime.run(ACTIONS)
    with pytest.raises(ValueError):
        await runtime.run(ACTIONS, paused.serialized_context)
    with pytest.raises(ValueError):
        await runtime.run(ACTIONS, {"_runState": paused.context["_runState"]})


async def test_resume_accepts_a_context_mapping() -> None:
    runtime, _ = make_runtime(IMPLS)
    paused = await runtime.run(ACTIONS, run_id="as-dict")
    result = await runtime.resume(ACTIONS, dict(paused.context), output="m", action="no")
    assert result.status == "completed"
    assert result.run_id == "as-dict"
    assert result.context["_outputs.no"] == "m"
    # The caller's mapping is not consumed.
    assert "_runState" in paused.context


async def test_resume_with_non_json_output_raises_and_leaves_the_run_resumable() -> None:
    runtime, _ = make_runtime(IMPLS)
    paused = await runtime.run(ACTIONS)
    with pytest.raises(SerializationError):
        await runtime.resume(ACTIONS, paused.serialized_context, output={1, 2})
    result = await runtime.resume(ACTIONS, paused.serialized_context, output=[1, 2])
    assert result.status == "completed"
    assert result.context["_outputs.w"] == [1, 2]


async def test_cancelling_a_resumed_run() -> None:
    flow = flow_maps.flow(
        "wait-then-sleep", "w:wait nap:sleep", "w>nap", params={"nap": {"duration": "30s"}}
    )
    runtime, bus = make_runtime(IMPLS)
    paused = await runtime.run(flow, run_id="rc")
    bus.clear()
    token = CancellationToken()
    task = asyncio.ensure_future(
        runtime.resume(flow, paused.serialized_context, output="x", signal=token)
    )
    await asyncio.sleep(0.05)
    assert not task.done()
    token.cancel()
    result = await asyncio.wait_for(task, timeout=5)
    assert result.status == "cancelled"
    assert result.run_id == "rc"
    assert result.context["_outputs.w"] == "x"
    assert_not_awaiting(result)
    assert bus.events[0].type == "workflow:resume"
    assert [e.status for e in of_type(bus, "workflow:finish")] == ["cancelled"]
