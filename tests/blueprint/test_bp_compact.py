"""What a loaded blueprint shares between its models (issue 6: a million-node chain in < 2 GB),
and that sharing changes nothing a caller can see: values, fields set, errors, dumps."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from flowcraft_core.blueprint import Blueprint, NodeConfig, load_blueprint
from flowcraft_core.blueprint.loader import _BATCH
from flowcraft_core.errors import BlueprintError
from flowcraft_core.versioning import blueprint_pin


def chain(n: int) -> dict[str, Any]:
    nodes = [{"id": f"n{i}", "uses": "task"} for i in range(n)]
    edges = [{"source": f"n{i}", "target": f"n{i + 1}"} for i in range(n - 1)]
    return {"id": "chain", "nodes": nodes, "edges": edges}


def test_nodes_without_config_share_one_frozen_default() -> None:
    doc = chain(3)
    doc["nodes"][2]["config"] = {}
    bp = load_blueprint(doc)
    first, second, explicit = bp.nodes
    assert first.config is second.config
    assert first.config == NodeConfig() == explicit.config
    assert first.config.model_fields_set == set()
    assert "config" not in first.model_fields_set
    assert "config" in explicit.model_fields_set  # written, if empty: explicitly set
    with pytest.raises(ValidationError):
        first.config.max_retries = 3  # type: ignore[misc]


def test_the_shared_default_is_not_in_the_json_schema() -> None:
    schema = Blueprint.model_json_schema(by_alias=True)
    assert "default" not in schema["$defs"]["NodeDefinition"]["properties"]["config"]


def test_shared_fields_sets_do_not_leak_between_models() -> None:
    bp = load_blueprint(chain(3))
    a, b, _ = bp.nodes
    assert a.model_fields_set == b.model_fields_set == {"id", "uses"}
    copied = a.model_copy(update={"params": {"k": 1}})
    assert copied.model_fields_set == {"id", "uses", "params"}
    assert a.model_fields_set == b.model_fields_set == {"id", "uses"}


def test_edge_ends_are_the_node_id_strings() -> None:
    doc = chain(2 * _BATCH + 5)
    bp = load_blueprint(doc)
    last = bp.edges[-1]
    assert last.source is bp.nodes[-2].id and last.target is bp.nodes[-1].id
    assert bp.nodes[0].uses is bp.nodes[-1].uses
    assert bp.to_dict() == doc  # nothing else changed


def test_dump_and_pin_match_plain_pydantic_validation() -> None:
    doc = chain(_BATCH + 3)
    doc["nodes"][7]["config"] = {"maxRetries": 2}
    doc["edges"][5]["action"] = "go"
    loaded = load_blueprint(doc)
    plain = Blueprint.model_validate(doc)
    assert loaded == plain
    assert loaded.model_dump() == plain.model_dump()
    assert blueprint_pin(loaded) == blueprint_pin(plain)
    for ours, theirs in zip(loaded.nodes + loaded.edges, plain.nodes + plain.edges, strict=True):
        assert ours.model_fields_set == theirs.model_fields_set


def test_an_error_in_a_later_batch_has_its_document_index() -> None:
    doc = chain(2 * _BATCH + 10)
    doc["nodes"][_BATCH + 7]["uses"] = 5
    doc["edges"][2 * _BATCH]["target"] = ""
    with pytest.raises(BlueprintError) as info:
        load_blueprint(doc)
    paths = [p.path for p in info.value.problems]
    assert f"nodes[{_BATCH + 7}].uses" in paths
    assert f"edges[{2 * _BATCH}].target" in paths
