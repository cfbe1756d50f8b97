"""The expression syntax tree.

Chains (``a + b - c``, ``a and b and c``, ``a.b[0].c``) are flat nodes rather than nested
binary ones, so a 2,000-character expression is at most about 32 nesting levels deep and
neither the compiler nor the compiled closures can run into Python's recursion limit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Const:
    """A number, string, boolean or null literal."""

    value: Any


@dataclass(frozen=True, slots=True)
class Name:
    """A bare name, read with ``scope.get(name)``."""

    name: str


@dataclass(frozen=True, slots=True)
class Key:
    """A constant lookup step: ``.name`` or ``["name"]``."""

    key: str


@dataclass(frozen=True, slots=True)
class Index:
    """A computed lookup step: ``[expr]``."""

    index: Node


@dataclass(frozen=True, slots=True)
class Path:
    """``base`` followed by one or more lookup steps."""

    base: Node
    steps: tuple[Key | Index, ...]


@dataclass(frozen=True, slots=True)
class Call:
    """A call of an allow-listed function."""

    name: str
    args: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class ListLit:
    """``[a, b, ...]``."""

    items: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class DictLit:
    """``{"k": v, ...}`` with string-literal keys."""

    pairs: tuple[tuple[str, Node], ...]


@dataclass(frozen=True, slots=True)
class Not:
    """``not x`` / ``!x``."""

    operand: Node


@dataclass(frozen=True, slots=True)
class Neg:
    """``-x``."""

    operand: Node


@dataclass(frozen=True, slots=True)
class BoolOp:
    """``a and b and ...`` or ``a or b or ...``; ``op`` is "and" or "or"."""

    op: str
    operands: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Arith:
    """``first (op operand)*`` for one precedence level of ``+ -`` or ``* / %``."""

    first: Node
    rest: tuple[tuple[str, Node], ...]


@dataclass(frozen=True, slots=True)
class Compare:
    """``left op right``; ``op`` is normalised (``===`` -> ``==``, ``!==`` -> ``!=``)."""

    op: str
    left: Node
    right: Node


Node = Const | Name | Path | Call | ListLit | DictLit | Not | Neg | BoolOp | Arith | Compare


def children(node: Node | Key | Index) -> tuple[Node, ...]:
    """The direct sub-expressions of ``node``."""
    match node:
        case Const() | Name() | Key():
            return ()
        case Index(index=sub) | Not(operand=sub) | Neg(operand=sub):
            return (sub,)
        case Path(base=base, steps=steps):
            return (base, *(s.index for s in steps if isinstance(s, Index)))
        case Call(args=items) | ListLit(items=items) | BoolOp(operands=items):
            return items
        case DictLit(pairs=pairs):
            return tuple(value for _, value in pairs)
        case Arith(first=first, rest=rest):
            return (first, *(operand for _, operand in rest))
        case Compare(left=left, right=right):
            return (left, right)
    raise AssertionError(node)  # pragma: no cover


def names(root: Node) -> frozenset[str]:
    """Bare names the expression reads (not function names, not keys after '.')."""
    found: set[str] = set()
    stack: list[Node] = [root]
    while stack:
        node = stack.pop()
        if isinstance(node, Name):
            found.add(node.name)
        stack.extend(children(node))
    return frozenset(found)
