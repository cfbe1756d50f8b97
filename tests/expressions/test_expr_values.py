"""Values of expressions (SPEC 6.3): a table over every operator, function and lookup."""

from __future__ import annotations

from typing import Any

import pytest

from flowcraft_core.errors import ExpressionError, ExpressionSyntaxError
from flowcraft_core.expressions import compile_expression, truthy

SCOPE: dict[str, Any] = {
    "count": 2,
    "items": [],
    "user": {"age": 17},
    "n": 5,
    "f": 2.5,
    "s": "hello",
    "t": True,
    "nil": None,
    "nums": [3, 1, 2],
    "words": ["b", "a", "c"],
    "pair": (1, "x"),
    "d": {"k": 1, "length": 9, "nested": {"x": [10, 20]}, "none": None},
    "big": 10**400,
}


def run(text: str, scope: dict[str, Any] | None = None) -> Any:
    return compile_expression(text).evaluate(SCOPE if scope is None else scope)


def same(actual: Any, expected: Any) -> bool:
    """Equal and of the same type all the way down (so True is not 1 and 1.0 is not 1)."""
    if type(actual) is not type(expected):
        return False
    if isinstance(expected, list):
        return len(actual) == len(expected) and all(map(same, actual, expected))
    if isinstance(expected, dict):
        return actual.keys() == expected.keys() and all(
            same(actual[k], expected[k]) for k in expected
        )
    return bool(actual == expected)


SPEC_EXAMPLES: list[tuple[str, Any]] = [
    ("count < 3", True),
    ("user.age >= 18 or user.vip", None),
    ("items.length == 0 && !missing", True),
    ("user.name.first", None),
]

