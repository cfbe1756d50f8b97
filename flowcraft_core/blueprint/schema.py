"""The blueprint's schema, both ways: a JSON Schema for editors, and violations as Problems.

pydantic describes violations with its own locations (`('nodes', 0, 'inputs', 'constrained-str')`)
and messages. Users write JSON, so each error is mapped back onto the document: the location
becomes a JSON path with the JSON names, union branches collapse into one problem, and the
message says what the value must be. Values JSON cannot hold at all (bytes, sets, NaN, YAML
recursion) are found here too, before pydantic sees them.
"""

from __future__ import annotations

import copy
import functools
import math
from collections.abc import Iterable, Mapping
from typing import Any, Final, NamedTuple

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from flowcraft_core import reserved
from flowcraft_core.typed import params_schemas

from .builtin_params import params_json_schema
from .model import Blueprint, BlueprintMetadata, NodeConfig
from .validate import Issue, Loc

_NODE_ID_PATTERN: Final = r"^[^\x00-\x1f\x7f-\x9f]+$"


def _aliases(model: type[BaseModel]) -> dict[str, str]:
    return {name: f.alias for name, f in model.model_fields.items() if f.alias}


_NODE_CONFIG_ALIASES: Final = _aliases(NodeConfig)
_METADATA_ALIASES: Final = _aliases(BlueprintMetadata)
_CONFIG_MESSAGES: Final[dict[str, str]] = {
    "maxRetries": "must be an integer >= 1",
    "retryDelay": "must be a number >= 0",
    "timeout": "must be a number > 0",
    "backoff": "must be 'fixed' or 'exponential'",
    "joinStrategy": "must be 'all' or 'any'",
}
_TYPE_MESSAGES: Final[dict[str, str]] = {
    "string_type": "must be a string",
    "int_type": "must be an integer",
    "float_type": "must be a number",
    "bool_type": "must be a boolean",
    "dict_type": "must be an object",
    "model_type": "must be an object",
    "model_attributes_type": "must be an object",
    "tuple_type": "must be an array",
    "list_type": "must be an array",
}


class _Located(NamedTuple):
    loc: Loc  # JSON path, union tags removed
    union_at: int | None  # length of `loc` at which a union branch tag was skipped
    tag: str | None
    below_union: int  # path elements after the tag


def schema_issues(exc: ValidationError, doc: dict[str, Any]) -> list[Issue]:
    """Problems for a pydantic ValidationError raised while validating `doc`."""
    issues: list[Issue] = []
    unions: dict[Loc, list[tuple[_Located, ErrorDetails]]] = {}
    for err in exc.errors(include_url=False, include_input=False):
        located = _locate(doc, err)
        if located.union_at is None:
            issues.append(_issue(located.loc, err))
        else:
            unions.setdefault(located.loc[: located.union_at], []).append((located, err))
    for prefix, group in unions.items():
        issues.extend(_union_issues(prefix, group))
    return issues


def _locate(doc: dict[str, Any], err: ErrorDetails) -> _Located:
    """Walk pydantic's location over the document, keeping real keys and dropping union tags."""
    raw = err["loc"]
    loc: list[str | int] = []
    current: object = doc
    union_at: int | None = None
    tag: str | None = None
    below = 0
    for n, element in enumerate(raw):
        if element == "[key]":
            continue
        last = n == len(raw) - 1
        if union_at is None and isinstance(element, str) and _is_union_field(loc):
            union_at, tag = len(loc), element
            continue
        if isinstance(element, int) and isinstance(current, list | tuple):
            current = current[element] if 0 <= element < len(current) else None
            loc.append(element)
        elif isinstance(current, dict) and element in current:
            current = current[element]
            loc.append(_json_name(loc, element, err["type"], last))
        elif union_at is None and isinstance(element, str) and not last:
            union_at, tag = len(loc), element  # a union branch the model grew
            continue
        else:
            current = None
            loc.append(_json_name(loc, element, err["type"], last))
        if union_at is not None:
            below += 1
    return _Located(tuple(loc), union_at, tag, below)


