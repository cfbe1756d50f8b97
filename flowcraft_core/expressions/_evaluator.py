"""The evaluator protocol (SPEC 6.6) and the default safe evaluator."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Protocol, runtime_checkable

from flowcraft_core.errors import ExpressionError, ExpressionSyntaxError

from ._ast import names
from ._compiler import Fn, build
from ._parser import parse


@runtime_checkable
class Compiled(Protocol):
    """A compiled expression: evaluate it against a scope any number of times."""

    def evaluate(self, scope: Mapping[str, Any]) -> Any:
        """Return the value, or raise ExpressionError."""
        ...


@runtime_checkable
class Evaluator(Protocol):
    """What ``evaluator=`` accepts: compile once at load time, evaluate per activation."""

    def compile(self, text: str) -> Compiled:
        """Compile ``text``, or raise ExpressionSyntaxError."""
        ...


@dataclass(frozen=True, slots=True)
class CompiledExpression:
    """An expression compiled by SafeEvaluator; immutable and safe to share between runs.

    ``names`` are the bare top-level names it reads, so callers can tell which context keys or
    node outputs a condition depends on.
    """

    source: str
    names: frozenset[str]
    _fn: Fn = field(repr=False, compare=False)

    def evaluate(self, scope: Mapping[str, Any]) -> Any:
        """Evaluate against ``scope``; every failure surfaces as ExpressionError.

        Bare names are read with ``scope.get(name)`` (missing -> None) and nothing else.
        """
        try:
            return self._fn(scope)
        except ExpressionError:
            raise
        except RecursionError:
            raise ExpressionError("data is nested too deeply to evaluate") from None
        except ArithmeticError as exc:
            raise ExpressionError(f"numeric result out of range: {exc}") from None
        except Exception as exc:
            raise ExpressionError(f"evaluation failed: {type(exc).__name__}: {exc}") from exc

    def __reduce__(self) -> tuple[Any, ...]:
        # Closures do not pickle; the source recompiles to the same expression.
        return (compile_expression, (self.source,))


class SafeEvaluator:
    """The default evaluator: the sandboxed language of SPEC 6 (no Python eval anywhere)."""

    __slots__ = ()

    def compile(self, text: str) -> CompiledExpression:
        """Compile ``text``; raises ExpressionSyntaxError with a 1-based column."""
        return compile_expression(text)

    def __repr__(self) -> str:
        return "SafeEvaluator()"


def compile_expression(text: str) -> CompiledExpression:
    """Compile ``text`` with the safe evaluator (memoised: compiled expressions are immutable)."""
    if not isinstance(text, str):
        raise ExpressionSyntaxError(f"an expression must be a str, not {type(text).__name__}")
    return _compile_cached(str.__str__(text))


@lru_cache(maxsize=4096)
def _compile_cached(text: str) -> CompiledExpression:
    try:
        tree = parse(text)
        return CompiledExpression(text, names(tree), build(tree))
    except RecursionError:
        raise ExpressionSyntaxError(
            "expression nests too deeply", expression=text, column=None
        ) from None
