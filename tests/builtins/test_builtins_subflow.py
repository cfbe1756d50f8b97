"""SPEC 5.6 `subflow`: mappings, terminal outputs, child ids, failures, waits, cancellation."""

from __future__ import annotations

import asyncio
from typing import Any

import flow_maps
import pytest
from builtins_support import (
    assert_not_awaiting,
    cancel_midway,
    echo,
    make_runtime,
    of_type,
    started,
)

from flowcraft_core import (
    BlueprintError,
    BlueprintVersionError,
    RunNotAwaitingError,
    SubflowError,
)


async def double(ctx: Any) -> dict[str, Any]:
    x = ctx.input if ctx.input is not None else await ctx.context.get("x")
    await ctx.context.set("note", f"doubled {x}")
    await ctx.context.set("c2", "shadowed by _outputs.c2")
    return {"output": x * 2}


async def plus_one(ctx: Any) -> dict[str, Any]:
    return {"output": ctx.input + 1}


async def five(ctx: Any) -> dict[str, Any]:
    return {"output": 5}


async def fail(ctx: Any) -> None:
    raise ValueError("kaput")


async def fallback_value(ctx: Any) -> dict[str, Any]:
    return {"output": {"fallback": True, "caught": await ctx.context.get("_catch_error")}}


IMPLS = {
    "echo": echo,
    "double": double,
    "plus_one": plus_one,
    "five": five,
    "fail": fail,
    "fallback_value": fallback_value,
}

CHILD = flow_maps.flow("child", "c1:double c2:plus_one", "c1>c2")

CHILD_TWO_TERMINALS = flow_maps.flow(
    "child-two",
    "c1:double t1:plus_one t2:plus_one",
    "c1>t1 c1>t2",
    when={"c1>t2": "result.output > 1000"},
)

CHILD_FAILS = flow_maps.flow("child-fails", "ok:echo c1:fail", "ok>c1")

CHILD_WAITS = flow_maps.flow(
    "child-waits", "c1:echo w1:wait w2:wait c2:echo", "c1>w1 c1>w2 w1>c2 w2>c2"
)

CHILD_ONE_WAIT = flow_maps.flow("child-one-wait", "c1:echo w:wait c2:echo", "c1>w w>c2")

CHILDREN = [CHILD, CHILD_TWO_TERMINALS, CHILD_FAILS, CHILD_WAITS, CHILD_ONE_WAIT]


def parent(
    params: dict[str, Any], *, sub_id: str = "sub", config: dict[str, Any] | None = None
) -> dict[str, Any]:
    sub: dict[str, Any] = {"params": params}
    if config:
        sub["config"] = config
    nodes = f"start:five {sub_id}:subflow after:echo" + (" sub_fb:fallback_value" if config else "")
    return flow_maps.flow("parent", nodes, f"start>{sub_id} {sub_id}>after", fields={sub_id: sub})


def runtime_with_children(**kwargs: Any) -> Any:
    return make_runtime(IMPLS, blueprints={c["id"]: c for c in CHILDREN}, **kwargs)


async def test_inputs_and_outputs_mapping() -> None:
    runtime, _ = runtime_with_children()
    flow = parent(
        {
            "blueprintId": "child",
            "inputs": {"x": "start"},
            "outputs": {"result": "c2", "note": "note", "first": "c1", "missing": "nothing"},
        }
    )
    result = await runtime.run(flow, run_id="p1")
    assert result.status == "completed"
    assert result.errors == []
    expected = {"result": 11, "note": "doubled 5", "first": 10, "missing": None}
    ctx = result.context
    assert ctx["_outputs.sub"] == expected
    assert ctx["result"] == 11
    assert ctx["note"] == "doubled 5"
    assert ctx["first"] == 10
    assert ctx["missing"] is None
    assert ctx["_outputs.after"] == expected
    # Child keys are not copied into the parent beyond the mapping.
    assert "c2" not in ctx
    assert "x" not in ctx
    assert "_outputs.c1" not in ctx