def _is_union_field(loc: list[str | int]) -> bool:
    return len(loc) == 3 and loc[0] == "nodes" and loc[2] == "inputs"


def _json_name(loc: list[str | int], element: str | int, kind: str, last: bool) -> str | int:
    """The JSON name of a model field given by its Python name (`max_retries` -> `maxRetries`)."""
    if isinstance(element, int) or (kind == "extra_forbidden" and last):
        return element
    if len(loc) == 3 and loc[0] == "nodes" and loc[2] == "config":
        return _NODE_CONFIG_ALIASES.get(element, element)
    if len(loc) == 1 and loc[0] == "metadata":
        return _METADATA_ALIASES.get(element, element)
    return element


def _union_issues(prefix: Loc, group: list[tuple[_Located, ErrorDetails]]) -> list[Issue]:
    """One branch's errors when the value had that branch's type, else one INVALID_TYPE."""
    deeper = [_issue(located.loc, err) for located, err in group if located.below_union > 0]
    if deeper:
        return deeper
    values = [_issue(located.loc, err) for located, err in group if not _is_type_error(err)]
    if values:
        return values
    kinds = dict.fromkeys(_describe_tag(located.tag or "") for located, _ in group)
    return [Issue(prefix, "INVALID_TYPE", "must be " + " or ".join(kinds))]


def _describe_tag(tag: str) -> str:
    if tag.startswith("dict"):
        return "an object of strings" if tag.endswith("str]") else "an object"
    for fragment, name in (
        ("str", "a string"),
        ("list", "an array"),
        ("tuple", "an array"),
        ("bool", "a boolean"),
        ("int", "an integer"),
        ("float", "a number"),
    ):
        if fragment in tag:
            return name
    return tag


def _is_type_error(err: ErrorDetails) -> bool:
    return err["type"] in _TYPE_MESSAGES or err["type"].endswith("_type")


def _issue(loc: Loc, err: ErrorDetails) -> Issue:
    kind = err["type"]
    if kind == "missing":
        return Issue(loc, "MISSING_FIELD", "required field missing")
    if kind == "extra_forbidden":
        return Issue(loc, "UNKNOWN_FIELD", f"unknown field {loc[-1]!r}")
    code = "INVALID_TYPE" if _is_type_error(err) else "INVALID_VALUE"
    if loc == ("metadata", "version"):
        code = "INVALID_VALUE"  # SPEC 1.4 lists a non-string version as a bad value
    message = None
    if len(loc) == 4 and loc[0] == "nodes" and loc[2] == "config" and isinstance(loc[3], str):
        message = _CONFIG_MESSAGES.get(loc[3])
    return Issue(loc, code, message or _TYPE_MESSAGES.get(kind) or _value_message(err))


def _value_message(err: ErrorDetails) -> str:
    kind = err["type"]
    ctx: dict[str, Any] = err.get("ctx") or {}
    if kind == "string_too_short":
        size = ctx.get("min_length", 1)
        return "must not be empty" if size == 1 else f"must have at least {size} characters"
    if kind == "string_too_long":
        return f"must have at most {ctx.get('max_length')} characters"
    if kind == "string_pattern_mismatch":
        if ctx.get("pattern") == _NODE_ID_PATTERN:
            return "must not contain control characters"
        return f"must match {ctx.get('pattern')}"
    bounds = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<"}
    for name, symbol in bounds.items():
        if name in ctx:
            bound = ctx[name]
            shown = f"{bound:g}" if isinstance(bound, float) else str(bound)
            return f"must be {symbol} {shown}"
    if kind == "literal_error":
        return f"must be {ctx.get('expected')}"
    if kind == "finite_number":
        return "must be a finite number"
    message = err["msg"]
    if message.startswith("Input should be "):
        return "must be " + message.removeprefix("Input should be ")
    return message[:1].lower() + message[1:]


