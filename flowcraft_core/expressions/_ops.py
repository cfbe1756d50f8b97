"""Lookups and operators (SPEC 6.3).

Lookups never raise and touch containers only through ``Mapping.get``, ``len`` and list
indexing. Operators check JSON types first and raise ``ExpressionError`` with JSON type names;
each has a fast path for the common exact types, because conditions run in the engine's hot loop.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

from flowcraft_core.errors import ExpressionError

from ._values import (
    DICT,
    LIST,
    MISSING,
    NUMBER,
    NUMBER_TYPES,
    SCALAR_TYPES,
    STRING,
    check_finite,
    check_size,
    json_equal,
    kind,
    type_name,
)

BinaryOp = Callable[[Any, Any], Any]

# --- lookups ---------------------------------------------------------------------------------


def member(obj: Any, key: str) -> Any:
    """``obj.key`` / ``obj["key"]``: a mapping key, or ``.length`` of a list or string."""
    t = type(obj)
    if t is dict or issubclass(t, Mapping):
        return obj.get(key)
    if key == "length" and (t is list or t is str or issubclass(t, (list, tuple, str))):
        return len(obj)
    return None


def index(obj: Any, key: Any) -> Any:
    """``obj[key]``: string keys behave like ``.key``; int keys read a list item, else None."""
    tk = type(key)
    if tk is str:
        return member(obj, key)
    if tk is int or (tk is not bool and issubclass(tk, int)):
        t = type(obj)
        if t is list or t is tuple or issubclass(t, (list, tuple)):
            if 0 <= key < len(obj):
                return obj[key]
        return None
    if issubclass(tk, str):
        return member(obj, str.__str__(key))
    return None


# --- arithmetic ------------------------------------------------------------------------------


def _numbers(a: Any, b: Any) -> bool:
    return kind(a) == NUMBER and kind(b) == NUMBER


def add(a: Any, b: Any) -> Any:
    """Numbers add; two strings or two lists concatenate (size-capped)."""
    ta = type(a)
    tb = type(b)
    if ta is int and tb is int:
        return a + b
    if ta is str and tb is str:
        check_size(len(a) + len(b))
        return a + b
    ka = kind(a)
    kb = kind(b)
    if ka == NUMBER and kb == NUMBER:
        result = a + b
        return check_finite(result) if type(result) is not int else result
    if ka == STRING and kb == STRING:
        check_size(len(a) + len(b))
        return str.__str__(a) + str.__str__(b)
    if ka == LIST and kb == LIST:
        check_size(len(a) + len(b))
        return [*a, *b]
    raise ExpressionError(f"cannot add {type_name(a)} and {type_name(b)}")


def sub(a: Any, b: Any) -> Any:
    """Numeric subtraction."""
    if not _numbers(a, b):
        raise ExpressionError(f"cannot subtract {type_name(b)} from {type_name(a)}")
    result = a - b
    return check_finite(result) if type(result) is not int else result


def mul(a: Any, b: Any) -> Any:
    """Numeric multiplication (no string or list repetition)."""
    if not _numbers(a, b):
        raise ExpressionError(f"cannot multiply {type_name(a)} by {type_name(b)}")
    result = a * b
    return check_finite(result) if type(result) is not int else result


def div(a: Any, b: Any) -> float:
    """True division; always a float."""
    if not _numbers(a, b):
        raise ExpressionError(f"cannot divide {type_name(a)} by {type_name(b)}")
    if b == 0:
        raise ExpressionError("division by zero")
    return check_finite(a / b)


def mod(a: Any, b: Any) -> Any:
    """Python (floored) modulo: the result has the sign of the divisor."""
    if not _numbers(a, b):
        raise ExpressionError(f"cannot take {type_name(a)} modulo {type_name(b)}")
    if b == 0:
        raise ExpressionError("modulo by zero")
    result = a % b
    return check_finite(result) if type(result) is not int else result


def neg(a: Any) -> Any:
    """Unary minus on a number."""
    if kind(a) != NUMBER:
        raise ExpressionError(f"cannot negate {type_name(a)}")
    return -a


ARITHMETIC: Final[dict[str, BinaryOp]] = {"+": add, "-": sub, "*": mul, "/": div, "%": mod}

# --- comparison ------------------------------------------------------------------------------


def eq(a: Any, b: Any) -> bool:
    """``==`` / ``===``: deep JSON equality."""
    ta = type(a)
    tb = type(b)
    if ta in SCALAR_TYPES and tb in SCALAR_TYPES:
        if ta is tb:
            return bool(a == b)
        return ta in NUMBER_TYPES and tb in NUMBER_TYPES and bool(a == b)
    return json_equal(a, b)


def ne(a: Any, b: Any) -> bool:
    """``!=`` / ``!==``."""
    return not eq(a, b)


def _ordered(a: Any, b: Any) -> bool:
    ka = kind(a)
    if ka == kind(b) and (ka == NUMBER or ka == STRING):
        return True
    raise ExpressionError(f"cannot compare {type_name(a)} with {type_name(b)}")


def lt(a: Any, b: Any) -> bool:
    """``<`` on two numbers or two strings."""
    return _ordered(a, b) and bool(a < b)


def le(a: Any, b: Any) -> bool:
    """``<=`` on two numbers or two strings."""
    return _ordered(a, b) and bool(a <= b)


def gt(a: Any, b: Any) -> bool:
    """``>`` on two numbers or two strings."""
    return _ordered(a, b) and bool(a > b)


def ge(a: Any, b: Any) -> bool:
    """``>=`` on two numbers or two strings."""
    return _ordered(a, b) and bool(a >= b)


def contains(needle: Any, container: Any) -> bool:
    """``in``: list membership (JSON equality), substring, or mapping key."""
    k = kind(container)
    if k == LIST:
        return any(eq(needle, item) for item in container)
    if k == STRING:
        if kind(needle) != STRING:
            raise ExpressionError(f"cannot test whether {type_name(needle)} is in str")
        return str.__str__(needle) in container
    if k == DICT:
        if kind(needle) != STRING:
            return False
        return container.get(needle, MISSING) is not MISSING
    got = type_name(container)
    raise ExpressionError(f"'in' needs a list, str or dict on the right, not {got}")


def not_contains(needle: Any, container: Any) -> bool:
    """``not in``."""
    return not contains(needle, container)


COMPARISONS: Final[dict[str, BinaryOp]] = {
    "==": eq,
    "!=": ne,
    "<": lt,
    "<=": le,
    ">": gt,
    ">=": ge,
    "in": contains,
    "not in": not_contains,
}
