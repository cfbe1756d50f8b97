"""`_runState`: the engine snapshot an awaiting in-process run carries in its context.

JSON data only (node ids, iteration lists), so a serialized context can be stored anywhere
and resumed by another process that has the same blueprint version.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import RunNotAwaitingError
from ..versioning import blueprint_pin
from .compensation import Completed

if TYPE_CHECKING:
    from .engine import Engine

FORMAT = 1


def dump(engine: Engine) -> dict[str, Any]:
    nodes = engine.nodes

    def ref(key: tuple[int, tuple[int, ...]]) -> list[Any]:
        return [nodes[key[0]].id, list(key[1])]

    snapshot: dict[str, Any] = {
        "format": FORMAT,
        "blueprintId": engine.blueprint_id,
        "pin": blueprint_pin(engine.plan.blueprint),
        "waiting": [
            {"at": ref(key), "details": details, "state": engine.waiting_state.get(key)}
            for key, details in engine.waiting.items()
        ],
        "joins": [
            {
                "at": ref(key),
                "res": {nodes[p].id: s for p, s in js.res.items()},
                "values": {nodes[p].id: v for p, v in js.values.items()},
            }
            for key, js in engine.state.joins.items()
        ],
        "ended": [ref(key) for key in engine.state.ended],
        "live": [ref(key) + [count] for key, count in engine.state.live.items()],
        "backTaken": [ref(key) for key in engine.state.back_taken],
        "exits": [
            ref(key) + [sorted(edges)] for key, edges in engine.state.exits_delivered.items()
        ],
    }
    if engine.completed:  # compensations owed if the resumed run fails
        snapshot["completed"] = [item.to_json() for item in engine.completed]
    if not engine.compensate:
        snapshot["compensate"] = False
    return snapshot


def restore(engine: Engine, state: Any) -> None:
    """Load a snapshot into a fresh engine for the same blueprint."""
    from .state import JoinState

    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise RunNotAwaitingError("the context's _runState is missing or not readable")
    by_id = engine.plan.by_id

    def key(raw: list[Any]) -> tuple[int, tuple[int, ...]]:
        return by_id[raw[0]], tuple(int(i) for i in raw[1])

    for item in state.get("waiting", []):
        k = key(item["at"])
        engine.waiting[k] = dict(item["details"])
        if item.get("state") is not None:
            engine.waiting_state[k] = item["state"]
    for item in state.get("joins", []):
        js = JoinState()
        js.res = {by_id[p]: int(s) for p, s in item["res"].items()}
        js.values = {by_id[p]: v for p, v in item["values"].items()}
        engine.state.joins[key(item["at"])] = js
    engine.state.ended.update(key(raw) for raw in state.get("ended", []))
    for raw in state.get("live", []):
        engine.state.live[key(raw[:2])] = int(raw[2])
    engine.state.back_taken.update(key(raw) for raw in state.get("backTaken", []))
    for raw in state.get("exits", []):
        engine.state.exits_delivered[key(raw[:2])] = {int(i) for i in raw[2]}
    engine.completed.extend(Completed.from_json(raw) for raw in state.get("completed", []))
    engine.compensate = bool(state.get("compensate", True))


__all__ = ["dump", "restore"]
