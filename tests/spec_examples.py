# ruff: noqa: E501  (the SPEC 1.2 example is kept verbatim)
"""SPEC 1.2's order-review example, written once for the blueprint, built-in and analysis tests."""

from __future__ import annotations

import json
from typing import Any

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

#: The JSON form as the loader's input mapping.
ORDER_REVIEW: dict[str, Any] = json.loads(ORDER_REVIEW_JSON)
