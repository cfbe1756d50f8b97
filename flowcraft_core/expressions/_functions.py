"""The allow-listed functions (SPEC 6.2): ``len abs min max round int float str bool lower upper``.

Each checks JSON types itself and raises ``ExpressionError`` on anything else, so no Python
builtin is ever applied to an unexpected object. Arity is checked at compile time.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Context, Decimal
from typing import Any, Final

from flowcraft_core.errors import ExpressionError

from ._values import (
    BOOL,
    DICT,
    LIST,
    NUMBER,
    STRING,
    check_finite,
    check_size,
    kind,
    to_json_text,
    truthy,
    type_name,
)


@dataclass(frozen=True, slots=True)
class Function:
    """An allow-listed function and how many arguments it takes."""

    impl: Callable[..., Any]
    min_args: int
    max_args: int | None  # None: unbounded


_INT_TEXT: Final = re.compile(r"[+-]?[0-9]+")
_FLOAT_TEXT: Final = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_SPACE: Final = " \t\r\n"
# Enough digits for any float (309 integer digits) rounded to at most _MAX_NDIGITS places.
_DECIMALS: Final = Context(prec=1200, rounding=ROUND_HALF_UP)
_MAX_NDIGITS: Final = 400


def _len(value: Any) -> int:
    if kind(value) in (STRING, LIST, DICT):
        return len(value)
    raise ExpressionError(f"len() takes a str, list or dict, not {type_name(value)}")


def _abs(value: Any) -> Any:
    if kind(value) != NUMBER:
        raise ExpressionError(f"abs() takes a number, not {type_name(value)}")
    return abs(value)


def _extreme(name: str, args: tuple[Any, ...]) -> Any:
    items: list[Any] | tuple[Any, ...] = args
    if len(args) == 1:
        if kind(args[0]) != LIST:
            got = type_name(args[0])
            raise ExpressionError(f"{name}() of one argument takes a list, not {got}")
        items = list(args[0])
        if not items:
            raise ExpressionError(f"{name}() of an empty list")
    first = kind(items[0])
    for item in items:
        k = kind(item)
        if k != first or k not in (NUMBER, STRING):
            raise ExpressionError(
                f"{name}() needs all numbers or all strings, "
                f"got {type_name(items[0])} and {type_name(item)}"
            )
    return min(items) if name == "min" else max(items)


def _min(*args: Any) -> Any:
    return _extreme("min", args)


def _max(*args: Any) -> Any:
    return _extreme("max", args)


def _round(value: Any, ndigits: Any = None) -> Any:
    """Round half away from zero (not Python's half-to-even): ``round(2.5) == 3``."""
    if kind(value) != NUMBER:
        raise ExpressionError(f"round() takes a number, not {type_name(value)}")
    if ndigits is None:
        places = 0
    elif kind(ndigits) == NUMBER and issubclass(type(ndigits), int):
        places = max(-_MAX_NDIGITS, min(_MAX_NDIGITS, int(ndigits)))
    else:
        raise ExpressionError(f"round() digits must be an int, not {type_name(ndigits)}")
    if issubclass(type(value), int):
        number = int(value)
        if places >= 0:
            return number
        step = 10**-places
        quotient, remainder = divmod(abs(number), step)
        if 2 * remainder >= step:
            quotient += 1
        return (quotient * step) if number >= 0 else -(quotient * step)
    check_finite(value)
    rounded = _DECIMALS.quantize(Decimal(value), Decimal(1).scaleb(-places))
    if ndigits is None:
        return int(rounded)
    return check_finite(float(rounded))


def _int(value: Any) -> int:
    """Truncate a number toward zero, parse an integer string, or map a bool to 0/1."""
    k = kind(value)
    if k == BOOL:
        return int(value)
    if k == NUMBER:
        if issubclass(type(value), float):
            check_finite(value)
            return math.trunc(float(value))
        return int.__index__(value)
    if k == STRING:
        text = str.__str__(value).strip(_SPACE)
        if _INT_TEXT.fullmatch(text) and len(text) <= 4000:
            return int(text)
        raise ExpressionError(f"cannot convert str {_preview(value)} to int")
    raise ExpressionError(f"int() takes a number, str or bool, not {type_name(value)}")


def _float(value: Any) -> float:
    """Convert a number, a decimal string or a bool to a finite float."""
    k = kind(value)
    if k == BOOL:
        return 1.0 if value else 0.0
    if k == NUMBER:
        return check_finite(float(value))
    if k == STRING:
        text = str.__str__(value).strip(_SPACE)
        if _FLOAT_TEXT.fullmatch(text) and len(text) <= 4000:
            return check_finite(float(text))
        raise ExpressionError(f"cannot convert str {_preview(value)} to float")
    raise ExpressionError(f"float() takes a number, str or bool, not {type_name(value)}")


def _str(value: Any) -> str:
    """A string stays itself; anything else becomes compact JSON text (``null``, ``[1,2]``)."""
    if kind(value) == STRING:
        return str.__str__(value)
    return to_json_text(value)


def _bool(value: Any) -> bool:
    return truthy(value)


def _lower(value: Any) -> str:
    if kind(value) != STRING:
        raise ExpressionError(f"lower() takes a str, not {type_name(value)}")
    result = str.lower(value)
    check_size(len(result))
    return result


def _upper(value: Any) -> str:
    if kind(value) != STRING:
        raise ExpressionError(f"upper() takes a str, not {type_name(value)}")
    result = str.upper(value)
    check_size(len(result))
    return result


def _preview(text: str) -> str:
    return repr(text if len(text) <= 40 else text[:37] + "...")


FUNCTIONS: Final[dict[str, Function]] = {
    "len": Function(_len, 1, 1),
    "abs": Function(_abs, 1, 1),
    "min": Function(_min, 1, None),
    "max": Function(_max, 1, None),
    "round": Function(_round, 1, 2),
    "int": Function(_int, 1, 1),
    "float": Function(_float, 1, 1),
    "str": Function(_str, 1, 1),
    "bool": Function(_bool, 1, 1),
    "lower": Function(_lower, 1, 1),
    "upper": Function(_upper, 1, 1),
}


def arity_error(name: str, given: int) -> str | None:
    """Message if ``name`` cannot take ``given`` arguments, else None."""
    fn = FUNCTIONS[name]
    if given >= fn.min_args and (fn.max_args is None or given <= fn.max_args):
        return None
    if fn.max_args is None:
        expected = f"at least {fn.min_args} argument{'s' if fn.min_args != 1 else ''}"
    elif fn.min_args == fn.max_args:
        expected = f"exactly {fn.min_args} argument{'s' if fn.min_args != 1 else ''}"
    else:
        expected = f"{fn.min_args} or {fn.max_args} arguments"
    return f"{name}() takes {expected} ({given} given)"
