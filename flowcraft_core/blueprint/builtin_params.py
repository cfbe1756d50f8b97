"""Parameters of the built-in nodes (SPEC section 5) and their load-time checks.

The checks live in one table so the loader, the JSON Schema export and the runtime agree on what
each built-in accepts. `parse_duration_ms` and `parse_until` are public because the runtime must
read a sleep's parameters exactly as the loader accepted them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from flowcraft_core import reserved

#: A location below a node's `params`, e.g. `("workerConfig", "maxRetries")`.
SubLoc = tuple[str | int, ...]
#: (location below `params`, problem code, message).
ParamIssue = tuple[SubLoc, str, str]

MISSING_PARAM: Final = "MISSING_PARAM"
INVALID_PARAM: Final = "INVALID_PARAM"

_DURATION_RE: Final = re.compile(r"([0-9]+)(ms|s|m|h|d)", re.ASCII)
_UNIT_MS: Final[Mapping[str, int]] = {
    "ms": 1,
    "s": 1_000,
    "m": 60_000,
    "h": 3_600_000,
    "d": 86_400_000,
}


def parse_duration_ms(value: object) -> float:
    """A sleep `duration` in milliseconds: a number >= 0, or `<digits><ms|s|m|h|d>`.

    Raises ValueError for anything else (booleans, negatives, NaN, `"1.5s"`, `"10 s"`).
    """
    if isinstance(value, bool):
        raise ValueError("must be a number of milliseconds or a string like '10s', not a boolean")
    if isinstance(value, int | float):
        ms = _finite_float(value)
        if ms is None or ms < 0:
            raise ValueError("must be a finite number of milliseconds >= 0")
        return ms
    if isinstance(value, str):
        match = _DURATION_RE.fullmatch(value)
        if match is not None:
            try:
                amount = int(match.group(1))
            except ValueError:  # more digits than int() accepts
                amount = -1
            ms = _finite_float(amount * _UNIT_MS[match.group(2)]) if amount >= 0 else None
            if ms is not None:
                return ms
            raise ValueError("is too large")
        raise ValueError(
            f"{value!r} is not a duration: use milliseconds or <digits><ms|s|m|h|d> such as '10s'"
        )
    raise ValueError("must be a number of milliseconds or a string like '10s'")


def parse_until(value: object) -> datetime:
    """A sleep `until`: an ISO-8601 timestamp that carries a UTC offset (`Z` or `+02:00`).

    A timestamp without an offset is rejected: its instant would depend on the host's zone.
    """
    if not isinstance(value, str):
        raise ValueError("must be an ISO-8601 timestamp string with an offset")
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{value!r} is not an ISO-8601 timestamp") from None
    if when.utcoffset() is None:
        raise ValueError(f"{value!r} has no UTC offset (add 'Z' or '+hh:mm')")
    return when


def _finite_float(value: int | float) -> float | None:
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


# --- single-value checks: each returns a message when the value is invalid -------------------

Check = Callable[[object], Iterator[tuple[SubLoc, str]]]


def _simple(test: Callable[[object], bool], message: str) -> Check:
    def check(value: object) -> Iterator[tuple[SubLoc, str]]:
        if not test(value):
            yield (), message

    return check


def _is_number(value: object) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and _finite_float(value) is not None
    )


def _is_text(value: object) -> bool:
    return isinstance(value, str) and value != ""


def _is_positive_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _is_delay(value: object) -> bool:
    return _is_number(value) and float(value) >= 0  # type: ignore[arg-type]


def _is_timeout(value: object) -> bool:
    return _is_number(value) and float(value) > 0  # type: ignore[arg-type]


_text = _simple(_is_text, "must be a non-empty string")
_positive_int = _simple(_is_positive_int, "must be an integer >= 1")
_boolean = _simple(lambda v: isinstance(v, bool), "must be a boolean")
_object = _simple(lambda v: isinstance(v, dict), "must be an object")
_join = _simple(lambda v: v in ("all", "any"), "must be 'all' or 'any'")


def _worker_uses_key(value: object) -> Iterator[tuple[SubLoc, str]]:
    if not _is_text(value):
        yield (), "must be a non-empty string"
    elif value in reserved.BUILTIN_KEYS:
        yield (), f"must not be a built-in ({value!r}); name a registered implementation"


def _string_map(value: object) -> Iterator[tuple[SubLoc, str]]:
    if not isinstance(value, dict):
        yield (), "must be an object of strings"
        return
    for key, item in value.items():
        if not _is_text(item):
            yield (key,), "must be a non-empty string"


_WORKER_CONFIG: Final[Mapping[str, Check]] = {
    "maxRetries": _positive_int,
    "retryDelay": _simple(_is_delay, "must be a number >= 0"),
    "backoff": _simple(lambda v: v in ("fixed", "exponential"), "must be 'fixed' or 'exponential'"),
    "timeout": _simple(_is_timeout, "must be a number > 0"),
}


def _worker_config(value: object) -> Iterator[tuple[SubLoc, str]]:
    if not isinstance(value, dict):
        yield (), "must be an object"
        return
    for key, item in value.items():
        check = _WORKER_CONFIG.get(key)
        if check is None:
            yield (key,), f"unknown worker setting {key!r} (allowed: {', '.join(_WORKER_CONFIG)})"
            continue
        for sub, message in check(item):
            yield (key, *sub), message


def _duration(value: object) -> Iterator[tuple[SubLoc, str]]:
    try:
        parse_duration_ms(value)
    except ValueError as exc:
        yield (), str(exc)


def _until(value: object) -> Iterator[tuple[SubLoc, str]]:
    try:
        parse_until(value)
    except ValueError as exc:
        yield (), str(exc)


@dataclass(frozen=True, slots=True)
class ParamSpec:
    """One accepted parameter of a built-in: how to check it and how to describe it to editors."""

    check: Check
    schema: Mapping[str, Any]
    description: str
    required: bool = False
    compatibility: bool = field(default=False)


_TEXT_SCHEMA: Final = {"type": "string", "minLength": 1}
_STRING_MAP_SCHEMA: Final = {"type": "object", "additionalProperties": _TEXT_SCHEMA}
_WORKER_CONFIG_SCHEMA: Final = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "maxRetries": {"type": "integer", "minimum": 1},
        "retryDelay": {"type": "number", "minimum": 0},
        "backoff": {"enum": ["fixed", "exponential"]},
        "timeout": {"type": "number", "exclusiveMinimum": 0},
    },
}
_DURATION_SCHEMA: Final = {
    "oneOf": [
        {"type": "number", "minimum": 0},
        {"type": "string", "pattern": "^[0-9]+(ms|s|m|h|d)$"},
    ]
}

#: Accepted parameters of every built-in, keyed by `uses`.
BUILTIN_PARAMS: Final[Mapping[str, Mapping[str, ParamSpec]]] = {
    reserved.BATCH_SCATTER: {
        "workerUsesKey": ParamSpec(
            _worker_uses_key,
            _TEXT_SCHEMA,
            "Implementation run per item (not a built-in).",
            required=True,
        ),
        "gatherNodeId": ParamSpec(
            _text,
            _TEXT_SCHEMA,
            "The batch-gather node; an edge scatter -> gather is required.",
            required=True,
        ),
        "outputKey": ParamSpec(_text, _TEXT_SCHEMA, "Context key for the results."),
        "chunkSize": ParamSpec(
            _positive_int, {"type": "integer", "minimum": 1}, "Maximum number of items in flight."
        ),
        "collectErrors": ParamSpec(
            _boolean,
            {"type": "boolean"},
            "Keep going when an item fails; its slot holds the error.",
        ),
        "workerParams": ParamSpec(_object, {"type": "object"}, "`params` given to each item."),
        "workerConfig": ParamSpec(
            _worker_config, _WORKER_CONFIG_SCHEMA, "maxRetries/retryDelay/backoff/timeout per item."
        ),
    },
    reserved.BATCH_GATHER: {
        "outputKey": ParamSpec(_text, _TEXT_SCHEMA, "Context key for the results."),
        "gatherNodeId": ParamSpec(
            _text, _TEXT_SCHEMA, "Written by the TypeScript builder; ignored.", compatibility=True
        ),
        "joinStrategy": ParamSpec(
            _join,
            {"enum": ["all", "any"]},
            "Written by the TypeScript builder; ignored.",
            compatibility=True,
        ),
    },
    reserved.LOOP_CONTROLLER: {
        "condition": ParamSpec(
            _text,
            _TEXT_SCHEMA,
            "Expression: truthy answers 'continue', falsy 'break'.",
            required=True,
        ),
        "maxIterations": ParamSpec(
            _positive_int, {"type": "integer", "minimum": 1}, "The body runs at most this often."
        ),
    },
    reserved.SLEEP: {
        "duration": ParamSpec(
            _duration, _DURATION_SCHEMA, "Milliseconds, or a string such as '500ms', '10s', '2d'."
        ),
        "until": ParamSpec(
            _until, {"type": "string", "format": "date-time"}, "ISO-8601 timestamp with an offset."
        ),
    },
    reserved.WAIT: {
        "event": ParamSpec(
            _text,
            _TEXT_SCHEMA,
            "Wait for this named event (send_event); its payload becomes the output.",
        ),
    },
    reserved.WEBHOOK: {},
    reserved.SUBFLOW: {
        "blueprintId": ParamSpec(_text, _TEXT_SCHEMA, "Id of the child blueprint.", required=True),
        "inputs": ParamSpec(_string_map, _STRING_MAP_SCHEMA, "Child key -> parent reference."),
        "outputs": ParamSpec(_string_map, _STRING_MAP_SCHEMA, "Parent key -> child reference."),
    },
}


def check_builtin_params(uses: str, params: Mapping[str, Any]) -> list[ParamIssue]:
    """Node-local checks of a built-in's `params`; graph checks (gatherNodeId) live in validate.

    Returns an empty list for a `uses` that is not a built-in.
    """
    specs = BUILTIN_PARAMS.get(uses)
    if specs is None:
        return []
    issues: list[ParamIssue] = []
    for name, value in params.items():
        spec = specs.get(name)
        if spec is None:
            issues.append(((name,), INVALID_PARAM, f"unknown parameter for {uses!r}"))
            continue
        for sub, message in spec.check(value):
            issues.append(((name, *sub), INVALID_PARAM, message))
    for name, spec in specs.items():
        if spec.required and name not in params:
            issues.append(((name,), MISSING_PARAM, f"{uses!r} requires this parameter"))
    if uses == reserved.SLEEP:
        if "duration" not in params and "until" not in params:
            issues.append((("duration",), MISSING_PARAM, "'sleep' requires 'duration' or 'until'"))
        elif "duration" in params and "until" in params:
            issues.append((("until",), INVALID_PARAM, "give only one of 'duration' and 'until'"))
    return issues


def params_json_schema(uses: str) -> dict[str, Any] | None:
    """JSON Schema of a built-in's `params` (None for a `uses` that is not a built-in)."""
    specs = BUILTIN_PARAMS.get(uses)
    if specs is None:
        return None
    schema: dict[str, Any] = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            name: {**spec.schema, "description": spec.description} for name, spec in specs.items()
        },
    }
    required = [name for name, spec in specs.items() if spec.required]
    if required:
        schema["required"] = required
    if uses == reserved.SLEEP:
        schema["oneOf"] = [{"required": ["duration"]}, {"required": ["until"]}]
    return schema


__all__ = [
    "BUILTIN_PARAMS",
    "ParamSpec",
    "check_builtin_params",
    "params_json_schema",
    "parse_duration_ms",
    "parse_until",
]