async def test_outputs_prefer_child_output_over_child_key() -> None:
    runtime, _ = runtime_with_children()
    flow = parent({"blueprintId": "child", "outputs": {"r": "c2"}})
    result = await runtime.run(flow)
    assert result.status == "completed"
    # The child also writes a context key "c2", but `_outputs.c2` wins.
    assert result.context["r"] == 11
    assert result.context["_outputs.sub"] == {"r": 11}


async def test_without_inputs_node_input_goes_to_child_start_nodes() -> None:
    runtime, bus = runtime_with_children()
    result = await runtime.run(parent({"blueprintId": "child"}), run_id="p2")
    assert result.status == "completed"
    child_c1 = [e for e in of_type(bus, "node:start") if e.node_id == "c1"]
    assert [(e.run_id, e.input) for e in child_c1] == [("p2-sub-0", 5)]
    # One terminal (c2): its output is the node output.
    assert result.context["_outputs.sub"] == 11
    assert result.context["_outputs.after"] == 11


async def test_several_terminals_give_a_mapping_with_none() -> None:
    runtime, _ = runtime_with_children()
    result = await runtime.run(parent({"blueprintId": "child-two"}))
    assert result.status == "completed"
    assert result.context["_outputs.sub"] == {"t1": 11, "t2": None}


async def test_child_run_id_and_parent_fields() -> None:
    runtime, bus = runtime_with_children()
    result = await runtime.run(parent({"blueprintId": "child"}, sub_id="my-sub"), run_id="p1")
    assert result.status == "completed"
    starts = [
        (e.run_id, e.blueprint_id, e.parent_run_id, e.parent_node_id)
        for e in of_type(bus, "workflow:start")
    ]
    assert starts == [
        ("p1", "parent", None, None),
        ("p1-my~2dsub-0", "child", "p1", "my-sub"),
    ]
    finishes = [(e.run_id, e.status) for e in of_type(bus, "workflow:finish")]
    assert finishes == [("p1-my~2dsub-0", "completed"), ("p1", "completed")]
    child_nodes = {e.run_id for e in of_type(bus, "node:start") if e.node_id in ("c1", "c2")}
    assert child_nodes == {"p1-my~2dsub-0"}


async def test_child_run_ids_inside_a_loop() -> None:
    flow = flow_maps.flow(
        "looping-parent",
        "start:five L sub:subflow",
        "start>L L>sub:continue sub>L",
        loops={"L": "iteration < 2"},
        params={"sub": {"blueprintId": "child", "inputs": {"x": "start"}}},
    )
    runtime, bus = runtime_with_children()
    result = await runtime.run(flow, run_id="pl")
    assert result.status == "completed"
    children = [(e.run_id, e.parent_node_id) for e in of_type(bus, "workflow:start")][1:]
    assert children == [("pl-sub-0", "sub"), ("pl-sub-1", "sub")]


async def test_child_failure_raises_subflow_error() -> None:
    runtime, bus = runtime_with_children()
    result = await runtime.run(parent({"blueprintId": "child-fails"}), run_id="pf")
    assert result.status == "failed"
    assert len(result.errors) == 1
    error = result.errors[0]
    assert (error.node_id, error.type) == ("sub", "SubflowError")
    assert isinstance(error.exception, SubflowError)
    for part in ("child-fails", "pf-sub-0", "failed", "c1: ValueError: kaput"):
        assert part in error.message, part
    assert [(e.run_id, e.status) for e in of_type(bus, "workflow:finish")] == [
        ("pf-sub-0", "failed"),
        ("pf", "failed"),
    ]
    assert [(e.node_id, e.reason) for e in of_type(bus, "node:skipped")] == [
        ("after", "upstream_failed")
    ]


