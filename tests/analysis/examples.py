"""Blueprints shared by the analysis tests."""

from __future__ import annotations

from typing import Any

from spec_examples import ORDER_REVIEW

from flowcraft_core.blueprint.model import Blueprint

#: The builder's loop (SPEC 3.7) with a real loop-controller header.
BUILDER_LOOP: dict[str, Any] = {
    "id": "loop",
    "nodes": [
        {"id": "a", "uses": "task"},
        {"id": "L", "uses": "loop-controller", "params": {"condition": "iteration < 3"}},
        {"id": "b", "uses": "task"},
        {"id": "done", "uses": "task"},
    ],
    "edges": [
        {"source": "a", "target": "L"},
        {"source": "L", "target": "b", "action": "continue"},
        {"source": "b", "target": "L"},
        {"source": "L", "target": "done", "action": "break"},
    ],
}


def order_review() -> Blueprint:
    return Blueprint.model_validate(ORDER_REVIEW)


def builder_loop() -> Blueprint:
    return Blueprint.model_validate(BUILDER_LOOP)
