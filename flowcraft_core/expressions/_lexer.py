"""Tokenizer for the expression language (SPEC 6.2).

Hand-written so that every rejected construct (``**``, ``=``, ``=>``, ``?:``, dunder names) fails
with its own message and a 1-based column, before the parser sees it.
"""

from __future__ import annotations

import math
import string
from dataclasses import dataclass
from typing import Any, Final, NoReturn

from flowcraft_core.errors import ExpressionSyntaxError

NAME: Final = "name"
NUMBER: Final = "number"
STRING: Final = "string"
OP: Final = "op"
END: Final = "end"


@dataclass(frozen=True, slots=True)
class Token:
    """One token; ``value`` is the name, decoded number or string, or operator text."""

    kind: str
    value: Any
    pos: int  # 0-based offset into the source
    text: str  # the source text of the token, for messages


_NAME_START: Final = frozenset(string.ascii_letters + "_$")
_NAME_CHARS: Final = _NAME_START | frozenset(string.digits)
_DIGITS: Final = frozenset(string.digits)
_HEX: Final = frozenset(string.hexdigits)
_SPACE: Final = frozenset(" \t\r\n")
_ESCAPES: Final = {"\\": "\\", "'": "'", '"': '"', "n": "\n", "t": "\t"}

_OPS3: Final = ("===", "!==")
_REJECTED2: Final = {
    "**": "'**' is not allowed",
    "//": "'//' is not allowed (use int(a / b))",
    "=>": "lambdas are not allowed",
    ":=": "assignment is not allowed",
}
_OPS2: Final = ("==", "!=", "<=", ">=", "&&", "||")
_REJECTED1: Final = {
    "=": "assignment is not allowed (use '==' to compare)",
    "?": "conditional expressions are not allowed (use 'and' / 'or')",
    "&": "unexpected '&' (use 'and' or '&&')",
    "|": "unexpected '|' (use 'or' or '||')",
    ";": "unexpected ';' (an expression is a single expression)",
}
_OPS1: Final = frozenset("<>!+-*/%()[]{},:.")
# Tokens after which '.' is a member access rather than the start of a number like ".5".
_OPERAND_END: Final = frozenset(")]}")


def _fail(text: str, message: str, pos: int) -> NoReturn:
    raise ExpressionSyntaxError(message, expression=text, column=pos + 1)


def tokenize(text: str) -> list[Token]:
    """Split ``text`` into tokens, ending with an END token."""
    tokens: list[Token] = []
    n = len(text)
    i = 0
    while i < n:
        c = text[i]
        if c in _SPACE:
            i += 1
            continue
        start = i
        if c in _NAME_START:
            while i < n and text[i] in _NAME_CHARS:
                i += 1
            word = text[start:i]
            if word.startswith("__"):
                _fail(text, f"names starting with '__' are not allowed ({word!r})", start)
            tokens.append(Token(NAME, word, start, word))
        elif c in _DIGITS:
            i, number = _number(text, start)
            tokens.append(Token(NUMBER, number, start, text[start:i]))
        elif c == '"' or c == "'":
            i, value = _string(text, start)
            tokens.append(Token(STRING, value, start, text[start:i]))
        elif text.startswith(_OPS3, i):
            i += 3
            tokens.append(Token(OP, text[start:i], start, text[start:i]))
        elif text[i : i + 2] in _REJECTED2:
            _fail(text, _REJECTED2[text[i : i + 2]], start)
        elif text.startswith(_OPS2, i):
            i += 2
            tokens.append(Token(OP, text[start:i], start, text[start:i]))
        elif c in _REJECTED1:
            _fail(text, _REJECTED1[c], start)
        elif c in _OPS1:
            if c == "." and i + 1 < n and text[i + 1] in _DIGITS and not _after_operand(tokens):
                _fail(text, "a number needs a digit before its decimal point", start)
            i += 1
            tokens.append(Token(OP, c, start, c))
        else:
            _fail(text, f"unexpected character {c!r}", start)
    tokens.append(Token(END, None, n, ""))
    return tokens


def _after_operand(tokens: list[Token]) -> bool:
    if not tokens:
        return False
    last = tokens[-1]
    return last.kind != OP or last.value in _OPERAND_END


def _number(text: str, start: int) -> tuple[int, int | float]:
    """JSON number syntax without the sign (unary minus handles that): 0, 12, 1.5, 2e-3."""
    n = len(text)
    i = start + 1
    if text[start] != "0":
        while i < n and text[i] in _DIGITS:
            i += 1
    is_float = False
    if i < n and text[i] == ".":
        if i + 1 < n and text[i + 1] in _DIGITS:
            is_float = True
            i += 2
            while i < n and text[i] in _DIGITS:
                i += 1
        elif i + 1 < n and text[i + 1] in _NAME_START:
            _fail(text, "member access on a number literal is not allowed", i)
        else:
            _fail(text, "a decimal point must be followed by a digit", i)
    if i < n and text[i] in "eE":
        j = i + 1
        if j < n and text[j] in "+-":
            j += 1
        if j < n and text[j] in _DIGITS:
            is_float = True
            i = j
            while i < n and text[i] in _DIGITS:
                i += 1
        else:
            _fail(text, "an exponent needs digits", i)
    if i < n and text[i] in _NAME_CHARS:
        _fail(text, f"invalid number {text[start : i + 1]!r}", start)
    literal = text[start:i]
    if not is_float:
        return i, int(literal)
    value = float(literal)
    if not math.isfinite(value):
        _fail(text, f"number {literal!r} is out of range", start)
    return i, value


def _string(text: str, start: int) -> tuple[int, str]:
    """A quoted string with the escapes of SPEC 6.2; a \\u surrogate pair becomes one char."""
    quote = text[start]
    n = len(text)
    parts: list[str] = []
    i = start + 1
    while True:
        if i >= n:
            _fail(text, "unterminated string", start)
        c = text[i]
        if c == quote:
            return i + 1, "".join(parts)
        if c != "\\":
            j = i + 1
            while j < n and text[j] != quote and text[j] != "\\":
                j += 1
            parts.append(text[i:j])
            i = j
            continue
        if i + 1 >= n:
            _fail(text, "unterminated string", start)
        e = text[i + 1]
        if e in _ESCAPES:
            parts.append(_ESCAPES[e])
            i += 2
        elif e == "u":
            code = _hex4(text, i)
            i += 6
            if 0xD800 <= code < 0xDC00 and text.startswith("\\u", i):
                low = _hex4(text, i)
                if 0xDC00 <= low < 0xE000:
                    code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                    i += 6
            parts.append(chr(code))
        else:
            _fail(text, f"invalid escape {text[i : i + 2]!r} in string", i)


def _hex4(text: str, i: int) -> int:
    digits = text[i + 2 : i + 6]
    if len(digits) != 4 or not all(d in _HEX for d in digits):
        _fail(text, "'\\u' must be followed by 4 hex digits", i)
    return int(digits, 16)
