"""Helpers for the adapter tests: adapters that are always closed, blueprint builders."""

from __future__ import annotations

from typing import Any

from bullmq_processes import adapter as adapter  # re-exported for the tests here
from distributed.test_memory_parity import APPROVAL as APPROVAL  # re-exported too


def n(node_id: str, uses: str, **extra: Any) -> dict[str, Any]:
    return {"id": node_id, "uses": uses, **extra}


def e(source: str, target: str, **extra: Any) -> dict[str, Any]:
    return {"source": source, "target": target, **extra}


def chain(length: int, blueprint_id: str = "chain") -> dict[str, Any]:
    nodes = [n(f"n{i}", "inc") for i in range(length)]
    edges = [e(f"n{i}", f"n{i + 1}") for i in range(length - 1)]
    return {"id": blueprint_id, "nodes": nodes, "edges": edges}
