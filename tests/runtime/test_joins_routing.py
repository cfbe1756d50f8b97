"""SPEC 3.3-3.6 and 6.1/6.5: edge selection, joins, skip propagation, delivered values and
expressions over result/context/bare names."""

from __future__ import annotations

import asyncio
from typing import Any

from flowcraft_core import ExpressionError

from .support import (
    Calls,
    bp,
    echo,
    edge,
    index_of,
    make_runtime,
    node,
    of_type,
    outputs,
    skipped,
    started,
)


def emitter(output: Any = None, action: str | None = None, delay_s: float = 0.0) -> Any:
    async def impl(ctx: Any) -> dict[str, Any]:
        if delay_s:
            await asyncio.sleep(delay_s)
        return {"output": output, "action": action}

    return impl


def tagged(calls: Calls, delay_s: float = 0.0) -> Any:
    """Records (node_id, input) and outputs {"node": id, "input": input}."""

    async def impl(ctx: Any) -> dict[str, Any]:
        calls.add((ctx.node_id, ctx.input))
        if ctx.params.get("delay"):
            await asyncio.sleep(ctx.params["delay"])
        elif delay_s:
            await asyncio.sleep(delay_s)
        return {"output": {"node": ctx.node_id, "input": ctx.input}}

    return impl


# --------------------------------------------------------------------------- all joins


async def test_diamond_all_join_gets_both_values_in_first_declaration_order() -> None:
    calls = Calls()
    runtime, bus = make_runtime({"t": tagged(calls), "src": emitter({"v": 1})})
    blueprint = bp(
        [
            node("A", "src"),
            node("B", "t", params={"delay": 0.05}),  # B finishes last
            node("C", "t"),
            node("D", "t"),
        ],
        [edge("A", "B"), edge("A", "C"), edge("B", "D"), edge("C", "D")],
    )
    result = await runtime.run(blueprint)

    assert result.status == "completed"
    d_inputs = [inp for nid, inp in calls.log if nid == "D"]
    assert len(d_inputs) == 1
    expected = {
        "B": {"node": "B", "input": {"v": 1}},
        "C": {"node": "C", "input": {"v": 1}},
    }
    assert d_inputs[0] == expected
    assert list(d_inputs[0]) == ["B", "C"]
    assert result.context["_inputs.D"] == expected
    # D starts only after both predecessors finished.
    assert index_of(bus, "node:start", "D") > index_of(bus, "node:finish", "B")
    assert index_of(bus, "node:start", "D") > index_of(bus, "node:finish", "C")


async def test_fan_in_order_follows_first_edge_declaration_not_node_order() -> None:
    calls = Calls()
    runtime, _ = make_runtime({"t": tagged(calls)})
    blueprint = bp(
        [node("A", "t"), node("B", "t"), node("C", "t"), node("D", "t")],
        # C -> D is declared before B -> D.
        [edge("A", "B"), edge("A", "C"), edge("C", "D"), edge("B", "D")],
    )
    result = await runtime.run(blueprint)
    assert result.status == "completed"
    (d_input,) = [inp for nid, inp in calls.log if nid == "D"]
    assert list(d_input) == ["C", "B"]


async def test_parallel_edges_first_declared_taken_edge_supplies_the_value() -> None:
    calls = Calls()
    runtime, _ = make_runtime({"t": tagged(calls), "src": emitter({"v": 2})})
    blueprint = bp(
        [node("A", "src"), node("B", "t")],
        [
            edge("A", "B", condition="result.output.v > 5", transform="'first'"),
            edge("A", "B", transform="'second'"),
            edge("A", "B", transform="'third'"),
        ],
    )
    result = await runtime.run(blueprint)
    assert result.status == "completed"
    assert calls.log == [("B", "second")]


async def test_all_join_with_one_taken_predecessor_gets_that_value_not_a_dict() -> None:
    calls = Calls()
    runtime, bus = make_runtime({"t": tagged(calls), "src": emitter({"v": 7})})
    blueprint = bp(
        [node("A", "src"), node("B", "t"), node("C", "t"), node("D", "t")],
        [
            edge("A", "B", condition="result.output.v > 5"),
            edge("A", "C", condition="result.output.v <= 5"),
            edge("B", "D", transform="{'from': 'B', 'v': input.input.v}"),
            edge("C", "D", transform="{'from': 'C'}"),
        ],
    )
    result = await runtime.run(blueprint)
    assert result.status == "completed"
    assert [inp for nid, inp in calls.log if nid == "D"] == [{"from": "B", "v": 7}]
    assert skipped(bus) == {"C": "dead_path"}