VALUES: list[tuple[str, Any]] = [
    # literals
    ("1", 1),
    ("0", 0),
    ("1.5", 1.5),
    ("2e3", 2000.0),
    ("2.5E-1", 0.25),
    ("-3", -3),
    ("- 3.5", -3.5),
    ("--3", 3),
    ("'a'", "a"),
    ('"a"', "a"),
    (r"'it\'s'", "it's"),
    (r'"say \"hi\""', 'say "hi"'),
    (r"'a\\b'", "a\\b"),
    (r"'a\nb\tc'", "a\nb\tc"),
    (r"'\u00e9'", "é"),
    (r"'\ud83d\ude00'", "😀"),
    ("'\"'", '"'),
    ("true", True),
    ("True", True),
    ("false", False),
    ("False", False),
    ("null", None),
    ("None", None),
    ("[]", []),
    ("[1, 'a', null, [true]]", [1, "a", None, [True]]),
    ("[1, 2,]", [1, 2]),
    ("{}", {}),
    ("{\"a\": 1, 'b': [n]}", {"a": 1, "b": [5]}),
    ('{"a": 1,}', {"a": 1}),
    # names and lookups
    ("n", 5),
    ("missing", None),
    ("user.age", 17),
    ('user["age"]', 17),
    ("d.nested.x[1]", 20),
    ('d["nested"]["x"][0]', 10),
    ("d.nested.x[2]", None),
    ("d.nested.x[-1]", None),
    ("nums[true]", None),
    ("nums[1.0]", None),
    ("nums[n - 4]", 1),
    ("pair[1]", "x"),
    ("pair.length", 2),
    ("nums.length", 3),
    ('nums["length"]', 3),
    ("s.length", 5),
    ("d.length", 9),
    ("user.length", None),
    ("d[1]", None),
    ("d.none", None),
    ("d.none.x", None),
    ("n.x", None),
    ("s.x", None),
    ("s[0]", None),
    ("nil.x", None),
    ("nil[0]", None),
    ("t.length", None),
    ("f.length", None),
    ("[1, 2][0]", 1),
    ('{"a": 5}.a', 5),
    ("(d).k", 1),
    ("1 .x", None),
    ("true.length", None),
    # boolean logic returns operands
    ("0 or 'x'", "x"),
    ("'' || 0", 0),
    ("[] or 1", []),
    ("{} and 1", 1),
    ("nil and crash.x", None),
    ("1 and 2 and 3", 3),
    ("1 and 0 and 3", 0),
    ("0 or nil or ''", ""),
    ("0 or nil or 'z' or 1", "z"),
    ("not 0", True),
    ("not []", False),
    ("!''", True),
    ("!!s", True),
    ("not not nil", False),
    ("not 1 == 2", True),
    ("1 == 1 and 2 == 2 or false", True),
    # equality: deep JSON, no coercion
    ("1 == 1.0", True),
    ("1 === 1.0", True),
    ("true == 1", False),
    ("true != 1", True),
    ("true !== 1", True),
    ("false == 0", False),
    ("'1' == 1", False),
    ("null == null", True),
    ("null == 0", False),
    ("null == false", False),
    ("'' == null", False),
    ("[1, 2] == [1, 2.0]", True),
    ("[1] == [true]", False),
    ("[1, [2, [3]]] == [1, [2, [3]]]", True),
    ("[1, 2] == [2, 1]", False),
    ('{"a": 1, "b": [1]} == {"b": [1.0], "a": 1}', True),
    ('{"a": 1} == {"a": 1, "b": 2}', False),
    ('{"a": null} == {"b": null}', False),
    ("d.nested == {'x': [10, 20]}", True),
    ("pair == [1, 'x']", True),
    ("[] == {}", False),
    ("'a' != 'b'", True),
    # ordering
    ("1 < 2", True),
    ("2.5 <= 2", False),
    ("3 > 2.5", True),
    ("2 >= 2.0", True),
    ("'a' < 'b'", True),
    ("'B' < 'a'", True),
    ("big > 1e300", True),
    # membership
    ("1 in [1, 2]", True),
    ("1.0 in [1, 2]", True),
    ("true in [1]", False),
    ("1 in [true]", False),
    ("[1] in [[1.0], 2]", True),
    ("null in [0, '', false]", False),
    ("'ell' in s", True),
    ("'' in s", True),
    ("'k' in d", True),
    ("'none' in d", True),
    ("'zz' in d", False),
    ("1 in d", False),
    ("'x' not in words", True),
    ("'a' not in words", False),
    ("'a' in pair", False),
    # arithmetic
    ("1 + 2", 3),
    ("1 + 2.0", 3.0),
    ("1.5 + 1.5", 3.0),
    ("'a' + 'b'", "ab"),
    ("[1] + [2, 3]", [1, 2, 3]),
    ("pair + [2]", [1, "x", 2]),
    ("7 - 10", -3),
    ("2 * 3", 6),
    ("2 * 0.5", 1.0),
    ("7 / 2", 3.5),
    ("6 / 3", 2.0),
    ("7 % 3", 1),
    ("-7 % 3", 2),
    ("7 % -3", -2),
    ("7.5 % 2", 1.5),
    ("1 + 2 * 3", 7),
    ("(1 + 2) * 3", 9),
    ("10 - 2 - 3", 5),
    ("2 * 3 % 4", 2),
    ("-n + 1", -4),
    ("-(n)", -5),
    ("- f", -2.5),
    ("n - -1", 6),
    ("1 + 2 < 4", True),
    ("'a' + 'b' == 'ab'", True),
    ("big - big", 0),
    # functions
    ("len('abc')", 3),
    ("len(nums)", 3),
    ("len(d)", 4),
    ("len(pair)", 2),
    ("len('')", 0),
    ("abs(-3)", 3),
    ("abs(-2.5)", 2.5),
    ("min(3, 1, 2)", 1),
    ("max(3, 1.5)", 3),
    ("min(nums)", 1),
    ("max(words)", "c"),
    ("max([1, 3.5, 2])", 3.5),
    ("min('b', 'a')", "a"),
    ("round(2.5)", 3),
    ("round(-2.5)", -3),
    ("round(2.4)", 2),
    ("round(1.25, 1)", 1.3),
    ("round(1.234, 2)", 1.23),
    ("round(7)", 7),
    ("round(1250, -2)", 1300),
    ("round(-1250, -2)", -1300),
    ("round(1249, -2)", 1200),
    ("round(1234.5, -2)", 1200.0),
    ("round(2.5, 0)", 3.0),
    ("int(2.9)", 2),
    ("int(-2.9)", -2),
    ("int(' 42 ')", 42),
    ("int('-7')", -7),
    ("int(true)", 1),
    ("int(5)", 5),
    ("float(2)", 2.0),
    ("float('1.5')", 1.5),
    ("float(' -2e3 ')", -2000.0),
    ("float('.5')", 0.5),
    ("float(false)", 0.0),
    ("str(1)", "1"),
    ("str(1.5)", "1.5"),
    ("str('x')", "x"),
    ("str(null)", "null"),
    ("str(true)", "true"),
    ("str([1, 'a', null])", '[1,"a",null]'),
    ('str({"a": [1, 2.0]})', '{"a":[1,2.0]}'),
    ("str(pair)", '[1,"x"]'),
    ("str('é')", "é"),
    ("bool(0)", False),
    ("bool([])", True),
    ("bool('')", False),
    ("bool(0.0)", False),
    ("bool({})", True),
    ("lower('AbC')", "abc"),
    ("upper('AbC')", "ABC"),
    ("len", None),
    ("len(str(n)) + 1", 2),
]