async def test_child_failure_uses_config_fallback() -> None:
    runtime, _ = runtime_with_children()
    flow = parent({"blueprintId": "child-fails"}, config={"fallback": "sub_fb"})
    result = await runtime.run(flow, run_id="pfb")
    assert result.status == "completed"
    assert result.errors == []
    caught = result.context["_catch_error"]
    assert caught["type"] == "SubflowError"
    assert caught["nodeId"] == "sub"
    assert caught["blueprintId"] == "parent"
    assert "c1: ValueError: kaput" in caught["message"]
    expected = {"fallback": True, "caught": caught}
    assert result.context["_outputs.sub_fb"] == expected
    assert result.context["_outputs.sub"] == expected
    assert result.context["_outputs.after"] == expected


async def test_child_awaiting_makes_parent_await_and_resume_by_node() -> None:
    runtime, bus = runtime_with_children()
    paused = await runtime.run(parent({"blueprintId": "child-one-wait"}), run_id="pw")
    assert paused.status == "awaiting"
    assert paused.context["_awaitingNodeIds"] == ["sub"]
    assert paused.context["_awaitingDetails"] == {
        "sub": {"reason": "subflow", "childRunId": "pw-sub-0", "awaiting": ["w"], "iteration": []}
    }
    assert [(e.node_id, e.details["reason"]) for e in of_type(bus, "node:awaiting")] == [
        ("w", "external_event"),
        ("sub", "subflow"),
    ]
    bus.clear()

    flow = parent({"blueprintId": "child-one-wait"})
    result = await runtime.resume(flow, paused.serialized_context, node_id="sub", output="go")
    assert result.status == "completed"
    assert result.run_id == "pw"
    assert result.errors == []
    assert result.context["_outputs.sub"] == "go"
    assert result.context["_outputs.after"] == "go"
    assert_not_awaiting(result)
    resumes = [(e.run_id, e.node_id) for e in of_type(bus, "workflow:resume")]
    assert resumes == [("pw", "sub"), ("pw-sub-0", "w")]
    assert bus.events[0].type == "workflow:resume"
    assert bus.events[0].run_id == "pw"
    assert (bus.events[-1].type, bus.events[-1].run_id) == ("workflow:finish", "pw")
    assert [(e.run_id, e.status) for e in of_type(bus, "workflow:finish")] == [
        ("pw-sub-0", "completed"),
        ("pw", "completed"),
    ]


async def test_resume_a_specific_child_node_by_path() -> None:
    runtime, bus = runtime_with_children()
    flow = parent({"blueprintId": "child-waits"})
    paused = await runtime.run(flow, run_id="pp")
    assert paused.context["_awaitingDetails"]["sub"] == {
        "reason": "subflow",
        "childRunId": "pp-sub-0",
        "awaiting": ["w1", "w2"],
        "iteration": [],
    }

    mid = await runtime.resume(flow, paused.serialized_context, node_id=["sub", "w2"], output="two")
    assert mid.status == "awaiting"
    assert mid.run_id == "pp"
    assert mid.context["_awaitingNodeIds"] == ["sub"]
    assert mid.context["_awaitingDetails"]["sub"] == {
        "reason": "subflow",
        "childRunId": "pp-sub-0",
        "awaiting": ["w1"],
        "iteration": [],
    }
    assert "_outputs.sub" not in mid.context

    bus.clear()
    final = await runtime.resume(flow, mid.serialized_context, node_id="sub", output="one")
    assert [(e.run_id, e.node_id) for e in of_type(bus, "workflow:resume")] == [
        ("pp", "sub"),
        ("pp-sub-0", "w1"),
    ]
    assert final.status == "completed"
    assert final.context["_outputs.sub"] == {"w1": "one", "w2": "two"}
    assert_not_awaiting(final)


