"""Property tests: fuzzing (only ExpressionError escapes, quickly) and a reference model."""

from __future__ import annotations

import math
import time
from typing import Any

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from flowcraft_core.errors import ExpressionError
from flowcraft_core.expressions import compile_expression, truthy

FUZZ = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
MODEL = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
TIME_BOUND_S = 1.0

# --- strategies ------------------------------------------------------------------------------

scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(10**6), 10**6)
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=6)
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=3), inner, max_size=4)
    ),
    max_leaves=12,
)
KEYS = ["a", "b", "c", "length", "x"]
scopes = st.dictionaries(st.sampled_from(KEYS), json_values, max_size=5)


def literal(value: Any) -> str:
    """Expression source for a JSON value (exercises every escape of the lexer)."""
    if value is None:
        return "null"
    if value is True or value is False:
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        return '"' + "".join(_escape(ch) for ch in value) + '"'
    if isinstance(value, list):
        return "[" + ", ".join(literal(item) for item in value) + "]"
    return "{" + ", ".join(f"{literal(k)}: {literal(v)}" for k, v in value.items()) + "}"


def _escape(ch: str) -> str:
    simple = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\t": "\\t"}
    if ch in simple:
        return simple[ch]
    code = ord(ch)
    if 0x20 <= code < 0x7F:
        return ch
    if code < 0x10000:
        return f"\\u{code:04x}"
    code -= 0x10000
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


BINARY = ["+", "-", "*", "/", "%", "==", "===", "!=", "!==", "<", "<=", ">", ">="]
BINARY += ["in", "not in", "and", "or", "&&", "||"]
FUNCTIONS = {
    "len": 1,
    "abs": 1,
    "min": 2,
    "max": 1,
    "round": 2,
    "int": 1,
    "float": 1,
    "str": 1,
    "bool": 1,
    "lower": 1,
    "upper": 1,
}


@st.composite
def expressions(draw: st.DrawFn, depth: int = 0) -> str:
    """Random well-formed (mostly) expressions from the SPEC 6.2 grammar."""
    leaf = st.one_of(
        st.sampled_from([*KEYS, "missing", "$x", "_y"]),
        json_values.map(literal),
    )
    if depth >= 4:
        return draw(leaf)
    sub = expressions(depth + 1)
    choice = draw(st.integers(0, 8))
    if choice <= 1:
        return draw(leaf)
    if choice == 2:
        return f"{draw(sub)} {draw(st.sampled_from(BINARY))} {draw(sub)}"
    if choice == 3:
        return f"{draw(st.sampled_from(['-', 'not ', '!']))}{draw(sub)}"
    if choice == 4:
        name = draw(st.sampled_from(sorted(FUNCTIONS)))
        args = [draw(sub) for _ in range(draw(st.integers(1, FUNCTIONS[name])))]
        return f"{name}({', '.join(args)})"
    if choice == 5:
        step = draw(st.sampled_from([".a", ".length", ".x", "[0]", "[1]", "[-1]", "['b']"]))
        return f"({draw(sub)}){step}"
    if choice == 6:
        return f"{draw(sub)}[{draw(sub)}]"
    if choice == 7:
        return "[" + ", ".join(draw(st.lists(sub, max_size=3))) + "]"
    return f"({draw(sub)})"


TOKENS = [
    "a", "b", "x.y", "1", "0", "2.5", "'s'", '"t"', "(", ")", "[", "]", "{", "}", ",", ":",
    ".", "+", "-", "*", "/", "%", "==", "!=", "<", ">=", "!", "&&", "||", "not", "in",
    "and", "or", "len", "min", "round", "str", "true", "null", "None", "**", "=", "if",
    "else", "for", "lambda", "__x", "\\", "'", '"', "\\u", "1e", ".5", "?", "$", "é",
]  # fmt: skip


def check_escape(text: str, scope: dict[str, Any]) -> None:
    """Compile and evaluate; anything but ExpressionError (or slowness) fails the test."""
    try:
        compiled = compile_expression(text)
    except ExpressionError:
        return
    start = time.perf_counter()
    try:
        compiled.evaluate(scope)
    except ExpressionError:
        pass
    assert time.perf_counter() - start < TIME_BOUND_S, text


@FUZZ
@given(st.text(max_size=80), scopes)
def test_fuzz_arbitrary_text(text: str, scope: dict[str, Any]) -> None:
    check_escape(text, scope)


@FUZZ
@given(st.lists(st.sampled_from(TOKENS), max_size=25), st.booleans(), scopes)
def test_fuzz_token_soup(tokens: list[str], spaced: bool, scope: dict[str, Any]) -> None:
    check_escape((" " if spaced else "").join(tokens), scope)


