"""Recursive-descent parser for the grammar of SPEC 6.2.

Nesting (brackets, parentheses, braces, unary operators) is counted while parsing and capped at
MAX_DEPTH, which also bounds the parser's own recursion; operator chains are loops.
"""

from __future__ import annotations

from typing import Final, NoReturn

from flowcraft_core.errors import ExpressionSyntaxError

from ._ast import (
    Arith,
    BoolOp,
    Call,
    Compare,
    Const,
    DictLit,
    Index,
    Key,
    ListLit,
    Name,
    Neg,
    Node,
    Not,
    Path,
)
from ._functions import FUNCTIONS, arity_error
from ._lexer import END, NAME, NUMBER, OP, STRING, Token, tokenize

MAX_LENGTH: Final = 2000
MAX_DEPTH: Final = 32

_CONSTANTS: Final = {
    "true": True,
    "false": False,
    "null": None,
    "True": True,
    "False": False,
    "None": None,
}
_WORD_OPERATORS: Final = frozenset({"and", "or", "not", "in"})
_COMPARE_OPS: Final = {
    "==": "==",
    "===": "==",
    "!=": "!=",
    "!==": "!=",
    "<": "<",
    "<=": "<=",
    ">": ">",
    ">=": ">=",
}


def parse(text: str) -> Node:
    """Parse ``text`` into a tree, or raise ExpressionSyntaxError with a 1-based column."""
    if len(text) > MAX_LENGTH:
        raise ExpressionSyntaxError(
            f"expression is longer than {MAX_LENGTH} characters ({len(text)})",
            expression=text,
            column=MAX_LENGTH + 1,
        )
    return _Parser(text).parse()