# --------------------------------------------------------------------------- any joins


async def test_any_join_fires_exactly_once_with_the_firing_edge_value() -> None:
    calls = Calls()
    runtime, bus = make_runtime({"t": tagged(calls), "src": emitter(1)})
    blueprint = bp(
        [
            node("A", "src"),
            node("fast", "t"),
            node("slow", "t", params={"delay": 0.15}),
            node("D", "t", config={"joinStrategy": "any"}),
        ],
        [
            edge("A", "fast"),
            edge("A", "slow"),
            edge("fast", "D", transform="{'via': 'fast'}"),
            edge("slow", "D", transform="{'via': 'slow'}"),
        ],
    )
    result = await runtime.run(blueprint)

    assert result.status == "completed"
    d_calls = [inp for nid, inp in calls.log if nid == "D"]
    assert d_calls == [{"via": "fast"}]
    assert started(bus).count("D") == 1
    assert result.context["_inputs.D"] == {"via": "fast"}
    # D fired on the first taken resolution, before the slow branch finished.
    assert index_of(bus, "node:start", "D") < index_of(bus, "node:finish", "slow")
    assert outputs(result)["slow"] == {"node": "slow", "input": 1}


async def test_any_join_with_every_predecessor_dead_is_skipped() -> None:
    runtime, bus = make_runtime({"src": emitter(0), "echo": echo})
    blueprint = bp(
        [node("A", "src"), node("B"), node("C"), node("D", config={"joinStrategy": "any"})],
        [
            edge("A", "B", condition="result.output > 0"),
            edge("A", "C", condition="result.output > 0"),
            edge("B", "D"),
            edge("C", "D"),
        ],
    )
    result = await runtime.run(blueprint)
    assert result.status == "completed"
    assert skipped(bus) == {"B": "dead_path", "C": "dead_path", "D": "dead_path"}
    assert "D" not in started(bus)


async def test_any_join_runs_when_some_branches_are_dead() -> None:
    calls = Calls()
    runtime, bus = make_runtime({"t": tagged(calls), "src": emitter(3)})
    blueprint = bp(
        [
            node("A", "src"),
            node("B", "t"),
            node("C", "t"),
            node("D", "t", config={"joinStrategy": "any"}),
        ],
        [
            edge("A", "B", condition="result.output > 5"),
            edge("A", "C", condition="result.output <= 5"),
            edge("B", "D"),
            edge("C", "D"),
        ],
    )
    result = await runtime.run(blueprint)
    assert result.status == "completed"
    assert [nid for nid, _ in calls.log] == ["C", "D"]
    assert skipped(bus) == {"B": "dead_path"}


# --------------------------------------------------------------------------- if/else merges


async def test_condition_switch_into_join_completes_with_skipped_branch_reported() -> None:
    calls = Calls()
    runtime, bus = make_runtime({"t": tagged(calls), "src": emitter({"score": 0.9})})
    blueprint = bp(
        [
            node("A", "src"),
            node("yes", "t"),
            node("no", "t"),
            node("no2", "t"),
            node("merge", "t"),
        ],
        [
            edge("A", "yes", condition="result.output.score >= 0.5"),
            edge("A", "no", condition="result.output.score < 0.5"),
            edge("no", "no2"),
            edge("yes", "merge"),
            edge("no2", "merge"),
        ],
    )
    result = await runtime.run(blueprint)

    assert result.status == "completed"
    assert result.errors == []
    assert [nid for nid, _ in calls.log] == ["yes", "merge"]
    assert calls.log[-1] == ("merge", {"node": "yes", "input": {"score": 0.9}})
    skips = of_type(bus, "node:skipped")
    assert [(e.node_id, e.reason) for e in skips] == [("no", "dead_path"), ("no2", "dead_path")]
    assert all(e.iteration == () for e in skips)
    assert "_outputs.no" not in result.context
    assert "_outputs.no2" not in result.context


async def test_action_switch_into_join_completes() -> None:
    calls = Calls()
    runtime, bus = make_runtime({"t": tagged(calls), "src": emitter("x", action="right")})
    blueprint = bp(
        [node("A", "src"), node("L", "t"), node("R", "t"), node("merge", "t")],
        [
            edge("A", "L", action="left"),
            edge("A", "R", action="right"),
            edge("L", "merge"),
            edge("R", "merge"),
        ],
    )
    result = await runtime.run(blueprint)
    assert result.status == "completed"
    assert [nid for nid, _ in calls.log] == ["R", "merge"]
    assert calls.log[-1] == ("merge", {"node": "R", "input": "x"})
    assert skipped(bus) == {"L": "dead_path"}


