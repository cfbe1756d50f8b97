"""JSON data checks and the default serializer (msgspec JSON, never pickle).

The context may hold only JSON data (SPEC 2.5), so every value entering it is checked once by
`check_json`; the serializer then only has to encode.
"""

from __future__ import annotations

import math
from typing import Any, Protocol

import msgspec

from .errors import SerializationError

_SCALARS = (str, int, bool, type(None))
#: Deepest nesting of a context value: msgspec (like `json`) encodes recursively and fails
#: near Python's recursion limit (1,000 frames, some already in use), so deeper is refused.
MAX_DEPTH = 500


class Serializer(Protocol):
    """What the runtime needs of a serializer: text out, text in, JSON data only."""

    def serialize(self, obj: Any) -> str: ...

    def deserialize(self, text: str | bytes) -> Any: ...


def _type_name(value: Any) -> str:
    return type(value).__name__


def check_json(value: Any, *, node_id: str | None = None, key: str | None = None) -> Any:
    """Validate that `value` is JSON data; tuples become lists. Returns the (maybe converted) value.

    Iterative, so deep structures cannot hit the recursion limit; circular ones and nesting
    deeper than MAX_DEPTH (which the encoder could not handle) are refused.
    """
    cls = type(value)
    if cls in _SCALARS:
        return value
    if cls is float:
        if math.isfinite(value):
            return value
        raise SerializationError(f"{value!r} is not a finite number", node_id=node_id, key=key)
    if cls not in (list, dict, tuple):
        raise SerializationError(
            f"value of type {_type_name(value)} is not JSON data", node_id=node_id, key=key
        )
    if cls is dict:
        # A flat dict of scalars (a small run's whole context) needs no stack.
        for k, child in value.items():
            if type(k) is not str or type(child) not in _SCALARS:
                break
        else:
            return value
    root: list[Any] = [value]
    # Stack of (container, parent, slot, depth) where converted tuples are written back.
    stack: list[tuple[Any, Any, Any, int]] = [(value, root, 0, 1)]
    active: set[int] = set()
    exit_marker = object()
    while stack:
        item, parent, slot, depth = stack.pop()
        if item is exit_marker:
            active.discard(slot)
            continue
        cls = type(item)
        if cls in _SCALARS:
            continue
        if cls is float:
            if not math.isfinite(item):
                raise SerializationError(
                    f"{item!r} is not a finite number", node_id=node_id, key=key
                )
            continue
        if cls is tuple:
            item = list(item)
            parent[slot] = item
            cls = list
        if cls is list or cls is dict:
            ident = id(item)
            if ident in active:
                raise SerializationError("circular structure", node_id=node_id, key=key)
            if depth > MAX_DEPTH:
                message = f"nested more than {MAX_DEPTH} levels deep"
                raise SerializationError(message, node_id=node_id, key=key)
            active.add(ident)
            stack.append((exit_marker, None, ident, depth))
            inner = depth + 1
            if cls is list:
                for index in range(len(item) - 1, -1, -1):
                    child = item[index]
                    if type(child) not in _SCALARS:
                        stack.append((child, item, index, inner))
            else:
                for k, child in item.items():
                    if type(k) is not str:
                        raise SerializationError(
                            f"dict key {k!r} is not a string", node_id=node_id, key=key
                        )
                    if type(child) not in _SCALARS:
                        stack.append((child, item, k, inner))
            continue
        raise SerializationError(
            f"value of type {_type_name(item)} is not JSON data", node_id=node_id, key=key
        )
    return root[0]


class JsonSerializer:
    """msgspec JSON restricted to the JSON data model; `None` round-trips as `null`."""

    __slots__ = ("_decoder", "_encoder")

    def __init__(self) -> None:
        self._encoder = msgspec.json.Encoder()
        self._decoder = msgspec.json.Decoder()

    def serialize(self, obj: Any) -> str:
        checked = check_json(obj)
        try:
            return self._encoder.encode(checked).decode()
        except (TypeError, ValueError, OverflowError, msgspec.EncodeError) as exc:
            raise SerializationError(str(exc)) from exc
        except RecursionError:  # only if the call stack is already deep
            raise SerializationError("nested too deeply to encode") from None

    def deserialize(self, text: str | bytes) -> Any:
        try:
            return self._decoder.decode(text)
        except (msgspec.DecodeError, ValueError) as exc:
            raise SerializationError(f"cannot decode JSON: {exc}") from exc


__all__ = ["JsonSerializer", "Serializer", "check_json"]
