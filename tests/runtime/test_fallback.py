"""SPEC 4.4: `config.fallback` stand-ins, by node id and by implementation key."""

from __future__ import annotations

import asyncio
from typing import Any

from .support import Calls, bp, echo, edge, index_of, make_runtime, node, of_type, skipped


def always_fails(calls: Calls, message: str = "primary down") -> Any:
    async def impl(ctx: Any) -> None:
        calls.add(("primary", ctx.node_id, ctx.attempt, ctx.input))
        raise ConnectionError(message)

    return impl


def stand_in(calls: Calls, action: str | None = None) -> Any:
    async def impl(ctx: Any) -> dict[str, Any]:
        calls.add(
            {
                "node_id": ctx.node_id,
                "input": ctx.input,
                "params": dict(ctx.params),
                "activation_id": ctx.activation_id,
                "catch": await ctx.context.get("_catch_error"),
            }
        )
        await ctx.context.set("fallback_wrote", True)
        return {"output": {"cached": ctx.input}, "action": action}

    return impl


def primary_activation(calls: Calls) -> Any:
    async def impl(ctx: Any) -> dict[str, Any]:
        calls.add(("source", ctx.activation_id))
        return {"output": {"order": 7}}

    return impl


async def test_node_id_fallback_stands_in_for_the_failed_node() -> None:
    calls = Calls()
    seen = Calls()
    runtime, bus = make_runtime(
        {
            "src": primary_activation(Calls()),
            "primary": always_fails(calls),
            "cached": stand_in(seen, action="go"),
            "t": echo,
        }
    )
    blueprint = bp(
        [
            node("A", "src"),
            node("N", "primary", params={"p": "N"}, config={"maxRetries": 2, "fallback": "F"}),
            node("F", "cached", params={"p": "F"}),
            node("X", "t"),
            node("Y", "t"),
        ],
        [edge("A", "N"), edge("N", "X", action="go"), edge("N", "Y")],
        id="fb",
    )
    result = await runtime.run(blueprint)

    assert result.status == "completed"
    assert result.errors == []
    assert [c[2] for c in calls.log] == [1, 2]
    (info,) = seen.log
    assert info["node_id"] == "F"
    assert info["input"] == {"order": 7}  # N's input
    assert info["params"] == {"p": "F"}  # F's params
    assert info["catch"] == {
        "message": "primary down",
        "type": "ConnectionError",
        "nodeId": "N",
        "blueprintId": "fb",
    }
    n_start = next(e for e in of_type(bus, "node:start") if e.node_id == "N")
    assert info["activation_id"].startswith(result.run_id)
    assert info["activation_id"] == f"{result.run_id}-N-0"
    assert n_start.input == {"order": 7}

    expected = {"cached": {"order": 7}}
    assert result.context["_outputs.F"] == expected
    assert result.context["_outputs.N"] == expected
    assert result.context["fallback_wrote"] is True
    assert result.context["_catch_error"]["nodeId"] == "N"
    assert result.context["_inputs.N"] == {"order": 7}
    assert "_inputs.F" not in result.context  # not set for fallback activations (SPEC 3.6)
    # N's edges are resolved with F's result and action.
    assert result.context["_outputs.X"] == expected
    assert skipped(bus) == {"Y": "dead_path"}

    (fallback,) = of_type(bus, "node:fallback")
    assert (fallback.node_id, fallback.fallback) == ("N", "F")
    assert isinstance(fallback.error, ConnectionError)
    i_fb = index_of(bus, "node:fallback", "N")
    assert index_of(bus, "node:start", "N") < i_fb
    assert i_fb < index_of(bus, "node:start", "F") < index_of(bus, "node:finish", "F")
    assert index_of(bus, "node:finish", "F") < index_of(bus, "node:finish", "N")
    assert of_type(bus, "node:error") == []


async def test_fallback_node_is_never_an_entry_node() -> None:
    seen = Calls()
    runtime, bus = make_runtime({"ok": echo, "cached": stand_in(seen)})
    blueprint = bp([node("N", "ok", config={"fallback": "F"}), node("F", "cached")])
    result = await runtime.run(blueprint)
    assert result.status == "completed"
    assert seen.log == []
    assert "_outputs.F" not in result.context
    assert [e.node_id for e in of_type(bus, "node:start")] == ["N"]
    assert skipped(bus) == {}


async def test_fallback_node_with_inputs_uses_them() -> None:
    seen = Calls()
    runtime, _ = make_runtime({"primary": always_fails(Calls()), "cached": stand_in(seen)})
    blueprint = bp(
        [node("N", "primary", config={"fallback": "F"}), node("F", "cached", inputs="backup")]
    )
    result = await runtime.run(blueprint, {"_inputs.N": "n-input", "backup": "b-input"})
    assert result.status == "completed"
    assert seen.log[0]["input"] == "b-input"


