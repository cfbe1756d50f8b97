"""Turn a syntax tree into nested closures.

Closures avoid a per-node dispatch at evaluation time; the shapes conditions actually use
(``name.key.key``, comparison with a literal, two-operand ``and``/``or``) get specialised
closures because they run once per edge per activation.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ._ast import (
    Arith,
    BoolOp,
    Call,
    Compare,
    Const,
    DictLit,
    Key,
    ListLit,
    Name,
    Neg,
    Node,
    Not,
    Path,
)
from ._functions import FUNCTIONS
from ._ops import ARITHMETIC, COMPARISONS, index, member, neg
from ._values import NUMBER_TYPES, SCALAR_TYPES, truthy

Scope = Mapping[str, Any]
Fn = Callable[[Scope], Any]

_KEY, _CONST_INDEX, _INDEX = 0, 1, 2


def build(node: Node) -> Fn:
    """Compile ``node`` into a function of the scope."""
    match node:
        case Const(value=value):
            return _const(value)
        case Name(name=name):
            return _name(name)
        case Path():
            return _path(node)
        case Call(name=name, args=args):
            return _call(name, tuple(build(arg) for arg in args))
        case ListLit(items=items):
            return _list(tuple(build(item) for item in items))
        case DictLit(pairs=pairs):
            return _dict(tuple((key, build(value)) for key, value in pairs))
        case Not(operand=operand):
            return _not(build(operand))
        case Neg(operand=operand):
            return _neg(build(operand))
        case BoolOp(op=op, operands=operands):
            fns = tuple(build(operand) for operand in operands)
            return _and(fns) if op == "and" else _or(fns)
        case Arith(first=first, rest=rest):
            return _arith(build(first), tuple((ARITHMETIC[op], build(sub)) for op, sub in rest))
        case Compare(op=op, left=left, right=right):
            return _compare(op, left, right)
    raise AssertionError(node)  # pragma: no cover


def _const(value: Any) -> Fn:
    def const(scope: Scope) -> Any:
        return value

    return const


def _name(name: str) -> Fn:
    def lookup(scope: Scope) -> Any:
        return scope.get(name)

    return lookup


def _path(node: Path) -> Fn:
    keys = [step.key for step in node.steps if isinstance(step, Key)]
    if isinstance(node.base, Name) and len(keys) == len(node.steps):
        return _name_keys(node.base.name, tuple(keys))
    base = build(node.base)
    steps: list[tuple[int, Any]] = []
    for step in node.steps:
        if isinstance(step, Key):
            steps.append((_KEY, step.key))
        elif isinstance(step.index, Const):
            steps.append((_CONST_INDEX, step.index.value))
        else:
            steps.append((_INDEX, build(step.index)))
    plan = tuple(steps)

    def path(scope: Scope) -> Any:
        obj = base(scope)
        for mode, payload in plan:
            if mode == _KEY:
                obj = obj.get(payload) if type(obj) is dict else member(obj, payload)
            elif mode == _CONST_INDEX:
                obj = index(obj, payload)
            else:
                obj = index(obj, payload(scope))
        return obj

    return path


def _name_keys(name: str, keys: tuple[str, ...]) -> Fn:
    if len(keys) == 1:
        (k0,) = keys

        def name_key(scope: Scope) -> Any:
            obj = scope.get(name)
            return obj.get(k0) if type(obj) is dict else member(obj, k0)

        return name_key
    if len(keys) == 2:
        k0, k1 = keys

        def name_key_key(scope: Scope) -> Any:
            obj = scope.get(name)
            obj = obj.get(k0) if type(obj) is dict else member(obj, k0)
            return obj.get(k1) if type(obj) is dict else member(obj, k1)

        return name_key_key

    def name_keys(scope: Scope) -> Any:
        obj = scope.get(name)
        for key in keys:
            obj = obj.get(key) if type(obj) is dict else member(obj, key)
        return obj

    return name_keys


def _call(name: str, args: tuple[Fn, ...]) -> Fn:
    impl = FUNCTIONS[name].impl
    if len(args) == 1:
        (arg,) = args

        def call1(scope: Scope) -> Any:
            return impl(arg(scope))

        return call1

    def call(scope: Scope) -> Any:
        return impl(*[arg(scope) for arg in args])

    return call


def _list(items: tuple[Fn, ...]) -> Fn:
    def list_literal(scope: Scope) -> list[Any]:
        return [item(scope) for item in items]

    return list_literal


def _dict(pairs: tuple[tuple[str, Fn], ...]) -> Fn:
    def dict_literal(scope: Scope) -> dict[str, Any]:
        return {key: value(scope) for key, value in pairs}

    return dict_literal


def _not(operand: Fn) -> Fn:
    def not_(scope: Scope) -> bool:
        value = operand(scope)
        if value is True or value is False:
            return value is False
        return not truthy(value)

    return not_


def _neg(operand: Fn) -> Fn:
    def negate(scope: Scope) -> Any:
        return neg(operand(scope))

    return negate


def _and(operands: tuple[Fn, ...]) -> Fn:
    if len(operands) == 2:
        left, right = operands

        def and2(scope: Scope) -> Any:
            value = left(scope)
            if value is True or (value is not False and value is not None and truthy(value)):
                return right(scope)
            return value

        return and2

    def and_(scope: Scope) -> Any:
        value = None
        for operand in operands:
            value = operand(scope)
            if value is False or value is None or not truthy(value):
                return value
        return value

    return and_


def _or(operands: tuple[Fn, ...]) -> Fn:
    if len(operands) == 2:
        left, right = operands

        def or2(scope: Scope) -> Any:
            value = left(scope)
            if value is True or (value is not False and value is not None and truthy(value)):
                return value
            return right(scope)

        return or2

    def or_(scope: Scope) -> Any:
        value = None
        for operand in operands:
            value = operand(scope)
            if value is True or (value is not False and value is not None and truthy(value)):
                return value
        return value

    return or_


def _arith(first: Fn, rest: tuple[tuple[Callable[[Any, Any], Any], Fn], ...]) -> Fn:
    if len(rest) == 1:
        ((op, second),) = rest

        def binary(scope: Scope) -> Any:
            return op(first(scope), second(scope))

        return binary

    def chain(scope: Scope) -> Any:
        acc = first(scope)
        for op, operand in rest:
            acc = op(acc, operand(scope))
        return acc

    return chain


def _compare(op: str, left_node: Node, right_node: Node) -> Fn:
    slow = COMPARISONS[op]
    left = build(left_node)
    if isinstance(right_node, Const) and type(right_node.value) in SCALAR_TYPES:
        # Comparison with a literal: decide exact-type cases inline, defer the rest.
        constant = right_node.value
        const_type = type(constant)
        if op in ("<", "<=", ">", ">=") and const_type in NUMBER_TYPES:
            return _ordered_with_number(op, left, constant, slow)
        if op in ("==", "!="):
            negate = op == "!="

            def eq_const(scope: Scope) -> bool:
                value = left(scope)
                if type(value) is const_type:
                    return (value == constant) is not negate
                return bool(slow(value, constant))

            return eq_const
    right = build(right_node)

    def compare(scope: Scope) -> Any:
        return slow(left(scope), right(scope))

    return compare


def _ordered_with_number(op: str, left: Fn, constant: float, slow: Callable[[Any, Any], Any]) -> Fn:
    if op == ">=":

        def ge(scope: Scope) -> Any:
            value = left(scope)
            return value >= constant if type(value) in NUMBER_TYPES else slow(value, constant)

        return ge
    if op == ">":

        def gt(scope: Scope) -> Any:
            value = left(scope)
            return value > constant if type(value) in NUMBER_TYPES else slow(value, constant)

        return gt
    if op == "<=":

        def le(scope: Scope) -> Any:
            value = left(scope)
            return value <= constant if type(value) in NUMBER_TYPES else slow(value, constant)

        return le

    def lt(scope: Scope) -> Any:
        value = left(scope)
        return value < constant if type(value) in NUMBER_TYPES else slow(value, constant)

    return lt