# --------------------------------------------------------------------------- action routing


def routing_blueprint(action_edges: list[dict[str, Any]]) -> dict[str, Any]:
    targets = sorted({e["target"] for e in action_edges})
    return bp([node("S", "src"), *(node(t, "t") for t in targets)], action_edges)


async def test_matching_action_takes_only_its_edges_and_not_default_ones() -> None:
    calls = Calls()
    runtime, bus = make_runtime({"t": tagged(calls), "src": emitter(1, action="go")})
    blueprint = routing_blueprint(
        [edge("S", "a1", action="go"), edge("S", "a2", action="go"), edge("S", "d")]
    )
    result = await runtime.run(blueprint)
    assert result.status == "completed"
    assert sorted(nid for nid, _ in calls.log) == ["a1", "a2"]
    assert skipped(bus) == {"d": "dead_path"}


async def test_unmatched_action_takes_only_default_edges() -> None:
    calls = Calls()
    runtime, bus = make_runtime({"t": tagged(calls), "src": emitter(1, action="other")})
    blueprint = routing_blueprint(
        [edge("S", "go", action="go"), edge("S", "d1"), edge("S", "d2", condition="true")]
    )
    result = await runtime.run(blueprint)
    assert result.status == "completed"
    assert sorted(nid for nid, _ in calls.log) == ["d1", "d2"]
    assert skipped(bus) == {"go": "dead_path"}


async def test_unmatched_action_without_default_edges_ends_the_branch() -> None:
    calls = Calls()
    runtime, bus = make_runtime({"t": tagged(calls), "src": emitter(1, action="other")})
    blueprint = routing_blueprint([edge("S", "x", action="x"), edge("S", "y", action="y")])
    result = await runtime.run(blueprint)
    assert result.status == "completed"
    assert calls.log == []
    assert skipped(bus) == {"x": "dead_path", "y": "dead_path"}


async def test_action_edges_never_fire_for_a_result_without_action() -> None:
    calls = Calls()
    runtime, bus = make_runtime({"t": tagged(calls), "src": emitter(1)})
    blueprint = routing_blueprint(
        [edge("S", "a", action="a"), edge("S", "b", action="b"), edge("S", "d")]
    )
    result = await runtime.run(blueprint)
    assert result.status == "completed"
    assert [nid for nid, _ in calls.log] == ["d"]
    assert skipped(bus) == {"a": "dead_path", "b": "dead_path"}

    only_actions = routing_blueprint([edge("S", "a", action="a")])
    calls.log.clear()
    result = await runtime.run(only_actions)
    assert result.status == "completed"
    assert calls.log == []


async def test_action_edges_whose_conditions_are_false_fall_back_to_default_edges() -> None:
    calls = Calls()
    runtime, _ = make_runtime({"t": tagged(calls), "src": emitter(1, action="go")})
    blueprint = routing_blueprint(
        [edge("S", "a", action="go", condition="result.output > 10"), edge("S", "d")]
    )
    result = await runtime.run(blueprint)
    assert result.status == "completed"
    assert [nid for nid, _ in calls.log] == ["d"]


async def test_edge_evaluate_events_report_each_edge_in_declaration_order() -> None:
    runtime, bus = make_runtime({"t": tagged(Calls()), "src": emitter(4, action="go")})
    blueprint = routing_blueprint(
        [
            edge("S", "a", action="go", condition="result.output > 3"),
            edge("S", "b", action="go", condition="result.output > 5"),
            edge("S", "c"),
        ]
    )
    await runtime.run(blueprint)
    rows = [
        (e.source, e.target, e.edge_index, e.condition, e.result)
        for e in of_type(bus, "edge:evaluate")
    ]
    assert rows == [
        ("S", "a", 0, "result.output > 3", True),
        ("S", "b", 1, "result.output > 5", False),
        ("S", "c", 2, None, False),
    ]


# --------------------------------------------------------------------------- expression scopes


