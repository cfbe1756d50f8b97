"""Builders of the protocol's records for the store tests (tests/bullmq, tests/bullmq_reconcile):
activations are written as akeys (`"b@1.0"`), the rest keyword by keyword."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from flowcraft_core.distributed.protocol import (
    SUCCEEDED,
    Close,
    Followup,
    NextIteration,
    Resolution,
    Transition,
    split_akey,
)
from flowcraft_core.runtime.state import TAKEN


def split_key(key: str) -> tuple[str, tuple[int, ...]]:
    """An activation's (node id, iteration); a key that is not an activation's (a loop end,
    `~end:L#`) stands for itself, with no iteration."""
    return split_akey(key) if "@" in key else (key, ())


def fu(akey: str, status: int = TAKEN) -> Followup:
    node_id, iteration = split_key(akey)
    return Followup(akey, node_id, iteration, status)


def ready(*akeys: str) -> list[Followup]:
    return [fu(a) for a in akeys]


def res(
    target: str,
    pred: str,
    status: int = TAKEN,
    value: Any = None,
    *,
    expected: int = 0,
    any_: bool = False,
    dead: Sequence[str] = (),
    opens: Sequence[str] = (),
) -> Resolution:
    node_id, iteration = split_key(target)
    return Resolution(
        target, node_id, iteration, pred, status, value, expected, any_, tuple(dead), tuple(opens)
    )


def step(
    akey: str,
    *resolutions: Resolution,
    outcome: str = SUCCEEDED,
    output: Any = None,
    output_keys: Sequence[str] = (),
    ops: Sequence[tuple[str, Any, bool]] = (),
    error: dict[str, Any] | None = None,
    waiting: dict[str, Any] | None = None,
    nxt: Sequence[NextIteration] = (),
    exits: Sequence[tuple[str, int]] = (),
    close: Sequence[Close] = (),
) -> Transition:
    node_id, iteration = split_key(akey.removesuffix("~wait"))
    return Transition(
        akey=akey,
        node_id=node_id,
        iteration=iteration,
        outcome=outcome,
        output=output,
        output_keys=tuple(output_keys),
        ops=list(ops),
        error=error,
        waiting=waiting,
        resolutions=list(resolutions),
        next=list(nxt),
        exits=list(exits),
        close=list(close),
    )


__all__ = ["fu", "ready", "res", "split_key", "step"]