# --- values JSON cannot hold ---------------------------------------------------------------


#: Nesting limit of a blueprint given as a mapping (JSON and YAML text hit their parsers'
#: limits, about 990 and 500 levels, first and report "nested too deeply").
MAX_DEPTH: Final = 1_000


def non_json_issues(doc: object) -> list[Issue]:
    """Values JSON cannot hold: non-string keys, NaN/Infinity, bytes, sets, recursive aliases.

    Iterative, and visits a container shared through YAML aliases once, so neither deep nesting
    nor a "billion laughs" document can exhaust the stack or the CPU; nesting deeper than
    MAX_DEPTH is a problem (paths are copied per level). Only containers are
    pushed; scalars are checked in place, which keeps this cheap next to pydantic.
    """
    issues: list[Issue] = []
    open_ids: set[int] = set()  # containers on the current path: seeing one again is a cycle
    done_ids: set[int] = set()  # containers already checked
    shared = False
    stack: list[tuple[object, Loc, bool]] = [(doc, (), False)]
    while stack:
        container, loc, leaving = stack.pop()
        key = id(container)
        if leaving:
            open_ids.discard(key)
            done_ids.add(key)
            continue
        if key in open_ids:
            issues.append(Issue(loc, "INVALID_VALUE", "contains itself (a recursive alias)"))
            continue
        if key in done_ids:
            shared = True
            continue
        open_ids.add(key)
        stack.append((container, loc, True))
        if isinstance(container, dict):
            items: Iterable[tuple[str | int, object]] = container.items()
            if not all(isinstance(name, str) for name in container):
                items = _string_keys(container, loc, issues)
        else:
            assert isinstance(container, list | tuple)
            items = enumerate(container)
        for name, value in items:
            kind = type(value)
            if kind is str or kind is int or kind is bool or value is None:
                continue
            if kind is dict or kind is list or isinstance(value, dict | list | tuple):
                if len(loc) >= MAX_DEPTH:  # deeper would also cost depth² copying paths
                    message = f"nests more than {MAX_DEPTH:,} levels deep"
                    issues.append(Issue((*loc, name), "INVALID_VALUE", message))
                    continue
                stack.append((value, (*loc, name), False))
            elif isinstance(value, float):
                if not math.isfinite(value):
                    message = f"must be a finite number, not {value}"
                    issues.append(Issue((*loc, name), "INVALID_VALUE", message))
            elif not isinstance(value, str | int):
                message = f"must be JSON data, not {kind_of(value)}"
                issues.append(Issue((*loc, name), "INVALID_TYPE", message))
    if shared and not issues and _expanded_size(doc) > MAX_EXPANDED_VALUES:
        message = f"YAML aliases expand this document to more than {MAX_EXPANDED_VALUES:,} values"
        issues.append(Issue((), "INVALID_VALUE", message))
    return issues


def _string_keys(
    container: dict[Any, Any], loc: Loc, issues: list[Issue]
) -> list[tuple[str | int, object]]:
    """The items with string keys; reports the others (YAML reads `on:` as True, `1:` as 1)."""
    items: list[tuple[str | int, object]] = []
    for name, value in container.items():
        if isinstance(name, str):
            items.append((name, value))
        else:
            message = f"object keys must be strings, not {kind_of(name)} ({name!r}); quote it"
            issues.append(Issue(loc, "INVALID_TYPE", message))
    return items


#: Limit on the values a document may hold once YAML aliases are expanded ("billion laughs").
MAX_EXPANDED_VALUES: Final = 20_000_000


