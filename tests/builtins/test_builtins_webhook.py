"""SPEC 5.5 `webhook`: registrar details (none, sync, async) and the body as resume output."""

from __future__ import annotations

from typing import Any

import flow_maps
from builtins_support import assert_not_awaiting, echo, make_runtime, of_type

HOOK = flow_maps.flow("hook-flow", "start:echo hook:webhook after:echo", "start>hook hook>after")


async def test_webhook_without_registrar() -> None:
    runtime, bus = make_runtime({"echo": echo})
    paused = await runtime.run(HOOK, run_id="wh1")
    expected = {"reason": "webhook", "url": None, "event": "webhook:wh1:hook", "iteration": []}
    assert paused.status == "awaiting"
    assert paused.context["_awaitingNodeIds"] == ["hook"]
    assert paused.context["_awaitingDetails"] == {"hook": expected}
    awaiting = of_type(bus, "node:awaiting")
    assert [(e.node_id, e.details) for e in awaiting] == [("hook", expected)]
    assert "_outputs.hook" not in paused.context


async def test_webhook_with_sync_registrar() -> None:
    calls: list[tuple[str, str]] = []

    def registrar(run_id: str, node_id: str) -> dict[str, Any]:
        calls.append((run_id, node_id))
        return {"url": f"https://hooks.example/{run_id}/{node_id}", "event": f"evt-{node_id}"}

    runtime, bus = make_runtime({"echo": echo}, webhook_registrar=registrar)
    paused = await runtime.run(HOOK, run_id="wh2")
    assert calls == [("wh2", "hook")]
    expected = {
        "reason": "webhook",
        "url": "https://hooks.example/wh2/hook",
        "event": "evt-hook",
        "iteration": [],
    }
    assert paused.status == "awaiting"
    assert paused.context["_awaitingDetails"] == {"hook": expected}
    assert [e.details for e in of_type(bus, "node:awaiting")] == [expected]


async def test_webhook_with_async_registrar_and_body_as_output() -> None:
    calls: list[tuple[str, str]] = []

    async def registrar(run_id: str, node_id: str) -> dict[str, Any]:
        calls.append((run_id, node_id))
        return {"url": "https://async.example/cb", "event": "payment:received"}

    runtime, _bus = make_runtime({"echo": echo}, webhook_registrar=registrar)
    paused = await runtime.run(HOOK, run_id="wh3")
    assert calls == [("wh3", "hook")]
    assert paused.context["_awaitingDetails"] == {
        "hook": {
            "reason": "webhook",
            "url": "https://async.example/cb",
            "event": "payment:received",
            "iteration": [],
        }
    }

    body = {"paid": True, "amount": 12.5, "items": ["a", None]}
    result = await runtime.resume(HOOK, paused.serialized_context, node_id="hook", output=body)
    assert result.status == "completed"
    assert result.run_id == "wh3"
    assert result.context["_outputs.hook"] == body
    assert result.context["_outputs.after"] == body
    assert result.context["_inputs.after"] == body
    assert_not_awaiting(result)
    # The registrar is not asked again on resume.
    assert calls == [("wh3", "hook")]
