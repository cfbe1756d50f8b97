"""JSON value kinds, truthiness, deep equality and JSON text.

Everything here classifies a value by ``type(value)`` only. The value itself is never asked
anything (no ``__class__``, ``__eq__``, ``__bool__``, ``__getattr__``), so an arbitrary object
that reaches an expression through the scope is inert: it is of kind OTHER and only ever
compared by identity.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from typing import Any, Final

from flowcraft_core.errors import ExpressionError

#: Most items a string or list built by an expression may hold (SPEC 6.4).
MAX_ITEMS: Final = 1_000_000

NULL: Final = 0
BOOL: Final = 1
NUMBER: Final = 2
STRING: Final = 3
LIST: Final = 4
DICT: Final = 5
OTHER: Final = 6

_EXACT: Final[dict[type, int]] = {
    type(None): NULL,
    bool: BOOL,
    int: NUMBER,
    float: NUMBER,
    str: STRING,
    list: LIST,
    tuple: LIST,
    dict: DICT,
}
_KIND_NAMES: Final = ("null", "bool", "number", "str", "list", "dict", "object")

#: Scalar types whose Python ``==`` already is JSON equality when both sides share the type.
SCALAR_TYPES: Final[frozenset[type]] = frozenset({type(None), bool, int, float, str})
NUMBER_TYPES: Final[frozenset[type]] = frozenset({int, float})

#: Sentinel for "key absent" in ``Mapping.get(key, MISSING)``.
MISSING: Final = object()


def kind(value: Any) -> int:
    """Classify ``value`` as one of the JSON kinds (or OTHER) from its type alone."""
    k = _EXACT.get(type(value))
    if k is not None:
        return k
    return _subclass_kind(type(value))


def _subclass_kind(t: type) -> int:
    # bool cannot be subclassed, so int subclasses here are genuine numbers.
    if issubclass(t, (int, float)):
        return NUMBER
    if issubclass(t, str):
        return STRING
    if issubclass(t, (list, tuple)):
        return LIST
    if issubclass(t, Mapping):
        return DICT
    return OTHER


def type_name(value: Any) -> str:
    """JSON type name for messages: null, bool, int, float, str, list, dict (or object)."""
    k = kind(value)
    if k == NUMBER:
        return "float" if issubclass(type(value), float) else "int"
    return _KIND_NAMES[k]


def truthy(value: Any) -> bool:
    """SPEC 6.3 truthiness (TypeScript rules): false, null, 0, 0.0, NaN and "" are falsy.

    Everything else, including ``[]``, ``{}`` and unknown objects, is truthy.
    """
    if value is None or value is False or value is True:
        return value is True
    k = kind(value)
    if k == NUMBER:
        return bool(value != 0 and value == value)  # NaN is falsy, as in JavaScript
    if k == STRING:
        return len(value) > 0
    return True


def json_equal(a: Any, b: Any) -> bool:
    """Deep JSON equality without coercion: ``1 == 1.0`` but ``True != 1`` and ``"1" != 1``.

    Iterative, so deeply nested data cannot exhaust the Python stack.
    """
    stack = [(a, b)]
    while stack:
        x, y = stack.pop()
        if x is y:
            continue
        kx = kind(x)
        if kx != kind(y):
            return False
        if kx == NUMBER or kx == STRING or kx == BOOL:
            if x != y:
                return False
        elif kx == LIST:
            if len(x) != len(y):
                return False
            stack.extend(zip(x, y, strict=True))
        elif kx == DICT:
            if len(x) != len(y):
                return False
            for key, value in mapping_items(x):
                other = y.get(key, MISSING)
                if other is MISSING:
                    return False
                stack.append((value, other))
        elif kx == OTHER:
            return False  # unknown objects are equal only to themselves (checked above)
    return True


def mapping_items(mapping: Mapping[Any, Any]) -> Iterable[tuple[Any, Any]]:
    """Items of a mapping, read with ``get`` (a view's ``get`` may resolve more than ``[]``)."""
    if type(mapping) is dict:
        return mapping.items()
    return ((key, mapping.get(key)) for key in mapping)


def _json_default(value: Any) -> Any:
    if issubclass(type(value), Mapping):
        return dict(mapping_items(value))
    raise TypeError(f"{type_name(value)} is not JSON data")


def to_json_text(value: Any) -> str:
    """Compact JSON text (like JavaScript's ``JSON.stringify``), capped at MAX_ITEMS."""
    k = kind(value)
    if k == OTHER:
        # json.dumps would run isinstance() on the object itself, which reads its __class__.
        raise ExpressionError(f"cannot convert {type_name(value)} to str: it is not JSON data")
    if k == DICT and type(value) is not dict:
        value = dict(mapping_items(value))
    try:
        text = json.dumps(
            value,
            ensure_ascii=False,
            allow_nan=False,
            separators=(",", ":"),
            default=_json_default,
        )
    except (TypeError, ValueError, RecursionError) as exc:
        raise ExpressionError(f"cannot convert {type_name(value)} to str: {exc}") from None
    check_size(len(text))
    return text


def check_size(size: int) -> None:
    """Raise if a string or list result would exceed MAX_ITEMS."""
    if size > MAX_ITEMS:
        raise ExpressionError(f"result too large ({size} items, the limit is {MAX_ITEMS})")


def check_finite(value: float) -> float:
    """Raise on inf/nan: a non-finite number is not JSON data."""
    if not math.isfinite(value):
        raise ExpressionError("arithmetic result is not a finite number")
    return value
