"""The public surface of flowcraft_core.expressions (SPEC 6.6)."""

from __future__ import annotations

import copy
import dataclasses
import pickle
import timeit
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

import flowcraft_core.expressions as expressions
from flowcraft_core.errors import ExpressionError, ExpressionSyntaxError
from flowcraft_core.expressions import (
    Compiled,
    CompiledExpression,
    Evaluator,
    SafeEvaluator,
    compile_expression,
    truthy,
)

#: Written out (not derived from `__all__`) so that a name added or dropped fails.
PUBLIC_NAMES = "Compiled CompiledExpression Evaluator SafeEvaluator compile_expression truthy"


def test_exported_members() -> None:
    assert sorted(expressions.__all__) == PUBLIC_NAMES.split()
    for name in expressions.__all__:
        assert getattr(expressions, name) is not None


def test_safe_evaluator_satisfies_the_protocols() -> None:
    evaluator = SafeEvaluator()
    assert isinstance(evaluator, Evaluator)
    compiled = evaluator.compile("count < 3")
    assert isinstance(compiled, Compiled)
    assert isinstance(compiled, CompiledExpression)
    assert compiled.evaluate({"count": 2}) is True


def test_custom_evaluators_fit_the_protocol() -> None:
    class Constant:
        def evaluate(self, scope: Mapping[str, Any]) -> Any:
            return True

    class AlwaysTrue:
        def compile(self, text: str) -> Compiled:
            return Constant()

    evaluator: Evaluator = AlwaysTrue()
    assert isinstance(evaluator, Evaluator)
    assert evaluator.compile("anything").evaluate({}) is True


def test_compiled_expression_is_frozen_and_slotted() -> None:
    compiled = compile_expression("result.output.x > limit")
    assert compiled.source == "result.output.x > limit"
    assert compiled.names == frozenset({"result", "limit"})
    assert isinstance(compiled.names, frozenset)
    with pytest.raises(dataclasses.FrozenInstanceError):
        compiled.source = "x"  # type: ignore[misc]
    assert not hasattr(compiled, "__dict__")
    assert "result.output.x > limit" in repr(compiled)


def test_compile_is_cached_and_results_are_shareable() -> None:
    assert compile_expression("a + 1") is compile_expression("a + 1")
    assert SafeEvaluator().compile("a + 1") == compile_expression("a + 1")
    compiled = compile_expression("a + 1")
    assert [compiled.evaluate({"a": n}) for n in range(3)] == [1, 2, 3]


def test_compiled_expressions_pickle_and_copy_by_source() -> None:
    compiled = compile_expression("a.b * 2")
    clone = pickle.loads(pickle.dumps(compiled))
    assert clone == compiled
    assert clone.evaluate({"a": {"b": 4}}) == 8
    assert copy.deepcopy(compiled) == compiled


def test_syntax_errors_are_expression_errors_with_location() -> None:
    with pytest.raises(ExpressionSyntaxError) as info:
        SafeEvaluator().compile("a <")
    assert isinstance(info.value, ExpressionError)
    assert info.value.expression == "a <"
    assert info.value.column == 4
    located = info.value.located(expression="a <", node_id="loop")
    assert str(located).startswith("node 'loop' condition 'a <': unexpected end of expression")


def test_scope_is_read_with_get_and_missing_names_are_null() -> None:
    class Chain(Mapping[str, Any]):
        """Like the runtime's scope: ``get`` resolves reserved names, context, then outputs."""

        def __init__(self) -> None:
            self.asked: list[str] = []

        def get(self, key: str, default: Any = None) -> Any:
            self.asked.append(key)
            return {"result": {"output": {"score": 0.9}}, "fetch": [1, 2]}.get(key, default)

        def __getitem__(self, key: str) -> Any:
            raise AssertionError("only get() may be used")

        def __iter__(self) -> Iterator[str]:
            raise AssertionError("only get() may be used")

        def __len__(self) -> int:
            raise AssertionError("only get() may be used")

    scope = Chain()
    expr = compile_expression("result.output.score >= 0.8 and fetch.length == 2 and !nope")
    assert expr.evaluate(scope) is True
    assert scope.asked == ["result", "fetch", "nope"]


def test_unexpected_python_errors_become_expression_errors() -> None:
    class Broken(Mapping[str, Any]):
        def get(self, key: str, default: Any = None) -> Any:
            raise KeyError(key)

        def __getitem__(self, key: str) -> Any:
            raise KeyError(key)

        def __iter__(self) -> Iterator[str]:
            return iter(())

        def __len__(self) -> int:
            return 0

    with pytest.raises(ExpressionError, match="evaluation failed: KeyError"):
        compile_expression("x.y").evaluate({"x": Broken()})
    with pytest.raises(ExpressionError, match="evaluation failed: AttributeError"):
        compile_expression("x").evaluate(None)  # type: ignore[arg-type]


def test_truthy_is_exported() -> None:
    assert truthy([]) is True
    assert truthy(0.0) is False


def test_evaluate_is_fast() -> None:
    """A loose guard (the target is a few microseconds; CI machines vary)."""
    compiled = compile_expression("result.output.score >= 0.8")
    scope = {"result": {"output": {"score": 0.93}, "action": None}}
    runs = 20_000
    seconds = min(timeit.repeat(lambda: compiled.evaluate(scope), number=runs, repeat=3))
    assert seconds / runs < 20e-6
