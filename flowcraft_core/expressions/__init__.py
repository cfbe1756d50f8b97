"""The safe expression language of edge conditions, transforms and loop conditions (SPEC 6).

A hand-written tokenizer and recursive-descent parser build a small tree, which is compiled
into nested closures; Python's ``eval``/``compile`` are never involved. Values are handled as
JSON data: containers are read only through ``Mapping.get``, ``len`` and list indexing, and no
Python attribute is ever read.

Choices the spec leaves open:

* Numbers use JSON syntax without a sign: ``0``, ``12``, ``1.5``, ``2e-3``; ``.5``, ``1.``
  and ``01`` are syntax errors.
* ``%`` is Python's floored modulo (the result takes the divisor's sign).
* ``round`` rounds half away from zero (``round(2.5) == 3``); ``round(x)`` gives an int.
* ``int``/``float`` also accept a bool (0/1) and a decimal string; ``str`` of a non-string
  is compact JSON text (``str(null) == "null"``, ``str([1, 2]) == "[1,2]"``).
* NaN (only reachable through scope data) is falsy, as in JavaScript.
* Trailing commas are allowed in lists, dicts and calls; duplicate dict keys are an error.
* ``x in mapping`` is ``mapping.get(x, <sentinel>)`` and a non-string needle gives false;
  ``len``, ``==`` and ``str`` of a mapping iterate its keys and read values with ``get``.
* ``a["k"]`` is ``a.k`` in every case, so ``items["length"]`` is a length too; ``"abc"[0]``
  is null (only lists and tuples are indexed).
"""

from ._evaluator import (
    Compiled,
    CompiledExpression,
    Evaluator,
    SafeEvaluator,
    compile_expression,
)
from ._values import truthy

__all__ = [
    "Compiled",
    "CompiledExpression",
    "Evaluator",
    "SafeEvaluator",
    "compile_expression",
    "truthy",
]