async def test_cancelling_the_parent_cancels_the_child() -> None:
    child_state: list[str] = []

    async def slow(ctx: Any) -> None:
        child_state.append(f"started {ctx.run_id}")
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            child_state.append("cancelled")
            raise

    slow_child = {"id": "slow-child", "nodes": [{"id": "s", "uses": "slow"}]}
    runtime, bus = make_runtime({**IMPLS, "slow": slow}, blueprints=[slow_child])

    def child_started(_task: Any) -> None:
        assert child_state == ["started pc-sub-0"]

    result = await cancel_midway(
        lambda token: runtime.run(parent({"blueprintId": "slow-child"}), run_id="pc", signal=token),
        after_s=0.1,
        while_running=child_started,
    )
    assert result.status == "cancelled"
    assert child_state == ["started pc-sub-0", "cancelled"]
    finishes = [(e.run_id, e.status) for e in of_type(bus, "workflow:finish")]
    assert ("pc-sub-0", "cancelled") in finishes
    assert finishes[-1] == ("pc", "cancelled")
    assert [f[0] for f in finishes].count("pc") == 1
    assert started(bus, "after") == []


async def test_unknown_child_blueprint_raises_before_anything_runs() -> None:
    calls: list[str] = []

    async def start(ctx: Any) -> None:
        calls.append(ctx.node_id)

    runtime, bus = make_runtime({**IMPLS, "five": start}, blueprints=[CHILD])
    with pytest.raises(BlueprintError) as info:
        await runtime.run(parent({"blueprintId": "no-such-child"}))
    assert info.value.blueprint_id == "parent"
    assert "no-such-child" in str(info.value)
    assert calls == []
    assert of_type(bus, "node:start") == []
    assert of_type(bus, "workflow:start") == []


async def test_resume_applies_outputs_mapping_and_child_shares_dependencies() -> None:
    deps = {"service": object()}
    seen: list[tuple[str, bool]] = []

    async def check_deps(ctx: Any) -> dict[str, Any]:
        seen.append((ctx.run_id, ctx.dependencies["service"] is deps["service"]))
        return {"output": ctx.input}

    runtime, _ = make_runtime(
        {**IMPLS, "echo": check_deps},
        blueprints={c["id"]: c for c in CHILDREN},
        dependencies=deps,
    )
    flow = parent({"blueprintId": "child-one-wait", "outputs": {"final": "c2", "waited": "w"}})
    paused = await runtime.run(flow, run_id="pd")
    assert paused.status == "awaiting"
    assert "final" not in paused.context
    result = await runtime.resume(flow, paused.serialized_context, node_id="sub", output={"v": 1})
    assert result.status == "completed"
    assert result.context["final"] == {"v": 1}
    assert result.context["waited"] == {"v": 1}
    assert result.context["_outputs.sub"] == {"final": {"v": 1}, "waited": {"v": 1}}
    assert result.context["_outputs.after"] == {"final": {"v": 1}, "waited": {"v": 1}}
    assert ("pd-sub-0", True) in seen
    assert ("pd", True) in seen
    assert all(ok for _, ok in seen)


async def test_resume_path_naming_a_non_waiting_child_node_raises() -> None:
    runtime, bus = runtime_with_children()
    flow = parent({"blueprintId": "child-waits"})
    paused = await runtime.run(flow)
    bus.clear()
    with pytest.raises(RunNotAwaitingError) as info:
        await runtime.resume(flow, paused.serialized_context, node_id=["sub", "c1"])
    assert "w1" in str(info.value)
    assert "w2" in str(info.value)
    # SPEC 3.11/7.1: a call that emits workflow:resume ends with one workflow:finish; a
    # rejected resume must not leave a dangling workflow:resume (nor run anything).
    assert_resume_events_paired(bus)
    assert of_type(bus, "node:start") == []
    assert of_type(bus, "node:finish") == []
    # The run is still resumable after the rejected call.
    result = await runtime.resume(flow, paused.serialized_context, node_id=["sub", "w1"], output=1)
    assert result.status == "awaiting"


async def test_resume_with_a_changed_child_version_raises() -> None:
    runtime, _ = runtime_with_children()
    flow = parent({"blueprintId": "child-one-wait"})
    paused = await runtime.run(flow)
    changed = {**CHILD_ONE_WAIT, "metadata": {"version": "changed"}}
    other, bus = make_runtime(IMPLS, blueprints=[CHILD, changed])
    with pytest.raises(BlueprintVersionError):
        await other.resume(flow, paused.serialized_context, node_id="sub", output="x")
    assert_resume_events_paired(bus)
    assert of_type(bus, "node:finish") == []


