# ruff: noqa: E501  (the SPEC 1.2 example is kept verbatim)
"""Shared documents and helpers for the blueprint tests."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from flowcraft_core.blueprint import load_blueprint
from flowcraft_core.errors import BlueprintError

# SPEC 1.2, verbatim.
ORDER_REVIEW_JSON = """\
{
  "id": "order-review",
  "metadata": { "version": "2" },
  "nodes": [
    { "id": "fetch", "uses": "orders.fetch", "params": { "source": "api" },
      "config": { "maxRetries": 3, "retryDelay": 500, "timeout": 10000, "fallback": "fetch_cached" } },
    { "id": "fetch_cached", "uses": "orders.fetch_cached" },
    { "id": "score", "uses": "orders.score", "inputs": { "order": "fetch", "threshold": "_threshold" } },
    { "id": "manual", "uses": "wait" },
    { "id": "approve", "uses": "orders.approve" },
    { "id": "reject", "uses": "orders.reject", "inputs": "fetch.customer.email" },
    { "id": "notify", "uses": "orders.notify", "config": { "joinStrategy": "any" } }
  ],
  "edges": [
    { "source": "fetch", "target": "score" },
    { "source": "score", "target": "approve", "condition": "result.output.score >= 0.8" },
    { "source": "score", "target": "manual", "condition": "result.output.score >= 0.5 and result.output.score < 0.8" },
    { "source": "score", "target": "reject", "condition": "result.output.score < 0.5" },
    { "source": "manual", "target": "approve", "action": "approve" },
    { "source": "manual", "target": "reject", "action": "reject" },
    { "source": "approve", "target": "notify", "transform": "{'status': 'approved', 'order': input}" },
    { "source": "reject", "target": "notify", "transform": "{'status': 'rejected'}" }
  ]
}
"""

ORDER_REVIEW_YAML = """\
id: order-review
metadata:
  version: "2"
nodes:
  - id: fetch
    uses: orders.fetch
    params: { source: api }
    config: { maxRetries: 3, retryDelay: 500, timeout: 10000, fallback: fetch_cached }
  - { id: fetch_cached, uses: orders.fetch_cached }
  - id: score
    uses: orders.score
    inputs: { order: fetch, threshold: _threshold }
  - { id: manual, uses: wait }
  - { id: approve, uses: orders.approve }
  - { id: reject, uses: orders.reject, inputs: fetch.customer.email }
  - { id: notify, uses: orders.notify, config: { joinStrategy: any } }
edges:
  - { source: fetch, target: score }
  - { source: score, target: approve, condition: "result.output.score >= 0.8" }
  - { source: score, target: manual, condition: "result.output.score >= 0.5 and result.output.score < 0.8" }
  - { source: score, target: reject, condition: "result.output.score < 0.5" }
  - { source: manual, target: approve, action: approve }
  - { source: manual, target: reject, action: reject }
  - { source: approve, target: notify, transform: "{'status': 'approved', 'order': input}" }
  - { source: reject, target: notify, transform: "{'status': 'rejected'}" }
"""


def doc(
    *nodes: dict[str, Any], edges: list[dict[str, Any]] | None = None, **extra: Any
) -> dict[str, Any]:
    """A blueprint document with these nodes and edges."""
    out: dict[str, Any] = {"id": "bp", "nodes": list(nodes)}
    if edges is not None:
        out["edges"] = edges
    out.update(extra)
    return copy.deepcopy(out)


def node(node_id: str, uses: str = "work", **fields: Any) -> dict[str, Any]:
    return {"id": node_id, "uses": uses, **fields}


def edge(source: str, target: str, **fields: Any) -> dict[str, Any]:
    return {"source": source, "target": target, **fields}


def problems(source: Any, **kwargs: Any) -> list[tuple[str, str]]:
    """(path, code) of every problem `load_blueprint(source)` reports; fails if it loads."""
    with pytest.raises(BlueprintError) as info:
        load_blueprint(source, **kwargs)
    return [(p.path, p.code) for p in info.value.problems]


def error(source: Any, **kwargs: Any) -> BlueprintError:
    with pytest.raises(BlueprintError) as info:
        load_blueprint(source, **kwargs)
    return info.value


def messages(source: Any, **kwargs: Any) -> dict[str, str]:
    """path -> message of the problems (one per path expected)."""
    return {p.path: p.message for p in error(source, **kwargs).problems}
