"""load_blueprint sources, formats and parser safety (SPEC 1.3, 1.5)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import MappingProxyType

import pytest
from bp_support import ORDER_REVIEW_JSON, ORDER_REVIEW_YAML, doc, edge, error, node, problems

from flowcraft_core.blueprint import Blueprint, load_blueprint
from flowcraft_core.errors import BlueprintError


def test_spec_example_json_and_yaml_load_to_equal_blueprints() -> None:
    from_json = load_blueprint(ORDER_REVIEW_JSON)
    from_yaml = load_blueprint(ORDER_REVIEW_YAML)
    assert from_json == from_yaml
    assert from_json.id == "order-review"
    assert from_json.version == "2"
    fetch = from_json.node("fetch")
    assert fetch.config.max_retries == 3
    assert fetch.config.retry_delay == 500
    assert fetch.config.fallback == "fetch_cached"
    assert from_json.node("notify").config.join_strategy == "any"
    assert from_json.node("reject").inputs == "fetch.customer.email"


def test_dump_round_trips_to_the_source_json() -> None:
    source = json.loads(ORDER_REVIEW_JSON)
    bp = load_blueprint(source)
    dumped = bp.model_dump(by_alias=True, exclude_unset=True, mode="json")
    assert dumped == source
    assert load_blueprint(dumped) == bp
    # Blueprint equality also compares the private `_cache`, so compare data here.
    assert Blueprint.model_validate(dumped).model_dump() == bp.model_dump()


def test_every_source_kind_gives_the_same_blueprint(tmp_path: Path) -> None:
    expected = load_blueprint(json.loads(ORDER_REVIEW_JSON))
    (tmp_path / "flow.json").write_text(ORDER_REVIEW_JSON)
    (tmp_path / "flow.yaml").write_text(ORDER_REVIEW_YAML)
    (tmp_path / "flow.yml").write_text(ORDER_REVIEW_YAML)
    (tmp_path / "flow.txt").write_text(ORDER_REVIEW_YAML)
    sources: list[object] = [
        MappingProxyType(json.loads(ORDER_REVIEW_JSON)),
        ORDER_REVIEW_JSON,
        ORDER_REVIEW_YAML,
        ORDER_REVIEW_JSON.encode(),
        b"\xef\xbb\xbf" + ORDER_REVIEW_YAML.encode(),  # a BOM is fine
        tmp_path / "flow.json",
        tmp_path / "flow.yaml",
        str(tmp_path / "flow.yml"),
        tmp_path / "flow.txt",  # unknown suffix: JSON, else YAML
    ]
    for source in sources:
        assert load_blueprint(source) == expected, source  # type: ignore[arg-type]


def test_json_file_is_parsed_as_json_only(tmp_path: Path) -> None:
    path = tmp_path / "flow.json"
    path.write_text("id: x\nnodes: []\n")  # valid YAML, not JSON
    assert problems(path) == [("$", "INVALID_SYNTAX")]


def test_missing_file() -> None:
    err = error("/no/such/dir/flow.yaml")
    assert err.blueprint_id is None
    [problem] = err.problems
    assert (problem.path, problem.code) == ("$", "FILE_NOT_FOUND")
    assert "/no/such/dir/flow.yaml" in problem.message
    assert str(err).startswith("blueprint <unnamed> is invalid (1 problem):\n  $: file not found")


def test_directory_is_unreadable(tmp_path: Path) -> None:
    folder = tmp_path / "dir.json"
    folder.mkdir()
    assert problems(folder) == [("$", "FILE_UNREADABLE")]


def test_malformed_json_reports_line_and_column() -> None:
    text = '{\n  "id": "x",\n  "nodes": [\n    {"id": "a" "uses": "b"}\n  ]\n}'
    [problem] = error(text).problems
    assert (problem.path, problem.code) == ("$", "INVALID_SYNTAX")
    assert problem.message == "invalid JSON at line 4, column 16: Expecting ',' delimiter"


def test_malformed_yaml_reports_line_and_column() -> None:
    [problem] = error("id: x\nnodes:\n  - id: a\n   uses: b\n").problems
    assert (problem.path, problem.code) == ("$", "INVALID_SYNTAX")
    assert re.match(r"invalid YAML at line 4, column \d+: ", problem.message), problem.message


def test_malformed_json_text_reports_the_json_error_not_yaml() -> None:
    [problem] = error('{"id": "x", "nodes": [}').problems
    assert problem.message.startswith("invalid JSON at line 1, column 23")


def test_yaml_python_tags_are_refused() -> None:
    for text in (
        "id: !!python/object/apply:os.system [echo hacked]\nnodes: []",
        "id: x\nnodes: !!python/object:collections.OrderedDict {}",
        "id: !!python/name:os.system x\nnodes: []",
    ):
        [problem] = error(text).problems
        assert (problem.path, problem.code) == ("$", "INVALID_SYNTAX")
        assert "python/" in problem.message
        assert "line 1" in problem.message or "line 2" in problem.message


def test_yaml_timestamps_stay_strings() -> None:
    bp = load_blueprint(
        "id: 2024-01-01\nnodes:\n  - id: s\n    uses: sleep\n"
        "    params: {until: 2030-01-01T00:00:00Z}\n"
        "metadata: {released: 2024-05-01, explicit: !!timestamp 2020-01-01}\n"
    )
    assert bp.id == "2024-01-01"
    assert bp.node("s").params == {"until": "2030-01-01T00:00:00Z"}
    assert bp.metadata.model_extra == {"released": "2024-05-01", "explicit": "2020-01-01"}


def test_yaml_values_json_cannot_hold_are_problems() -> None:
    text = (
        "id: x\nnodes:\n  - id: a\n    uses: w\n"
        "    params: {blob: !!binary aGk=, tags: !!set {a}}\n"
        "metadata: {2: two, on: yes, ratio: .nan}\n"
    )
    err = error(text)
    assert err.blueprint_id == "x"
    assert [(p.path, p.code, p.message) for p in err.problems] == [
        ("nodes[0].params.blob", "INVALID_TYPE", "must be JSON data, not bytes"),
        ("nodes[0].params.tags", "INVALID_TYPE", "must be JSON data, not set"),
        ("metadata", "INVALID_TYPE", "object keys must be strings, not a number (2); quote it"),
        ("metadata", "INVALID_TYPE", "object keys must be strings, not a boolean (True); quote it"),
        ("metadata.ratio", "INVALID_VALUE", "must be a finite number, not nan"),
    ]


def test_nan_in_json_text_or_mapping_is_a_problem() -> None:
    text = '{"id": "x", "nodes": [{"id": "a", "uses": "w", "params": {"limit": Infinity}}]}'
    assert problems(text) == [("nodes[0].params.limit", "INVALID_VALUE")]
    mapping = doc(node("a", params={"limit": float("nan")}))
    assert problems(mapping) == [("nodes[0].params.limit", "INVALID_VALUE")]


def test_python_objects_in_a_mapping_are_problems() -> None:
    mapping = doc(node("a", params={"when": object(), "ok": (1, "two")}))
    [problem] = error(mapping).problems
    assert (problem.path, problem.code) == ("nodes[0].params.when", "INVALID_TYPE")


def test_recursive_yaml_alias_is_a_problem() -> None:
    text = "id: x\nnodes:\n  - id: a\n    uses: w\n    params: &p {self: *p}\n"
    assert problems(text) == [("nodes[0].params.self", "INVALID_VALUE")]


def test_yaml_alias_bomb_is_refused_quickly() -> None:
    lines = ["id: x", "nodes: []", "metadata:", "  l0: &l0 [a, a, a, a, a, a, a, a, a, a]"]
    for level in range(1, 10):
        refs = ", ".join([f"*l{level - 1}"] * 10)
        lines.append(f"  l{level}: &l{level} [{refs}]")
    [problem] = error("\n".join(lines)).problems
    assert (problem.path, problem.code) == ("$", "INVALID_VALUE")
    assert "aliases expand" in problem.message


def test_shared_yaml_anchors_are_fine() -> None:
    text = (
        "id: x\nnodes:\n  - {id: a, uses: w, config: &cfg {maxRetries: 2}}\n"
        "  - {id: b, uses: w, config: *cfg}\n"
    )
    bp = load_blueprint(text)
    assert bp.node("b").config.max_retries == 2


@pytest.mark.parametrize(
    "text",
    [
        "id: x\nnodes: []\nmetadata: {deep: " + "[" * 100_000 + "]" * 100_000 + "}",
        '{"id": "x", "nodes": [], "metadata": {"deep": ' + "[" * 100_000 + "]" * 100_000 + "}}",
        "- " * 100_000 + "x",
    ],
    ids=["yaml-flow", "json", "yaml-block"],
)
def test_deep_nesting_is_a_problem_not_a_crash(text: str) -> None:
    [problem] = error(text).problems
    assert (problem.path, problem.code) == ("$", "INVALID_SYNTAX")
    assert "nested too deeply" in problem.message


def test_top_level_must_be_an_object() -> None:
    assert problems("[1, 2]") == [("$", "INVALID_TYPE")]
    assert problems("") == [("$", "INVALID_TYPE")]
    assert problems("just words") == [("$", "INVALID_TYPE")]


def test_non_utf8_bytes() -> None:
    [problem] = error(b'{"id": "x",\n "nodes": [\xff]}').problems
    assert problem.message == "not UTF-8 text: invalid byte at line 2, column 12"


def test_unsupported_source_type_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        load_blueprint(object())  # type: ignore[arg-type]


def test_parsed_json_that_is_not_an_object_is_a_problem() -> None:
    for value in (None, [1], 42, 1.5, True):
        assert problems(value) == [("$", "INVALID_TYPE")]


def test_blueprint_id_of_the_error() -> None:
    assert error({"id": "x", "nodes": 3}).blueprint_id == "x"
    assert error({"id": 7, "nodes": []}).blueprint_id is None
    assert error({"nodes": []}).blueprint_id is None


def test_empty_nodes_is_valid() -> None:
    bp = load_blueprint({"id": "empty", "nodes": []})
    assert bp.nodes == () and bp.edges == ()


def test_unknown_fields_are_errors_unless_allowed() -> None:
    source = doc(
        node("a", color="red", config={"maxRetries": 2, "glow": True}),
        node("b"),
        edges=[edge("a", "b", weight=3)],
        owner="me",
    )
    assert problems(source) == [
        ("nodes[0].color", "UNKNOWN_FIELD"),
        ("nodes[0].config.glow", "UNKNOWN_FIELD"),
        ("edges[0].weight", "UNKNOWN_FIELD"),
        ("owner", "UNKNOWN_FIELD"),
    ]
    assert error(source).problems[0].message == "unknown field 'color'"
    bp = load_blueprint(source, allow_unknown=True)
    dumped = bp.model_dump(by_alias=True, exclude_unset=True, mode="json")
    assert dumped == {
        "id": "bp",
        "nodes": [
            {"id": "a", "uses": "work", "config": {"maxRetries": 2}},
            {"id": "b", "uses": "work"},
        ],
        "edges": [{"source": "a", "target": "b"}],
    }


def test_underscore_fields_are_ignored_everywhere() -> None:
    location = {"line": 3, "column": 5}
    source = doc(
        node("a", _sourceLocation=location, config={"_note": "x"}),
        node("b"),
        edges=[edge("a", "b", _sourceLocation=location)],
        _sourceLocation=location,
        _comment="anything",
    )
    bp = load_blueprint(source)
    assert bp == load_blueprint(doc(node("a"), node("b"), edges=[edge("a", "b")]))


def test_metadata_accepts_any_key() -> None:
    bp = load_blueprint(doc(metadata={"version": "3", "owner": "ops", "tags": ["a"]}))
    assert bp.version == "3"
    assert bp.metadata.model_extra == {"owner": "ops", "tags": ["a"]}


def test_python_field_names_are_accepted_and_reported_by_json_name() -> None:
    bp = load_blueprint(doc(node("a", config={"max_retries": 2})))
    assert bp.node("a").config.max_retries == 2
    assert problems(doc(node("a", config={"max_retries": 0}))) == [
        ("nodes[0].config.maxRetries", "INVALID_VALUE")
    ]


def test_loaded_blueprint_is_frozen() -> None:
    bp = load_blueprint(ORDER_REVIEW_JSON)
    with pytest.raises(Exception, match="frozen"):
        bp.id = "other"  # type: ignore[misc]


def test_error_is_a_blueprint_error_with_problems() -> None:
    err = error({"id": "x"})
    assert isinstance(err, BlueprintError)
    assert [(p.path, p.code, p.message) for p in err.problems] == [
        ("nodes", "MISSING_FIELD", "required field missing")
    ]