@pytest.mark.parametrize(("text", "expected"), SPEC_EXAMPLES + VALUES)
def test_value(text: str, expected: Any) -> None:
    result = run(text)
    assert same(result, expected), (text, result, expected)


ERRORS = [
    ("user.age + 'x'", "cannot add int and str"),
    ("1 + true", "cannot add int and bool"),
    ("'a' + 1", "cannot add str and int"),
    ("[1] + 'a'", "cannot add list and str"),
    ("{} + {}", "cannot add dict and dict"),
    ("nil + 1", "cannot add null and int"),
    ("1 - 'a'", "cannot subtract str from int"),
    ("true - 1", "cannot subtract int from bool"),
    ("'a' * 3", "cannot multiply str by int"),
    ("[1] * 2", "cannot multiply list by int"),
    ("1 / 'a'", "cannot divide int by str"),
    ("1 / 0", "division by zero"),
    ("1 / 0.0", "division by zero"),
    ("1 % 0", "modulo by zero"),
    ("'a' % 2", "cannot take str modulo int"),
    ("-'a'", "cannot negate str"),
    ("-true", "cannot negate bool"),
    ("-nil", "cannot negate null"),
    ("1e300 * 1e300", "not a finite number"),
    ("1e308 + 1e308", "not a finite number"),
    ("-1e308 - 1e308", "not a finite number"),
    ("1e300 / 1e-300", "not a finite number"),
    ("big / 1", "out of range"),
    ("big + 0.5", "out of range"),
    ("1 < 'a'", "cannot compare int with str"),
    ("f < nil", "cannot compare float with null"),
    ("missing >= 0.8", "cannot compare null with float"),
    ("true > false", "cannot compare bool with bool"),
    ("[1] < [2]", "cannot compare list with list"),
    ("'a' <= nil", "cannot compare str with null"),
    ("1 in 'abc'", "cannot test whether int is in str"),
    ("'a' in nil", "'in' needs a list, str or dict on the right, not null"),
    ("'a' in 5", "not int"),
    ("'a' not in nil", "not null"),
    ("len(5)", "len() takes a str, list or dict, not int"),
    ("len(nil)", "not null"),
    ("abs('a')", "abs() takes a number, not str"),
    ("abs(true)", "not bool"),
    ("min(5)", "min() of one argument takes a list, not int"),
    ("min([])", "min() of an empty list"),
    ("max(1, 'a')", "max() needs all numbers or all strings, got int and str"),
    ("max([true, false])", "got bool and bool"),
    ("min([nil])", "got null"),
    ("round('a')", "round() takes a number, not str"),
    ("round(1.5, 1.0)", "round() digits must be an int, not float"),
    ("round(1.5, true)", "not bool"),
    ("int('1.5')", "cannot convert str '1.5' to int"),
    ("int('')", "cannot convert str"),
    ("int(nil)", "int() takes a number, str or bool, not null"),
    ("int([1])", "not list"),
    ("float('abc')", "cannot convert str 'abc' to float"),
    ("float('inf')", "cannot convert str"),
    ("float('nan')", "cannot convert str"),
    ("float('1e999')", "not a finite number"),
    ("float(big)", "out of range"),
    ("float({})", "not dict"),
    ("lower(1)", "lower() takes a str, not int"),
    ("upper(nil)", "upper() takes a str, not null"),
]


