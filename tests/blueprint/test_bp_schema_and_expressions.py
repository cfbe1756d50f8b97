"""JSON Schema export, compiled-expression caching, custom evaluators, and the public names."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pytest
from bp_support import ORDER_REVIEW_JSON, doc, edge, error, node

import flowcraft_core.blueprint as blueprint_pkg
from flowcraft_core.blueprint import (
    Blueprint,
    blueprint_json_schema,
    compile_blueprint_expressions,
    load_blueprint,
)
from flowcraft_core.errors import BlueprintError, ExpressionSyntaxError
from flowcraft_core.expressions import SafeEvaluator

#: Written out (not derived from `__all__`) so that a name added or dropped fails.
PUBLIC_NAMES = (
    "Blueprint BlueprintMetadata EdgeDefinition Flow NodeConfig NodeDefinition"
    " blueprint_json_schema compile_blueprint_expressions load_blueprint"
    " parse_duration_ms parse_until"
)


def test_public_names() -> None:
    assert sorted(blueprint_pkg.__all__) == PUBLIC_NAMES.split()
    for name in blueprint_pkg.__all__:
        assert getattr(blueprint_pkg, name) is not None


# --- JSON Schema --------------------------------------------------------------------------------


def _refs(value: Any) -> list[str]:
    if isinstance(value, dict):
        found = [value["$ref"]] if "$ref" in value else []
        return found + [r for v in value.values() for r in _refs(v)]
    if isinstance(value, list):
        return [r for v in value for r in _refs(v)]
    return []


def test_schema_header_and_refs() -> None:
    schema = blueprint_json_schema()
    json.dumps(schema)  # plain JSON
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["title"] == "Flowcraft blueprint"
    assert schema["required"] == ["id", "nodes"]
    for ref in _refs(schema):
        assert ref.startswith("#/$defs/") and ref.removeprefix("#/$defs/") in schema["$defs"]


def test_schema_allows_underscore_fields_but_not_unknown_ones() -> None:
    schema = blueprint_json_schema()
    defs = schema["$defs"]
    for part in (schema, defs["NodeDefinition"], defs["EdgeDefinition"], defs["NodeConfig"]):
        assert part["additionalProperties"] is False
        assert list(part["patternProperties"]) == ["^_"]
    assert defs["BlueprintMetadata"]["additionalProperties"] is True


def test_schema_uses_json_names_and_describes_every_field() -> None:
    schema = blueprint_json_schema()
    defs = schema["$defs"]
    assert set(defs["NodeConfig"]["properties"]) == {
        "maxRetries",
        "retryDelay",
        "backoff",
        "timeout",
        "fallback",
        "joinStrategy",
        "compensate",
        "event",
        "queue",
    }
    assert "cycleEntryPoints" in defs["BlueprintMetadata"]["properties"]
    for part in (schema, *defs.values()):
        for name, prop in part["properties"].items():
            assert prop.get("description") or "$ref" in prop, name
            assert "title" not in prop


def test_schema_describes_builtin_params() -> None:
    rules = blueprint_json_schema()["$defs"]["NodeDefinition"]["allOf"]
    by_uses = {rule["if"]["properties"]["uses"]["const"]: rule["then"] for rule in rules}
    sleep = by_uses["sleep"]["properties"]["params"]
    assert set(sleep["properties"]) == {"duration", "until"}
    assert sleep["additionalProperties"] is False
    assert by_uses["batch-scatter"]["properties"]["params"]["required"] == [
        "workerUsesKey",
        "gatherNodeId",
    ]
    assert set(by_uses["wait"]["properties"]["params"]["properties"]) == {"event"}
    assert by_uses["webhook"]["properties"]["params"]["properties"] == {}


def test_schema_is_a_fresh_copy() -> None:
    blueprint_json_schema()["title"] = "changed"
    assert blueprint_json_schema()["title"] == "Flowcraft blueprint"


# --- expressions ------------------------------------------------------------------------------


def test_load_caches_compiled_expressions() -> None:
    bp = load_blueprint(ORDER_REVIEW_JSON)
    compiled = bp._cache["expressions"]
    assert set(compiled) == {
        ("edge", 1, "condition"),
        ("edge", 2, "condition"),
        ("edge", 3, "condition"),
        ("edge", 6, "transform"),
        ("edge", 7, "transform"),
    }
    scope = {"result": {"output": {"score": 0.9}, "action": None}}
    assert compiled[("edge", 1, "condition")].evaluate(scope) is True
    assert compile_blueprint_expressions(bp) is compiled  # same evaluator: cache hit


def test_loop_condition_is_compiled_under_the_node_id() -> None:
    bp = load_blueprint(
        doc(
            node("a"),
            node("L", "loop-controller", params={"condition": "iteration < 3"}),
            edges=[edge("a", "L"), edge("L", "a", action="continue")],
        )
    )
    compiled = compile_blueprint_expressions(bp)
    assert compiled[("node", "L", "condition")].evaluate({"iteration": 1}) is True


def test_compile_for_a_model_validated_blueprint() -> None:
    bp = Blueprint.model_validate(json.loads(ORDER_REVIEW_JSON))
    assert "expressions" not in bp._cache
    compiled = compile_blueprint_expressions(bp)
    assert len(compiled) == 5
    assert compile_blueprint_expressions(bp) is compiled


def test_compile_raises_for_a_bad_expression() -> None:
    bp = Blueprint.model_validate(
        doc(node("a"), node("b"), edges=[edge("a", "b", condition="a <")])
    )
    with pytest.raises(BlueprintError) as info:
        compile_blueprint_expressions(bp)
    [problem] = info.value.problems
    assert (problem.path, problem.code) == ("edges[0].condition", "INVALID_EXPRESSION")
    assert "column" in problem.message


class _Upper:
    """A custom evaluator: compiles to a constant, rejects texts containing '!'."""

    def __init__(self) -> None:
        self.compiled: list[str] = []

    def compile(self, text: str) -> _Const:
        if "!" in text:
            raise ExpressionSyntaxError("no bangs", expression=text, column=text.index("!") + 1)
        self.compiled.append(text)
        return _Const(text.upper())


class _Const:
    def __init__(self, value: str) -> None:
        self.value = value

    def evaluate(self, scope: Mapping[str, Any]) -> Any:
        return self.value


def test_custom_evaluator_is_used_and_cached_per_evaluator() -> None:
    custom = _Upper()
    source = doc(node("a"), node("b"), edges=[edge("a", "b", condition="x == y")])
    bp = load_blueprint(source, evaluator=custom)
    assert custom.compiled == ["x == y"]
    assert bp._cache["expressions"][("edge", 0, "condition")].evaluate({}) == "X == Y"
    assert compile_blueprint_expressions(bp, custom) is bp._cache["expressions"]
    assert custom.compiled == ["x == y"]  # not compiled again
    other = _Upper()
    again = compile_blueprint_expressions(bp, other)
    assert again is not bp._cache["expressions"] and other.compiled == ["x == y"]
    safe = compile_blueprint_expressions(bp, SafeEvaluator())
    assert safe[("edge", 0, "condition")].evaluate({"x": 1, "y": 1}) is True


def test_custom_evaluator_syntax_errors_become_problems() -> None:
    source = doc(node("a"), node("b"), edges=[edge("a", "b", transform="fine!")])
    [problem] = error(source, evaluator=_Upper()).problems
    assert (problem.path, problem.code) == ("edges[0].transform", "INVALID_EXPRESSION")
    assert "column 5" in problem.message
    # the default evaluator knows '!' as "not"
    assert load_blueprint(doc(node("a"), node("b"), edges=[edge("a", "b", transform="!x")]))
