"""Syntax (SPEC 6.2) and limits (SPEC 6.4): rejections fail at compile time with a column."""

from __future__ import annotations

import sys
from typing import Any

import pytest

from flowcraft_core.errors import ExpressionError, ExpressionSyntaxError
from flowcraft_core.expressions import SafeEvaluator, compile_expression

REJECTED = [
    # (expression, 1-based column, message fragment)
    ("", 1, "empty expression"),
    ("   ", 1, "empty expression"),
    ("a.b()", 4, "method calls are not allowed"),
    ("a.b.c(1)", 6, "method calls are not allowed"),
    ("a[0]()", 5, "can be called"),
    ("(len)(x)", 6, "can be called"),
    ("len(x)(y)", 7, "can be called"),
    ("lambda: 1", 1, "lambdas are not allowed"),
    ("lambda x: x", 1, "lambdas are not allowed"),
    ("x => x", 3, "lambdas are not allowed"),
    ("[x for x in y]", 4, "comprehensions are not allowed"),
    ("{'a': x for x in y}", 9, "comprehensions are not allowed"),
    ("len(x for x in y)", 7, "comprehensions are not allowed"),
    ("a = 1", 3, "assignment is not allowed"),
    ("a += 1", 4, "assignment is not allowed"),
    ("(a := 1)", 4, "assignment is not allowed"),
    ("a ** 2", 3, "'**' is not allowed"),
    ("a // 2", 3, "'//' is not allowed"),
    ("x if y else z", 3, "conditional expressions are not allowed"),
    ("[x if y else z]", 4, "conditional expressions are not allowed"),
    ("y ? x : z", 3, "conditional expressions are not allowed"),
    ("a < b < c", 7, "chained comparisons are not allowed"),
    ("a == b == c", 8, "chained comparisons are not allowed"),
    ("1 < 2 in [true]", 7, "chained comparisons are not allowed"),
    ("a in b not in c", 8, "chained comparisons are not allowed"),
    ("a b", 3, "unexpected 'b'"),
    ("1 2", 3, "unexpected '2'"),
    ("a)", 2, "unexpected ')'"),
    ("a, b", 2, "tuples are not allowed"),
    ("(a, b)", 3, "tuples are not allowed"),
    ("()", 2, "empty parentheses"),
    ("1 +", 4, "unexpected end of expression"),
    ("(1", 3, "unexpected end of expression, expected ')'"),
    ("[1, 2", 6, "expected ']'"),
    ("{'a': 1", 8, "expected '}'"),
    ("{'a' 1}", 6, "expected ':'"),
    ("{", 2, "unexpected end of expression"),
    ("{a: 1}", 2, "dict keys must be string literals"),
    ("{1: 1}", 2, "dict keys must be string literals"),
    ("{'a': 1, 'a': 2}", 10, "duplicate key 'a'"),
    ("{a}", 2, "dict keys must be string literals"),
    ("a[1:2]", 4, "slices are not allowed"),
    ("a[]", 3, "expected an index"),
    ("a.", 3, "expected a name after '.'"),
    ("a.0", 3, "expected a name after '.'"),
    ("a.'b'", 3, "expected a name after '.'"),
    ("foo(1)", 1, "unknown function 'foo'"),
    ("eval('1')", 1, "unknown function 'eval'"),
    ("getattr(a, 'b')", 1, "unknown function 'getattr'"),
    ("len()", 1, "len() takes exactly 1 argument (0 given)"),
    ("len(1, 2)", 1, "len() takes exactly 1 argument (2 given)"),
    ("round(1, 2, 3)", 1, "round() takes 1 or 2 arguments (3 given)"),
    ("max()", 1, "max() takes at least 1 argument (0 given)"),
    ("__import__('os')", 1, "names starting with '__' are not allowed"),
    ("().__class__", 4, "names starting with '__'"),
    ("a.__class__", 3, "names starting with '__'"),
    ("x.__dict__.y", 3, "names starting with '__'"),
    ("__builtins__", 1, "names starting with '__'"),
    ("a and or b", 7, "unexpected 'or'"),
    ("in", 1, "unexpected 'in'"),
    ("not", 4, "unexpected end of expression"),
    ("a not b", 3, "unexpected 'not'"),
    ("1 + not 2", 5, "unexpected 'not'"),
    ("+1", 1, "unexpected '+'"),
    (".5", 1, "a number needs a digit before its decimal point"),
    ("1.", 2, "a decimal point must be followed by a digit"),
    ("1.x", 2, "member access on a number literal"),
    ("01", 1, "invalid number '01'"),
    ("1abc", 1, "invalid number"),
    ("0x10", 1, "invalid number"),
    ("1e", 2, "an exponent needs digits"),
    ("1e999", 1, "out of range"),
    ("'abc", 1, "unterminated string"),
    ('"abc\\"', 1, "unterminated string"),
    ("'a\\x'", 3, "invalid escape '\\\\x'"),
    ("'\\u12'", 2, "4 hex digits"),
    ("'\\u12g4'", 2, "4 hex digits"),
    ("a & b", 3, "unexpected '&'"),
    ("a | b", 3, "unexpected '|'"),
    ("a; b", 2, "unexpected ';'"),
    ("a @ b", 3, "unexpected character '@'"),
    ("`a`", 1, "unexpected character '`'"),
    ("a\u00a0b", 2, "unexpected character"),
    ("ä", 1, "unexpected character"),
    ("#comment", 1, "unexpected character '#'"),
]


