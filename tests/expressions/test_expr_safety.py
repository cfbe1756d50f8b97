"""No expression reads attributes, calls objects or runs code (SPEC 6.4).

Scopes hold "spy" objects that record every attribute read, item read, call and dunder
protocol use; the evaluator may only touch Mapping subclasses, and only through ``get``.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flowcraft_core.errors import ExpressionError
from flowcraft_core.expressions import compile_expression

TOUCHED: list[str] = []


class Spy:
    """Records every way Python code could interact with an object."""

    def __getattribute__(self, name: str) -> Any:
        TOUCHED.append(f"getattribute {name}")
        return object.__getattribute__(self, name)

    def __getattr__(self, name: str) -> Any:
        TOUCHED.append(f"getattr {name}")
        return Spy()

    def __getitem__(self, key: Any) -> Any:
        TOUCHED.append(f"getitem {key!r}")
        return Spy()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        TOUCHED.append("call")
        return Spy()

    def __eq__(self, other: object) -> bool:
        TOUCHED.append("eq")
        return True

    def __hash__(self) -> int:
        TOUCHED.append("hash")
        return 0

    def __bool__(self) -> bool:
        TOUCHED.append("bool")
        return False

    def __len__(self) -> int:
        TOUCHED.append("len")
        return 0

    def __iter__(self) -> Iterator[Any]:
        TOUCHED.append("iter")
        return iter(())

    def __contains__(self, item: object) -> bool:
        TOUCHED.append("contains")
        return True

    def __lt__(self, other: object) -> bool:
        TOUCHED.append("lt")
        return True

    def __add__(self, other: object) -> Any:
        TOUCHED.append("add")
        return Spy()

    __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = __truediv__ = __mod__ = __add__

    def __neg__(self) -> Any:
        TOUCHED.append("neg")
        return Spy()

    def __index__(self) -> int:
        TOUCHED.append("index")
        return 0

    def __str__(self) -> str:
        TOUCHED.append("str")
        return "spy"

    def __repr__(self) -> str:
        TOUCHED.append("repr")
        return "spy"


class SpyMapping(Mapping[str, Any]):
    """A Mapping whose only sanctioned entry point for lookups is ``get``."""

    def __init__(self, data: dict[str, Any]) -> None:
        self._data = data

    def get(self, key: str, default: Any = None) -> Any:
        TOUCHED.append(f"mapping.get {key!r}")
        return self._data.get(key, default)

    def __getitem__(self, key: str) -> Any:
        TOUCHED.append(f"mapping.getitem {key!r}")
        return self._data[key]

    def __contains__(self, key: object) -> bool:
        TOUCHED.append("mapping.contains")
        return key in self._data

    def __iter__(self) -> Iterator[str]:
        TOUCHED.append("mapping.iter")
        return iter(self._data)

    def __len__(self) -> int:
        TOUCHED.append("mapping.len")
        return len(self._data)


@pytest.fixture(autouse=True)
def _clear_touched() -> Iterator[None]:
    TOUCHED.clear()
    yield
    TOUCHED.clear()


def spy_scope() -> SpyMapping:
    return SpyMapping(
        {
            "spy": Spy(),
            "m": SpyMapping({"spy": Spy(), "inner": SpyMapping({"x": 1})}),
            "l": [Spy(), 1],
        }
    )


def evaluate_quietly(text: str, scope: Any) -> Any:
    try:
        return compile_expression(text).evaluate(scope)
    except ExpressionError:
        return "<error>"


def foreign_touches() -> list[str]:
    """Touches other than the Mapping API a whole-mapping operation (len, ==, str) needs."""
    allowed = ("mapping.get ", "mapping.iter", "mapping.len")
    return [t for t in TOUCHED if not t.startswith(allowed)]


@pytest.mark.parametrize(
    "text",
    [
        "spy",
        "spy.x",
        "spy.length",
        "spy['x']",
        "spy[0]",
        "spy.x.y.z",
        "m.spy.x",
        "m['spy'][0]",
        "m.inner.x",
        "m.inner.length",
        "l[0].a",
        "l[0][1]",
        "spy == 1",
        "spy == spy",
        "spy != [1]",
        "m.spy == {'a': 1}",
        "[spy] == [1]",
        "1 in [spy]",
        "spy in [1, 2]",
        "spy in l",
        "'a' in spy",
        "'spy' in m",
        "spy < 1",
        "1 >= spy",
        "spy + 1",
        "1 + spy",
        "'a' + spy",
        "[1] + spy",
        "spy - 1",
        "spy * 2",
        "spy / 2",
        "spy % 2",
        "-spy",
        "not spy",
        "!spy",
        "spy and 1",
        "spy or 1",
        "0 or spy",
        "len(spy)",
        "abs(spy)",
        "min(spy)",
        "max(spy, 1)",
        "min([spy, 1])",
        "round(spy)",
        "round(1.5, spy)",
        "int(spy)",
        "float(spy)",
        "str(spy)",
        "str([spy])",
        "bool(spy)",
        "lower(spy)",
        "upper(spy)",
        "nums[spy]",
        "[1, 2][spy]",
        "m[spy]",
        "{'a': spy}",
        "[spy, spy]",
        "spy['__class__']",
        "spy['__globals__']",
        "spy.mro",
        "spy.func_globals",
    ],
)
def test_expression_never_touches_objects(text: str) -> None:
    evaluate_quietly(text, spy_scope())
    assert foreign_touches() == [], text


def test_plain_lookups_on_mappings_use_only_get() -> None:
    assert compile_expression("m.inner.x + 1").evaluate(spy_scope()) == 2
    assert TOUCHED == ["mapping.get 'm'", "mapping.get 'inner'", "mapping.get 'x'"]


@pytest.mark.parametrize("text", ["len(m)", "m == m.inner", "str(m.inner)", "m.inner == {'x': 1}"])
def test_whole_mapping_operations_use_iteration_and_get(text: str) -> None:
    evaluate_quietly(text, spy_scope())
    assert {t.split(" ")[0] for t in TOUCHED} <= {"mapping.get", "mapping.iter", "mapping.len"}


def test_whole_mapping_operations_see_the_data() -> None:
    assert compile_expression("len(m)").evaluate(spy_scope()) == 2
    assert compile_expression("m.inner == {'x': 1.0}").evaluate(spy_scope()) is True
    assert compile_expression("str(m.inner)").evaluate(spy_scope()) == '{"x":1}'


def test_in_on_a_mapping_uses_only_get() -> None:
    assert compile_expression("'inner' in m and not ('zz' in m)").evaluate(spy_scope()) is True
    assert foreign_touches() == []


@pytest.mark.parametrize(
    "text",
    [
        "__import__('os')",
        "().__class__",
        "().__class__.__bases__[0].__subclasses__()",
        "a.__class__",
        "a.__dict__",
        "__builtins__",
        "open('/etc/passwd')",
        "exec('1')",
        "eval('1')",
        "compile('1', 'x', 'eval')",
        "getattr(a, 'b')",
        "globals()",
        "vars()",
        "type(a)",
        "a.b()",
        "lambda: 1",
        "[x for x in a]",
        "import os",
        "str.join",
        "len.__self__",
    ],
)
def test_dangerous_text_is_rejected_or_inert(text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    armed = False
    for name in ("__import__", "open", "exec", "eval", "compile", "getattr"):
        original = getattr(builtins, name)

        def recorder(*args: Any, _name: str = name, _original: Any = original, **kw: Any) -> Any:
            if armed:
                calls.append(_name)
            return _original(*args, **kw)

        monkeypatch.setattr(builtins, name, recorder)
    scope = spy_scope()
    armed = True
    try:
        result = compile_expression(text).evaluate(scope)
    except ExpressionError:
        result = None
    armed = False
    monkeypatch.undo()
    assert result is None
    assert calls == []
    assert foreign_touches() == []


def test_dunder_keys_via_brackets_read_only_mapping_data() -> None:
    scope = {"a": {"__class__": "data"}, "o": object(), "f": len}
    assert compile_expression("a['__class__']").evaluate(scope) == "data"
    assert compile_expression("o['__class__']").evaluate(scope) is None
    assert compile_expression("f['__self__']").evaluate(scope) is None
    assert compile_expression("f.length").evaluate(scope) is None


def test_scope_is_read_only_through_get() -> None:
    class OnlyGet:
        """Not a Mapping at all: bare names still resolve through its ``get``."""

        def get(self, key: str) -> Any:
            return {"x": 41}.get(key)

    assert compile_expression("x + 1").evaluate(OnlyGet()) == 42  # type: ignore[arg-type]


_SPY_TEXT = st.sampled_from(
    ["spy", "m", "l", "m.spy", "l[0]", "m.inner", "1", "'s'", "[spy]", "{'k': spy}", "null"]
)
_OPS = st.sampled_from(
    ["+", "-", "*", "/", "%", "==", "!=", "<", ">=", "in", "not in", "and", "or"]
)
_FUNCS = st.sampled_from(
    ["len", "abs", "min", "max", "round", "int", "float", "str", "bool", "lower", "upper"]
)


@st.composite
def spy_expressions(draw: st.DrawFn, depth: int = 0) -> str:
    if depth > 3:
        return draw(_SPY_TEXT)
    choice = draw(st.integers(0, 5))
    if choice == 0:
        return draw(_SPY_TEXT)
    sub = spy_expressions(depth + 1)
    if choice == 1:
        return f"({draw(sub)} {draw(_OPS)} {draw(sub)})"
    if choice == 2:
        return f"{draw(_FUNCS)}({draw(sub)})"
    if choice == 3:
        key = draw(st.sampled_from(["x", "length", "spy", "inner", "__class__"]))
        return f"({draw(sub)})[{key!r}]"
    if choice == 4:
        return f"({draw(sub)})[{draw(st.integers(-1, 2))}]"
    return f"{draw(st.sampled_from(['-', 'not ', '!']))}({draw(sub)})"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spy_expressions())
def test_random_expressions_never_touch_spies(text: str) -> None:
    TOUCHED.clear()
    evaluate_quietly(text, spy_scope())
    assert foreign_touches() == [], text