@pytest.mark.parametrize(("text", "message"), ERRORS)
def test_runtime_error(text: str, message: str) -> None:
    with pytest.raises(ExpressionError) as info:
        run(text)
    assert not isinstance(info.value, ExpressionSyntaxError)
    assert message in str(info.value)
    assert info.value.reason == str(info.value)  # location is added later by the runtime


def test_errors_can_be_located() -> None:
    with pytest.raises(ExpressionError) as info:
        run("result.output.score >= limit", {"result": {"output": {"score": 0.5}}})
    located = info.value.located(
        expression="result.output.score >= limit", edge=(2, "score", "approve")
    )
    assert str(located) == (
        "edges[2] (score -> approve) condition 'result.output.score >= limit': "
        "cannot compare float with null"
    )


def test_str_of_non_json_and_deep_data_is_an_expression_error() -> None:
    deep: list[Any] = []
    for _ in range(100_000):
        deep = [deep]
    with pytest.raises(ExpressionError, match="cannot convert"):
        run("str(x)", {"x": deep})
    with pytest.raises(ExpressionError, match="cannot convert object to str"):
        run("str(x)", {"x": object()})
    with pytest.raises(ExpressionError, match="cannot convert"):
        run("str(x)", {"x": [float("nan")]})


def test_deep_data_equality_does_not_recurse() -> None:
    a: list[Any] = []
    b: list[Any] = []
    for _ in range(100_000):
        a, b = [a], [b]
    assert run("a == b", {"a": a, "b": b}) is True
    assert run("a in [1, b]", {"a": a, "b": b}) is True


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (False, False),
        (None, False),
        (0, False),
        (0.0, False),
        (-0.0, False),
        ("", False),
        (float("nan"), False),
        (True, True),
        (1, True),
        (-1, True),
        (0.1, True),
        ("0", True),
        ("false", True),
        ([], True),
        ({}, True),
        ((), True),
        ([0], True),
        (object(), True),
    ],
)
def test_truthy(value: Any, expected: bool) -> None:
    assert truthy(value) is expected
    assert run("bool(x)", {"x": value}) is expected
    assert run("not x", {"x": value}) is (not expected)


def test_and_or_short_circuit() -> None:
    # The right side would raise if evaluated.
    assert run("false and 1 / 0") is False
    assert run("true or 1 / 0") is True
    assert run("0 && 'a' < 1") == 0
    with pytest.raises(ExpressionError):
        run("true and 1 / 0")


def test_literals_are_fresh_each_time() -> None:
    compiled = compile_expression('[1, {"a": []}]')
    first = compiled.evaluate({})
    first[1]["a"].append(1)
    assert compiled.evaluate({}) == [1, {"a": []}]


def test_concatenation_does_not_alias_operands() -> None:
    left = [1]
    result = run("a + b", {"a": left, "b": [2]})
    result.append(3)
    assert left == [1]
