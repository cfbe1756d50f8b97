"""Shared documents and helpers for the blueprint tests."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from spec_examples import ORDER_REVIEW_JSON as ORDER_REVIEW_JSON  # re-exported
from spec_examples import ORDER_REVIEW_YAML as ORDER_REVIEW_YAML

from flowcraft_core.blueprint import load_blueprint
from flowcraft_core.errors import BlueprintError


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
