"""Blueprints shared by the analysis tests."""

from __future__ import annotations

from typing import Any

from flowcraft_core.blueprint.model import Blueprint

#: SPEC 1.2.
ORDER_REVIEW: dict[str, Any] = {
    "id": "order-review",
    "metadata": {"version": "2"},
    "nodes": [
        {
            "id": "fetch",
            "uses": "orders.fetch",
            "params": {"source": "api"},
            "config": {
                "maxRetries": 3,
                "retryDelay": 500,
                "timeout": 10000,
                "fallback": "fetch_cached",
            },
        },
        {"id": "fetch_cached", "uses": "orders.fetch_cached"},
        {
            "id": "score",
            "uses": "orders.score",
            "inputs": {"order": "fetch", "threshold": "_threshold"},
        },
        {"id": "manual", "uses": "wait"},
        {"id": "approve", "uses": "orders.approve"},
        {"id": "reject", "uses": "orders.reject", "inputs": "fetch.customer.email"},
        {"id": "notify", "uses": "orders.notify", "config": {"joinStrategy": "any"}},
    ],
    "edges": [
        {"source": "fetch", "target": "score"},
        {"source": "score", "target": "approve", "condition": "result.output.score >= 0.8"},
        {
            "source": "score",
            "target": "manual",
            "condition": "result.output.score >= 0.5 and result.output.score < 0.8",
        },
        {"source": "score", "target": "reject", "condition": "result.output.score < 0.5"},
        {"source": "manual", "target": "approve", "action": "approve"},
        {"source": "manual", "target": "reject", "action": "reject"},
        {
            "source": "approve",
            "target": "notify",
            "transform": "{'status': 'approved', 'order': input}",
        },
        {"source": "reject", "target": "notify", "transform": "{'status': 'rejected'}"},
    ],
}

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