async def test_condition_sees_result_context_keys_bare_node_outputs_and_own_writes() -> None:
    async def first(ctx: Any) -> dict[str, Any]:
        return {"output": {"v": 10}}

    async def scorer(ctx: Any) -> dict[str, Any]:
        await ctx.context.set("flag", True)
        return {"output": {"score": 0.7}, "action": "scored"}

    calls = Calls()
    runtime, _ = make_runtime({"first": first, "scorer": scorer, "t": tagged(calls)})
    conditions = {
        "by_result": "result.output.score > 0.5 and result.action == 'scored'",
        "by_context_key": "result.output.score >= threshold",
        "by_bare_node": "first_node.v == 10 and S.score == 0.7",
        "by_context_fallback": "context['my-node'].v == 10 and context['S'].score == 0.7",
        "by_outputs_key": "context['_outputs.first_node'].v == 10",
        "by_own_write": "flag == true and context.flag",
        "by_missing": "missing == null",
        "never": "result.output.score > threshold * 2",
    }
    nodes = [node("first_node", "first"), node("my-node", "first"), node("S", "scorer")]
    edges = [edge("first_node", "my-node"), edge("my-node", "S")]
    for target, condition in conditions.items():
        nodes.append(node(target, "t"))
        edges.append(edge("S", target, action="scored", condition=condition))
    result = await runtime.run(bp(nodes, edges), {"threshold": 0.6})

    assert result.status == "completed", result.errors
    ran = sorted(nid for nid, _ in calls.log)
    assert ran == sorted(set(conditions) - {"never"})


async def test_context_keys_shadow_node_outputs_for_bare_names() -> None:
    calls = Calls()
    runtime, _ = make_runtime({"src": emitter(1), "t": tagged(calls)})
    blueprint = bp(
        [node("a", "src"), node("S", "src"), node("ctx_wins", "t"), node("output_wins", "t")],
        [
            edge("a", "S"),
            edge("S", "ctx_wins", condition="a == 'from-context'"),
            edge("S", "output_wins", condition="a == 1"),
        ],
    )
    result = await runtime.run(blueprint, {"a": "from-context"})
    assert result.status == "completed"
    assert [nid for nid, _ in calls.log] == ["ctx_wins"]


async def test_transform_sees_input_context_and_bare_names() -> None:
    calls = Calls()
    runtime, _ = make_runtime({"src": emitter({"v": 3}), "t": tagged(calls)})
    blueprint = bp(
        [node("S", "src"), node("T", "t")],
        [
            edge(
                "S",
                "T",
                transform="{'doubled': input.v * 2, 'k': context.k, 'bare': k, 'own': S.v}",
            )
        ],
    )
    result = await runtime.run(blueprint, {"k": "kv"})
    assert result.status == "completed"
    assert calls.log == [("T", {"doubled": 6, "k": "kv", "bare": "kv", "own": 3})]
    assert result.context["_inputs.T"] == {"doubled": 6, "k": "kv", "bare": "kv", "own": 3}


async def test_condition_runtime_error_fails_the_source_and_commits_nothing() -> None:
    calls = Calls()

    async def score(ctx: Any) -> dict[str, Any]:
        calls.add("score")
        await ctx.context.set("written_by_score", 1)
        return {"output": {"score": 0.9}}

    runtime, bus = make_runtime({"score": score, "t": tagged(calls)})
    blueprint = bp(
        [node("score", "score", config={"maxRetries": 3}), node("reject", "t"), node("ok", "t")],
        [
            edge("score", "reject", condition="result.output.score < 0.5"),
            edge("score", "ok", condition="result.output.score >= limit"),
        ],
    )
    result = await runtime.run(blueprint)

    assert result.status == "failed"
    assert calls.log == ["score"]  # ExpressionError is never retried
    (record,) = result.errors
    assert record.node_id == "score"
    assert record.type == "ExpressionError"
    assert record.message.startswith(
        "edges[1] (score -> ok) condition 'result.output.score >= limit': "
    )
    assert isinstance(record.exception, ExpressionError)
    assert record.exception.edge == (1, "score", "ok")
    assert record.exception.expression == "result.output.score >= limit"
    assert "_outputs.score" not in result.context
    assert "written_by_score" not in result.context
    assert skipped(bus) == {"reject": "upstream_failed", "ok": "upstream_failed"}
    assert [e.node_id for e in of_type(bus, "node:error")] == ["score"]
    assert of_type(bus, "node:finish") == []
    assert not any(e.source_node == "score" for e in of_type(bus, "context:change"))


async def test_transform_runtime_error_fails_the_source_naming_the_edge() -> None:
    runtime, bus = make_runtime({"src": emitter({"v": "text"}), "t": tagged(Calls())})
    blueprint = bp(
        [node("S", "src"), node("T", "t"), node("U", "t")],
        [edge("S", "U"), edge("S", "T", transform="input.v * 2")],
    )
    result = await runtime.run(blueprint)
    assert result.status == "failed"
    (record,) = result.errors
    assert (record.node_id, record.type) == ("S", "ExpressionError")
    assert record.message.startswith("edges[1] (S -> T) transform 'input.v * 2': ")
    assert "_outputs.S" not in result.context
    assert skipped(bus) == {"T": "upstream_failed", "U": "upstream_failed"}