class _Parser:
    __slots__ = ("depth", "i", "text", "tokens")

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.i = 0
        self.depth = 0

    # --- helpers ----------------------------------------------------------------------------

    def peek(self, ahead: int = 0) -> Token:
        return self.tokens[min(self.i + ahead, len(self.tokens) - 1)]

    def advance(self) -> Token:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def at_op(self, *ops: str) -> bool:
        tok = self.tokens[self.i]
        return tok.kind == OP and tok.value in ops

    def at_word(self, *words: str) -> bool:
        tok = self.tokens[self.i]
        return tok.kind == NAME and tok.value in words

    def fail(self, message: str, tok: Token) -> NoReturn:
        raise ExpressionSyntaxError(message, expression=self.text, column=tok.pos + 1)

    def unexpected(self, tok: Token, expected: str | None = None) -> NoReturn:
        if tok.kind == NAME and tok.value == "for":
            self.fail("comprehensions are not allowed", tok)
        if tok.kind == NAME and tok.value in ("if", "else"):
            self.fail("conditional expressions are not allowed (use 'and' / 'or')", tok)
        if tok.kind == END:
            message = "unexpected end of expression"
        else:
            shown = tok.text if len(tok.text) <= 20 else tok.text[:17] + "..."
            message = f"unexpected {shown!r}"
        if expected is not None:
            message += f", expected {expected}"
        self.fail(message, tok)

    def expect(self, op: str) -> None:
        if self.at_op(op):
            self.i += 1
        else:
            self.unexpected(self.peek(), repr(op))

    def enter(self, tok: Token) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            self.fail(f"expression nests more than {MAX_DEPTH} levels deep", tok)

    # --- grammar ----------------------------------------------------------------------------

    def parse(self) -> Node:
        if self.peek().kind == END:
            self.fail("empty expression", Token(END, None, 0, ""))
        node = self.or_()
        tok = self.peek()
        if tok.kind != END:
            if tok.kind == OP and tok.value == ",":
                self.fail("tuples are not allowed", tok)
            self.unexpected(tok)
        return node

    def or_(self) -> Node:
        first = self.and_()
        if not (self.at_word("or") or self.at_op("||")):
            return first
        operands = [first]
        while self.at_word("or") or self.at_op("||"):
            self.i += 1
            operands.append(self.and_())
        return BoolOp("or", tuple(operands))

    def and_(self) -> Node:
        first = self.not_()
        if not (self.at_word("and") or self.at_op("&&")):
            return first
        operands = [first]
        while self.at_word("and") or self.at_op("&&"):
            self.i += 1
            operands.append(self.not_())
        return BoolOp("and", tuple(operands))

    def not_(self) -> Node:
        if self.at_word("not") or self.at_op("!"):
            tok = self.advance()
            self.enter(tok)
            operand = self.not_()
            self.depth -= 1
            return Not(operand)
        return self.compare()

    def compare_op(self) -> str | None:
        """Consume a comparison operator if one is next."""
        tok = self.peek()
        if tok.kind == OP and tok.value in _COMPARE_OPS:
            self.i += 1
            return _COMPARE_OPS[tok.value]
        if tok.kind == NAME and tok.value == "in":
            self.i += 1
            return "in"
        if tok.kind == NAME and tok.value == "not":
            after = self.peek(1)
            if after.kind == NAME and after.value == "in":
                self.i += 2
                return "not in"
        return None

    def compare(self) -> Node:
        left = self.sum_()
        op = self.compare_op()
        if op is None:
            return left
        right = self.sum_()
        tok = self.peek()
        if self.compare_op() is not None:
            self.fail("chained comparisons are not allowed (combine them with 'and')", tok)
        return Compare(op, left, right)

    def sum_(self) -> Node:
        first = self.product()
        rest: list[tuple[str, Node]] = []
        while self.at_op("+", "-"):
            op = self.advance().value
            rest.append((op, self.product()))
        return Arith(first, tuple(rest)) if rest else first

    def product(self) -> Node:
        first = self.unary()
        rest: list[tuple[str, Node]] = []
        while self.at_op("*", "/", "%"):
            op = self.advance().value
            rest.append((op, self.unary()))
        return Arith(first, tuple(rest)) if rest else first

    def unary(self) -> Node:
        if not self.at_op("-"):
            return self.postfix()
        tok = self.advance()
        self.enter(tok)
        operand = self.unary()
        self.depth -= 1
        if isinstance(operand, Const) and type(operand.value) in (int, float):
            return Const(-operand.value)
        return Neg(operand)

    def postfix(self) -> Node:
        base = self.primary()
        steps: list[Key | Index] = []
        while True:
            tok = self.peek()
            if tok.kind != OP:
                break
            if tok.value == ".":
                self.i += 1
                name = self.peek()
                if name.kind != NAME:
                    self.fail("expected a name after '.'", name)
                self.i += 1
                if self.at_op("("):
                    self.fail("method calls are not allowed", self.peek())
                steps.append(Key(name.value))
            elif tok.value == "[":
                self.i += 1
                self.enter(tok)
                if self.at_op("]"):
                    self.fail("expected an index inside '[]'", self.peek())
                sub = self.or_()
                if self.at_op(":"):
                    self.fail("slices are not allowed", self.peek())
                self.expect("]")
                self.depth -= 1
                if isinstance(sub, Const) and type(sub.value) is str:
                    steps.append(Key(sub.value))
                else:
                    steps.append(Index(sub))
            elif tok.value == "(":
                names = ", ".join(FUNCTIONS)
                self.fail(f"only the functions {names} can be called, as NAME(args)", tok)
            else:
                break
        return Path(base, tuple(steps)) if steps else base

    def primary(self) -> Node:
        tok = self.advance()
        if tok.kind == NUMBER or tok.kind == STRING:
            return Const(tok.value)
        if tok.kind == NAME:
            word = tok.value
            if word in _CONSTANTS:
                return Const(_CONSTANTS[word])
            if word in _WORD_OPERATORS:
                self.unexpected(tok)
            if word == "lambda" and (self.peek().kind == NAME or self.at_op(":")):
                self.fail("lambdas are not allowed", tok)
            if self.at_op("("):
                return self.call(tok)
            return Name(word)
        if tok.kind == OP:
            if tok.value == "(":
                return self.group(tok)
            if tok.value == "[":
                return self.list_literal(tok)
            if tok.value == "{":
                return self.dict_literal(tok)
        self.unexpected(tok)

    def group(self, opener: Token) -> Node:
        self.enter(opener)
        if self.at_op(")"):
            self.fail("empty parentheses", self.peek())
        node = self.or_()
        if self.at_op(","):
            self.fail("tuples are not allowed", self.peek())
        self.expect(")")
        self.depth -= 1
        return node

    def call(self, name: Token) -> Node:
        if name.value not in FUNCTIONS:
            allowed = ", ".join(FUNCTIONS)
            self.fail(f"unknown function {name.value!r} (allowed: {allowed})", name)
        opener = self.advance()
        self.enter(opener)
        args = self.items(")")
        self.depth -= 1
        problem = arity_error(name.value, len(args))
        if problem is not None:
            self.fail(problem, name)
        return Call(name.value, tuple(args))

    def list_literal(self, opener: Token) -> Node:
        self.enter(opener)
        items = self.items("]")
        self.depth -= 1
        return ListLit(tuple(items))

    def items(self, closer: str) -> list[Node]:
        """Comma-separated expressions up to ``closer`` (a trailing comma is allowed)."""
        items: list[Node] = []
        while not self.at_op(closer):
            items.append(self.or_())
            if self.at_op(","):
                self.i += 1
                continue
            self.expect(closer)
            return items
        self.i += 1
        return items

    def dict_literal(self, opener: Token) -> Node:
        self.enter(opener)
        pairs: list[tuple[str, Node]] = []
        seen: set[str] = set()
        while not self.at_op("}"):
            key = self.advance()
            if key.kind == END:
                self.unexpected(key, "a string key or '}'")
            if key.kind != STRING:
                self.fail("dict keys must be string literals", key)
            if key.value in seen:
                self.fail(f"duplicate key {key.value!r}", key)
            seen.add(key.value)
            self.expect(":")
            pairs.append((key.value, self.or_()))
            if self.at_op(","):
                self.i += 1
                continue
            self.expect("}")
            break
        else:
            self.i += 1
        self.depth -= 1
        return DictLit(tuple(pairs))