def assert_resume_events_paired(bus: Any) -> None:
    """Every run id that emitted workflow:resume also emitted exactly one workflow:finish."""
    resumed = [e.run_id for e in of_type(bus, "workflow:resume")]
    finished = [e.run_id for e in of_type(bus, "workflow:finish")]
    assert sorted(resumed) == sorted(finished), [e.type for e in bus.events]


async def test_child_runs_through_the_parent_middleware() -> None:
    seen: list[tuple[str, str]] = []

    class Recorder:
        async def before_node(self, *, ctx: Any) -> None:
            seen.append((ctx.run_id, ctx.node_id))

    runtime, _ = make_runtime(
        IMPLS, blueprints={c["id"]: c for c in CHILDREN}, middleware=[Recorder()]
    )
    result = await runtime.run(parent({"blueprintId": "child"}), run_id="pm")
    assert result.status == "completed"
    assert ("pm-sub-0", "c1") in seen
    assert ("pm-sub-0", "c2") in seen
    assert ("pm", "start") in seen
    assert ("pm", "after") in seen


CHILD_WAIT_FIRST = flow_maps.flow("child-wait-first", "w:wait c2:echo", "w>c2")

LOOPING_WAITING_PARENT = flow_maps.flow(
    "loop-wait-parent",
    "start:echo L sub:subflow done:echo",
    "start>L L>sub:continue sub>L L>done:break",
    loops={"L": "iteration < 2"},
    params={"sub": {"blueprintId": "child-wait-first"}},
)


async def test_awaiting_subflow_inside_a_loop() -> None:
    runtime, bus = make_runtime(IMPLS, blueprints=[CHILD_WAIT_FIRST])
    flow = LOOPING_WAITING_PARENT
    first = await runtime.run(flow, {"_inputs.start": 1}, run_id="lw")
    assert first.status == "awaiting"
    assert first.context["_awaitingDetails"] == {
        "sub": {"reason": "subflow", "childRunId": "lw-sub-0", "awaiting": ["w"], "iteration": [0]}
    }
    second = await runtime.resume(flow, first.serialized_context, node_id="sub", output="a")
    assert second.status == "awaiting"
    assert second.context["_awaitingDetails"] == {
        "sub": {"reason": "subflow", "childRunId": "lw-sub-1", "awaiting": ["w"], "iteration": [1]}
    }
    assert second.context["_outputs.sub"] == "a"
    third = await runtime.resume(flow, second.serialized_context, node_id=["sub", "w"], output="b")
    assert third.status == "completed"
    assert third.run_id == "lw"
    assert third.errors == []
    assert third.context["_outputs.sub"] == "b"
    assert third.context["_outputs.done"] == "b"
    assert_not_awaiting(third)
    assert [(e.run_id, e.parent_node_id) for e in of_type(bus, "workflow:start")] == [
        ("lw", None),
        ("lw-sub-0", "sub"),
        ("lw-sub-1", "sub"),
    ]


CHILD_TWO_STARTS = flow_maps.flow("child-two-starts", "s1:echo s2:echo j:echo", "s1>j s2>j")


async def test_node_input_goes_to_every_child_start_node() -> None:
    runtime, bus = make_runtime(IMPLS, blueprints=[CHILD_TWO_STARTS])
    result = await runtime.run(parent({"blueprintId": "child-two-starts"}), run_id="ts")
    assert result.status == "completed"
    assert result.context["_outputs.sub"] == {"s1": 5, "s2": 5}
    child_starts = [(e.node_id, e.input) for e in of_type(bus, "node:start") if e.run_id != "ts"]
    assert sorted(child_starts) == [("j", {"s1": 5, "s2": 5}), ("s1", 5), ("s2", 5)]