@FUZZ
@given(expressions(), scopes)
def test_fuzz_grammar(text: str, scope: dict[str, Any]) -> None:
    check_escape(text, scope)


# --- reference model -------------------------------------------------------------------------

ERROR = object()


def norm(value: Any) -> Any:
    """A tagged form whose Python equality is JSON equality (1 == 1.0, True != 1)."""
    if value is None:
        return ("null",)
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, int | float):
        return ("num", value)
    if isinstance(value, str):
        return ("str", value)
    if isinstance(value, list | tuple):
        return ("list", tuple(norm(item) for item in value))
    return ("dict", frozenset((key, norm(item)) for key, item in value.items()))


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def model_binary(op: str, a: Any, b: Any) -> Any:
    try:
        return _model_binary(op, a, b)
    except (OverflowError, ZeroDivisionError):
        return ERROR


def _model_binary(op: str, a: Any, b: Any) -> Any:
    if op == "==":
        return norm(a) == norm(b)
    if op == "!=":
        return norm(a) != norm(b)
    if op in ("<", "<=", ">", ">="):
        if not ((is_number(a) and is_number(b)) or (type(a) is str and type(b) is str)):
            return ERROR
        return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]
    if op == "in":
        if isinstance(b, list):
            return any(norm(a) == norm(item) for item in b)
        if isinstance(b, str):
            return a in b if isinstance(a, str) else ERROR
        if isinstance(b, dict):
            return isinstance(a, str) and a in b
        return ERROR
    if op == "and":
        return b if truthy(a) else a
    if op == "or":
        return a if truthy(a) else b
    both_numbers = is_number(a) and is_number(b)
    if op == "+" and not both_numbers:
        if type(a) is type(b) and type(a) in (str, list):
            return a + b
        return ERROR
    if not both_numbers:
        return ERROR
    if op in ("/", "%") and b == 0:
        return ERROR
    result = {"+": a + b, "-": a - b, "*": a * b, "/": a / b if op == "/" else 0, "%": 0}[op]
    if op == "%":
        result = a % b
    if isinstance(result, float) and not math.isfinite(result):
        return ERROR
    return result


def strictly_equal(a: Any, b: Any) -> bool:
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(map(strictly_equal, a, b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(strictly_equal(a[k], b[k]) for k in a)
    return bool(a == b)


def evaluate(text: str, scope: dict[str, Any]) -> Any:
    try:
        return compile_expression(text).evaluate(scope)
    except ExpressionError:
        return ERROR


MODEL_OPS = ["==", "!=", "<", "<=", ">", ">=", "in", "and", "or", "+", "-", "*", "/", "%"]


@MODEL
@given(st.sampled_from(MODEL_OPS), json_values, json_values)
def test_binary_operators_match_the_model(op: str, a: Any, b: Any) -> None:
    expected = model_binary(op, a, b)
    actual = evaluate(f"a {op} b", {"a": a, "b": b})
    if expected is ERROR:
        assert actual is ERROR
    else:
        assert strictly_equal(actual, expected), (op, a, b, actual, expected)


@MODEL
@given(json_values)
def test_equality_is_reflexive_and_matches_copies(value: Any) -> None:
    assert evaluate("a == b", {"a": value, "b": value}) is True
    text = literal(value)
    assume(len(text) <= 2000)
    assert evaluate(f"a == {text}", {"a": value}) is True
    assert evaluate(f"a != {text}", {"a": value}) is False


@MODEL
@given(json_values)
def test_literals_round_trip(value: Any) -> None:
    text = literal(value)
    assume(len(text) <= 2000)
    assert strictly_equal(evaluate(text, {}), value)


@MODEL
@given(json_values)
def test_truthiness_matches_the_model(value: Any) -> None:
    falsy = value is None or value is False or value == "" or (is_number(value) and value == 0)
    assert evaluate("bool(a)", {"a": value}) is (not falsy)
    assert evaluate("!a", {"a": value}) is falsy


@MODEL
@given(json_values, st.sampled_from(["a", "length", "x", 0, 1, -1, True, 1.0]))
def test_lookups_never_raise(value: Any, key: Any) -> None:
    text = f"v[{literal(key)}]"
    actual = evaluate(text, {"v": value})
    assert actual is not ERROR
    if isinstance(value, dict):
        expected = value.get(key) if isinstance(key, str) else None
    elif isinstance(value, list):
        if key == "length":
            expected = len(value)
        elif type(key) is int and 0 <= key < len(value):
            expected = value[key]
        else:
            expected = None
    elif isinstance(value, str) and key == "length":
        expected = len(value)
    else:
        expected = None
    assert strictly_equal(actual, expected)