def _expanded_size(doc: object) -> int:
    """Values in `doc` counting shared containers at every use; linear thanks to memoisation.

    Only called for acyclic documents (cycles are reported before).
    """
    sizes: dict[int, int] = {}
    stack: list[tuple[object, bool]] = [(doc, False)]
    while stack:
        value, leaving = stack.pop()
        if id(value) in sizes:
            continue
        children = list(value.values()) if isinstance(value, dict) else value
        assert isinstance(children, list | tuple)
        if leaving:
            sizes[id(value)] = 1 + sum(sizes.get(id(c), 1) for c in children)
        else:
            stack.append((value, True))
            stack.extend((c, False) for c in children if isinstance(c, dict | list | tuple))
    return sizes.get(id(doc), 1)


def kind_of(value: object) -> str:
    """How a value reads in a message: `an object`, `null`, `bytes`."""
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}
    if value is None:
        return "null"
    for kind, name in names.items():
        if isinstance(value, kind):
            return name
    if isinstance(value, int | float):
        return "a number"
    return type(value).__name__


# --- JSON Schema --------------------------------------------------------------------------------

_DESCRIPTIONS: Final[dict[str, dict[str, str]]] = {
    "Blueprint": {
        "id": "Blueprint id; its key in a `blueprints` registry.",
        "nodes": "The steps. May be empty.",
        "edges": "Routing and data flow between nodes.",
        "metadata": "Free-form; `version` and `cycleEntryPoints` are interpreted.",
    },
    "NodeDefinition": {
        "id": "Unique within the blueprint; 1-200 characters, no control characters.",
        "config": "Retries, timeout, fallback and join strategy.",
    },
    "EdgeDefinition": {
        "source": "Id of the node the edge leaves.",
        "target": "Id of the node the edge enters.",
    },
    "BlueprintMetadata": {
        "version": "Version of this blueprint; runs can be pinned to it.",
        "cycleEntryPoints": "Node ids preferred as loop entry points.",
    },
}
_PRIVATE_KEYS: Final = {"^_": {"description": "Ignored: tooling data such as `_sourceLocation`."}}


@functools.cache
def _schema() -> dict[str, Any]:
    schema = Blueprint.model_json_schema(by_alias=True)
    defs: dict[str, Any] = schema.setdefault("$defs", {})
    for name, model_schema in [("Blueprint", schema), *defs.items()]:
        documented = _DESCRIPTIONS.get(name, {})
        for prop_name, prop in model_schema.get("properties", {}).items():
            prop.pop("title", None)
            if prop_name in documented and "description" not in prop:
                prop["description"] = documented[prop_name]
        if model_schema.get("additionalProperties") is False:
            model_schema["patternProperties"] = dict(_PRIVATE_KEYS)
    defs["NodeDefinition"]["allOf"] = [
        {
            "if": {"properties": {"uses": {"const": uses}}, "required": ["uses"]},
            "then": {"properties": {"params": params_json_schema(uses)}},
        }
        for uses in sorted(reserved.BUILTIN_KEYS)
    ]
    schema.pop("title", None)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Flowcraft blueprint",
        **schema,
    }


def blueprint_json_schema(registry: Mapping[str, object] | None = None) -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of the blueprint format, for editors and `flowcraft schema`.

    Fields starting with `_` are allowed everywhere the loader ignores them, and the parameters of
    each built-in are described through `if`/`then` on `uses`; with `registry`, so are the
    params of its typed nodes (flowcraft_core.typed). Returns a fresh copy.
    """
    schema = copy.deepcopy(_schema())
    typed = params_schemas(registry)
    if typed:
        defs = schema["$defs"]
        rules = defs["NodeDefinition"]["allOf"]
        for uses, params in sorted(typed.items()):
            for name, definition in params.pop("$defs", {}).items():
                defs.setdefault(name, definition)  # model names may repeat across nodes
            rules.append(
                {
                    "if": {"properties": {"uses": {"const": uses}}, "required": ["uses"]},
                    "then": {"properties": {"params": params}},
                }
            )
    return schema


__all__ = [
    "MAX_EXPANDED_VALUES",
    "blueprint_json_schema",
    "kind_of",
    "non_json_issues",
    "schema_issues",
]