@pytest.mark.parametrize(("text", "column", "message"), REJECTED)
def test_rejected(text: str, column: int, message: str) -> None:
    with pytest.raises(ExpressionSyntaxError) as info:
        SafeEvaluator().compile(text)
    error = info.value
    assert error.column == column, str(error)
    assert message in error.reason
    assert f"at column {column}" in error.reason
    assert error.expression == text


ACCEPTED = [
    "a",
    "$ref",
    "_private",
    "a_1$",
    "_",
    "lambda",
    "a.lambda",
    "a.in.not.true",
    "a.$b",
    "a._x_",
    "if_ready",
    "not in_stock",
    "a not in b",
    "not a in b",
    "a === b",
    "a !== b",
    "!a == b",
    "- - 1",
    "a\n and\tb\r",
    "context['_outputs.fetch']",
    "context['__class__']",
    "a['__x'][0]['b c']",
    "0.5e+2",
    "[1,]",
    "max(1, 2,)",
]


@pytest.mark.parametrize("text", ACCEPTED)
def test_accepted(text: str) -> None:
    compiled = compile_expression(text)
    assert compiled.source == text
    try:
        compiled.evaluate({})
    except ExpressionError as exc:  # e.g. "x in null"; only the syntax matters here
        assert not isinstance(exc, ExpressionSyntaxError)


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("result.output.x > limit", {"result", "limit"}),
        ("len(items) and max(a, b.c)", {"items", "a", "b"}),
        ("x[y.z] + {'k': w}.k", {"x", "y", "w"}),
        ("[p, [q]] == r or not s", {"p", "q", "r", "s"}),
        ("1 + 2", set()),
        ("len", {"len"}),
        ("-a - (b) in c", {"a", "b", "c"}),
    ],
)
def test_names(text: str, names: set[str]) -> None:
    assert compile_expression(text).names == frozenset(names)


def test_length_limit() -> None:
    ok = "a" * 2000
    assert compile_expression(ok).evaluate({ok: 1}) == 1
    with pytest.raises(ExpressionSyntaxError, match="longer than 2000") as info:
        compile_expression("a" * 2001)
    assert info.value.column == 2001


@pytest.mark.parametrize(
    ("open_", "close", "offset"),
    [
        ("(", ")", 1),
        ("[", "]", 1),
        ("len(", ")", 4),
        ("not ", "", 1),
        ("-", "", 1),
        ("!", "", 1),
        ("a[", "]", 2),
    ],
)
def test_depth_limit(open_: str, close: str, offset: int) -> None:
    at_limit = open_ * 32 + "1" + close * 32
    compile_expression(at_limit)
    with pytest.raises(ExpressionSyntaxError, match="nests more than 32 levels") as info:
        compile_expression(open_ * 33 + "1" + close * 33)
    # The column points at the 33rd opening token.
    assert info.value.column == 32 * len(open_) + offset


def test_dict_depth_counts() -> None:
    compile_expression("{'a': " * 32 + "1" + "}" * 32)
    with pytest.raises(ExpressionSyntaxError, match="nests more than 32"):
        compile_expression("{'a': " * 33 + "1" + "}" * 33)


@pytest.mark.parametrize(
    "text",
    [
        "(" * 999 + "1" + ")" * 999,
        "[" * 1000 + "]" * 1000,
        "-" * 1999 + "1",
        "!" * 1999 + "x",
        "not " * 499 + "x",
    ],
)
def test_deep_input_fails_cleanly_under_a_low_recursion_limit(text: str) -> None:
    # Without the depth check, 1,000 nested brackets would need ~11,000 parser frames.
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(_stack_depth() + 450)
    try:
        with pytest.raises(ExpressionSyntaxError, match="nests more than 32"):
            compile_expression(text)
    finally:
        sys.setrecursionlimit(limit)


@pytest.mark.parametrize(
    ("text", "scope", "expected"),
    [
        ("1" + " + 1" * 499, {}, 500),
        ("x" + ".x" * 999, {}, None),
        ("a" + "[0]" * 600, {}, None),
        ("a" + " and a" * 300, {"a": 1}, 1),
        ("a" + " || a" * 300, {"a": 0}, 0),
        ("[" + "1," * 900 + "]", {}, [1] * 900),
        ("s" + " + s" * 400, {"s": "ab"}, "ab" * 401),
    ],
)
def test_long_flat_chains_evaluate_without_recursion(
    text: str, scope: dict[str, Any], expected: Any
) -> None:
    assert len(text) <= 2000
    compiled = compile_expression(text)
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(_stack_depth() + 50)
    try:
        assert compiled.evaluate(scope) == expected
    finally:
        sys.setrecursionlimit(limit)


def _stack_depth() -> int:
    frame = sys._getframe()
    depth = 0
    while frame is not None:
        depth += 1
        frame = frame.f_back  # type: ignore[assignment]
    return depth


def test_size_limit_on_results() -> None:
    big = "x" * 600_000
    assert len(compile_expression("s + 'y'").evaluate({"s": big})) == 600_001
    with pytest.raises(ExpressionError, match="result too large"):
        compile_expression("s + s").evaluate({"s": big})
    with pytest.raises(ExpressionError, match="result too large"):
        compile_expression("l + l").evaluate({"l": [0] * 600_000})
    with pytest.raises(ExpressionError, match="result too large"):
        compile_expression("str(l)").evaluate({"l": [0] * 600_000})
    with pytest.raises(ExpressionError, match="result too large"):
        compile_expression("upper(s)").evaluate({"s": "ß" * 600_000})


def test_non_string_expression_is_a_syntax_error() -> None:
    with pytest.raises(ExpressionSyntaxError, match="must be a str"):
        compile_expression(42)  # type: ignore[arg-type]