async def test_implementation_key_fallback_runs_with_the_nodes_params_and_input() -> None:
    calls = Calls()
    seen = Calls()
    runtime, bus = make_runtime(
        {"primary": always_fails(calls), "backup": stand_in(seen), "t": echo}
    )
    blueprint = bp(
        [
            node(
                "N",
                "primary",
                params={"p": "N"},
                config={"maxRetries": 3, "fallback": "backup", "timeout": 1000},
            ),
            node("after", "t"),
        ],
        [edge("N", "after")],
    )
    result = await runtime.run(blueprint, {"_inputs.N": "in"})
    assert result.status == "completed"
    assert len(calls.log) == 3
    (info,) = seen.log
    assert (info["input"], info["params"]) == ("in", {"p": "N"})
    assert info["catch"]["nodeId"] == "N"
    assert result.context["_outputs.N"] == {"cached": "in"}
    assert "_outputs.backup" not in result.context
    assert result.context["_outputs.after"] == {"cached": "in"}
    (fallback,) = of_type(bus, "node:fallback")
    assert (fallback.node_id, fallback.fallback) == ("N", "backup")


async def test_implementation_key_fallback_gets_one_attempt() -> None:
    calls = Calls()

    async def flaky_backup(ctx: Any) -> dict[str, Any]:
        calls.add(("backup", ctx.attempt))
        raise TimeoutError("backup flaky")

    runtime, _ = make_runtime({"primary": always_fails(Calls()), "backup": flaky_backup})
    blueprint = bp([node("N", "primary", config={"maxRetries": 3, "fallback": "backup"})])
    result = await runtime.run(blueprint)
    assert result.status == "failed"
    assert calls.log == [("backup", 1)]
    (record,) = result.errors
    assert record.fallback_error == {"type": "TimeoutError", "message": "backup flaky"}


async def test_failing_stand_in_fails_the_node_with_fallback_error() -> None:
    async def broken(ctx: Any) -> None:
        await ctx.context.set("fallback_wrote", True)
        raise RuntimeError("cache empty")

    runtime, bus = make_runtime({"primary": always_fails(Calls()), "broken": broken, "t": echo})
    blueprint = bp(
        [
            node("N", "primary", config={"maxRetries": 2, "fallback": "F"}),
            node("F", "broken"),
            node("after", "t"),
        ],
        [edge("N", "after")],
    )
    result = await runtime.run(blueprint)

    assert result.status == "failed"
    (record,) = result.errors
    assert (record.node_id, record.type, record.message) == (
        "N",
        "ConnectionError",
        "primary down",
    )
    assert record.attempts == 2
    assert record.fallback_error == {"type": "RuntimeError", "message": "cache empty"}
    assert record.to_json()["fallbackError"] == {"type": "RuntimeError", "message": "cache empty"}
    assert "_outputs.N" not in result.context
    assert "_outputs.F" not in result.context
    assert "fallback_wrote" not in result.context
    assert skipped(bus) == {"after": "upstream_failed"}
    assert [e.node_id for e in of_type(bus, "node:error")] == ["N"]


async def test_stand_in_retries_with_its_own_config() -> None:
    calls = Calls()

    async def flaky(ctx: Any) -> dict[str, Any]:
        calls.add(ctx.attempt)
        if ctx.attempt < 2:
            raise ValueError("once")
        return {"output": "second try"}

    runtime, _ = make_runtime({"primary": always_fails(Calls()), "flaky": flaky})
    blueprint = bp(
        [
            node("N", "primary", config={"fallback": "F"}),
            node("F", "flaky", config={"maxRetries": 2}),
        ]
    )
    result = await runtime.run(blueprint)
    assert result.status == "completed"
    assert calls.log == [1, 2]
    assert result.context["_outputs.N"] == "second try"


async def test_one_fallback_node_may_serve_several_nodes() -> None:
    seen = Calls()
    runtime, _ = make_runtime({"primary": always_fails(Calls()), "cached": stand_in(seen)})
    blueprint = bp(
        [
            node("N1", "primary", config={"fallback": "F"}),
            node("N2", "primary", config={"fallback": "F"}),
            node("F", "cached"),
        ]
    )
    result = await runtime.run(blueprint, {"_inputs.N1": 1, "_inputs.N2": 2})
    assert result.status == "completed"
    assert result.context["_outputs.N1"] == {"cached": 1}
    assert result.context["_outputs.N2"] == {"cached": 2}
    assert sorted(info["input"] for info in seen.log) == [1, 2]


async def test_implementation_key_fallback_runs_without_the_nodes_timeout() -> None:
    async def slow_primary(ctx: Any) -> None:
        await asyncio.sleep(5)

    async def slow_backup(ctx: Any) -> dict[str, Any]:
        await asyncio.sleep(0.15)
        return {"output": "backup finished"}

    runtime, _ = make_runtime({"primary": slow_primary, "backup": slow_backup})
    config = {"timeout": 50, "fallback": "backup"}
    result = await runtime.run(bp([node("N", "primary", config=config)]))
    assert result.status == "completed", result.errors
    assert result.context["_outputs.N"] == "backup finished"
