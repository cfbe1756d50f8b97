"""`load_blueprint`: read JSON or YAML, validate, and report every problem at once (SPEC 1.3-1.5).

Loading runs in four steps, each of which only adds problems: parse the text; reject values that
are not JSON data (YAML can produce bytes, sets and recursive aliases); validate the schema with
pydantic, turning its errors into JSON paths; then run the semantic checks on whatever part of the
blueprint survived. Problems are sorted into document order before one BlueprintError is raised.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import yaml
from pydantic import BaseModel, TypeAdapter, ValidationError
from yaml.composer import Composer
from yaml.constructor import SafeConstructor
from yaml.resolver import Resolver

from flowcraft_core.errors import BlueprintError, Problem
from flowcraft_core.expressions import Evaluator
from flowcraft_core.typed import param_problems

from .._gc import gc_paused
from .model import (
    Blueprint,
    BlueprintMetadata,
    EdgeDefinition,
    NodeConfig,
    NodeDefinition,
    NodeId,
)
from .schema import kind_of, non_json_issues, schema_issues
from .validate import (
    Draft,
    Issue,
    Loc,
    cache_key,
    check_semantics,
    compile_expressions,
    default_evaluator,
    format_loc,
)

_JSON_SUFFIXES: Final = (".json",)
_YAML_SUFFIXES: Final = (".yaml", ".yml")

_TIMESTAMP_TAG: Final = "tag:yaml.org,2002:timestamp"
_MAX_ID_LENGTH: Final = 200  # Blueprint.id's max_length


def _yaml_loader() -> Any:
    """A safe YAML loader that keeps timestamps as strings (JSON, and so a blueprint, has no dates).

    With libyaml, the C parser feeds PyYAML's Python composer: libyaml's own composer recurses
    in C and crashes the process on a deeply nested document, while the Python one raises
    RecursionError, which becomes a problem. Only SafeConstructor builds values.
    """
    try:
        from yaml._yaml import CParser
    except ImportError:  # PyYAML without libyaml
        base: Any = yaml.SafeLoader
    else:

        class _Base(Composer, CParser, SafeConstructor, Resolver):
            def __init__(self, stream: str) -> None:
                CParser.__init__(self, stream)
                Composer.__init__(self)
                SafeConstructor.__init__(self)
                Resolver.__init__(self)

        base = _Base

    class Loader(base):  # type: ignore[misc]
        pass

    Loader.yaml_implicit_resolvers = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag != _TIMESTAMP_TAG]
        for first, resolvers in base.yaml_implicit_resolvers.items()
    }
    Loader.add_constructor(_TIMESTAMP_TAG, SafeConstructor.construct_yaml_str)
    return Loader


_JsonSafeLoader: Final = _yaml_loader()
_NODE_ID: Final = TypeAdapter(NodeId)


def load_blueprint(
    source: Mapping[str, Any] | os.PathLike[str] | str | bytes,
    *,
    allow_unknown: bool = False,
    evaluator: Evaluator | None = None,
    registry: Mapping[str, object] | None = None,
) -> Blueprint:
    """Load and validate a blueprint from a mapping, a file, or JSON/YAML text.

    A `str` without a newline that ends in `.json`, `.yaml` or `.yml` is a path; any other
    `str`/`bytes` is parsed as JSON, or as YAML when it is not JSON. Raises BlueprintError with
    every problem found; expressions are compiled with `evaluator` (default: the safe evaluator)
    and kept in `bp._cache["expressions"]`. With `registry`, the params of typed nodes are
    checked against their models too (`INVALID_PARAMS`, see flowcraft_core.typed).
    """
    with gc_paused():
        data, plain_json = read_source(source)
        compiler = evaluator if evaluator is not None else default_evaluator()
        bp = validate_data(
            data, allow_unknown=allow_unknown, evaluator=compiler, plain_json=plain_json
        )
    problems = param_problems(bp.nodes, registry)
    if problems:
        raise BlueprintError(bp.id, problems)
    return bp


def read_source(source: object) -> tuple[object, bool]:
    """The parsed document of `source`, and whether a JSON parser vouches it is plain JSON data.

    A mapping (or any other parsed JSON value) is returned as is, not vouched for: it may hold
    any Python object.
    """
    if isinstance(source, Mapping):
        return source, False
    if isinstance(source, os.PathLike):
        return _read_file(Path(source))
    if isinstance(source, str):
        if "\n" not in source and "\r" not in source and _is_path_like(source):
            return _read_file(Path(source))
        return _parse(source.removeprefix("\ufeff"), "auto")
    if isinstance(source, bytes | bytearray | memoryview):
        return _parse(_decode(bytes(source)), "auto")
    if source is None or isinstance(source, list | tuple | int | float):
        return source, False  # an already parsed document that is not an object: a problem
    raise TypeError(
        f"load_blueprint() takes a mapping, a path, or JSON/YAML text, not {type(source).__name__}"
    )


def _is_path_like(text: str) -> bool:
    return text.lower().endswith(_JSON_SUFFIXES + _YAML_SUFFIXES)


def _read_file(path: Path) -> tuple[object, bool]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise _syntax_error(f"file not found: '{path}'", code="FILE_NOT_FOUND") from None
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise _syntax_error(f"cannot read '{path}': {reason}", code="FILE_UNREADABLE") from None
    suffix = path.suffix.lower()
    kind = "json" if suffix in _JSON_SUFFIXES else "yaml" if suffix in _YAML_SUFFIXES else "auto"
    return _parse(_decode(raw), kind)


def _decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise _syntax_error(
            f"not UTF-8 text: invalid byte at line {line}, column {column}"
        ) from None


def _parse(text: str, kind: str) -> tuple[object, bool]:
    if kind == "yaml":
        return _parse_yaml(text), False
    constants: list[str] = []

    def constant(name: str) -> float:  # NaN and Infinity: Python's extension to JSON
        constants.append(name)
        return float(name)

    def number(digits: str) -> float:  # 1e999 overflows to inf, which JSON cannot hold
        value = float(digits)
        if not math.isfinite(value):
            constants.append(digits)
        return value

    try:
        return json.loads(text, parse_constant=constant, parse_float=number), not constants
    except json.JSONDecodeError as exc:
        if kind == "json":
            raise _json_error(exc) from None
        json_error = exc
    except RecursionError:
        raise _syntax_error("invalid JSON: nested too deeply") from None
    except ValueError as exc:  # e.g. an integer with more digits than Python converts
        raise _syntax_error(f"invalid JSON: {exc}") from None
    try:
        return _parse_yaml(text), False
    except BlueprintError:
        if text.lstrip().startswith(("{", "[")):
            raise _json_error(json_error) from None  # meant as JSON: its error is the clearer one
        raise


def _json_error(exc: json.JSONDecodeError) -> BlueprintError:
    return _syntax_error(f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}")


def _parse_yaml(text: str) -> object:
    try:
        return yaml.load(text, Loader=_JsonSafeLoader)  # a SafeLoader subclass: no Python objects
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = exc.problem or exc.context or "malformed document"
        if isinstance(exc, yaml.constructor.ConstructorError) and "tag" in problem:
            problem += " (only plain JSON data is allowed)"
        raise _syntax_error(f"invalid YAML{where}: {problem}") from None
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        column = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        raise _syntax_error(f"invalid YAML at line {line}, column {column}: {exc.reason}") from None
    except yaml.YAMLError as exc:
        raise _syntax_error(f"invalid YAML: {exc}") from None
    except RecursionError:
        raise _syntax_error("invalid YAML: nested too deeply") from None
    except ValueError as exc:  # e.g. an integer with more digits than Python converts
        raise _syntax_error(f"invalid YAML: {exc}") from None


def _syntax_error(message: str, *, code: str = "INVALID_SYNTAX") -> BlueprintError:
    return BlueprintError(None, [Problem("$", code, message)])


# --- validation ---------------------------------------------------------------------------------


def validate_data(
    data: object, *, allow_unknown: bool, evaluator: Evaluator, plain_json: bool = False
) -> Blueprint:
    """Validate a parsed document; raise one BlueprintError listing every problem in order.

    `plain_json` skips the walk for non-JSON values when a JSON parser produced `data`.
    """
    if not isinstance(data, Mapping):
        problem = Problem(
            "$", "INVALID_TYPE", f"a blueprint must be an object, not {kind_of(data)}"
        )
        raise BlueprintError(None, [problem])
    doc = dict(data)
    raw_id = doc.get("id")
    # An id too long to be valid is not repeated in the message (it may be megabytes).
    blueprint_id = raw_id if isinstance(raw_id, str) and len(raw_id) <= _MAX_ID_LENGTH else None
    context = {"allow_unknown": allow_unknown}

    json_issues = [] if plain_json else non_json_issues(doc)
    issues: list[Issue] = []
    bp: Blueprint | None = None
    try:
        bp = _validate_compact(doc, context)
        draft = Draft.of(bp)
    except ValidationError as exc:
        issues.extend(schema_issues(exc, doc))
        draft = _partial_draft(doc, context)
    issues.extend(check_semantics(draft))
    compiled, expression_issues = compile_expressions(draft, evaluator)
    issues.extend(expression_issues)

    if issues or json_issues or bp is None:
        raise BlueprintError(blueprint_id, _ordered(doc, json_issues, issues))
    bp._cache["expressions"] = compiled
    bp._cache[cache_key(evaluator)] = (evaluator, compiled)
    return bp


#: Nodes and edges are validated this many at a time and compacted before the next batch, so
#: the per-model duplicates pydantic makes never exist for the whole blueprint at once.
_BATCH: Final = 4096
_NODES: Final = TypeAdapter(tuple[NodeDefinition, ...])
_EDGES: Final = TypeAdapter(tuple[EdgeDefinition, ...])


def _validate_compact(doc: dict[str, Any], context: dict[str, Any]) -> Blueprint:
    """`Blueprint.model_validate(doc)`, holding less memory per node and edge.

    The models are the same, but pydantic gives every model its own `fields_set` set (about
    0.2 KB), and edges their own copies of the node id strings. Here nodes and edges are
    validated in batches, then models with the same fields set share one set (never mutated
    in place: pydantic copies it in `model_copy`), edge ends are the node's id string, and
    `uses` and `action` strings are shared. On any error the whole document is validated again
    the plain way, so errors are exactly pydantic's.
    """
    raw_nodes, raw_edges = doc.get("nodes"), doc.get("edges", ())
    if type(raw_nodes) not in (list, tuple) or type(raw_edges) not in (list, tuple):
        return Blueprint.model_validate(doc, context=context)
    assert isinstance(raw_nodes, list | tuple) and isinstance(raw_edges, list | tuple)
    fields_sets: dict[frozenset[str], set[str]] = {}
    strings: dict[str, str] = {}
    node_ids: dict[str, str] = {}
    try:
        nodes: list[NodeDefinition] = []
        for start in range(0, len(raw_nodes), _BATCH):
            raw = raw_nodes[start : start + _BATCH]
            node_batch = _NODES.validate_python(raw, context=context)
            for node, given in zip(node_batch, raw, strict=True):
                values = node.__dict__
                node_ids.setdefault(values["id"], values["id"])
                if node is not given:  # a model passed in is the caller's: left as it is
                    _share_fields_set(node, fields_sets)
                    uses = values["uses"]
                    values["uses"] = strings.setdefault(uses, uses)
            nodes.extend(node_batch)
        edges: list[EdgeDefinition] = []
        for start in range(0, len(raw_edges), _BATCH):
            raw = raw_edges[start : start + _BATCH]
            edge_batch = _EDGES.validate_python(raw, context=context)
            for edge, given in zip(edge_batch, raw, strict=True):
                if edge is given:
                    continue
                _share_fields_set(edge, fields_sets)
                values = edge.__dict__
                values["source"] = node_ids.get(values["source"], values["source"])
                values["target"] = node_ids.get(values["target"], values["target"])
                action = values["action"]
                if action is not None:
                    values["action"] = strings.setdefault(action, action)
            edges.extend(edge_batch)
        del node_ids
        checked = dict(doc, nodes=tuple(nodes))
        if "edges" in doc:
            checked["edges"] = tuple(edges)
        del nodes, edges
        return Blueprint.model_validate(checked, context=context)
    except ValidationError:
        pass
    return Blueprint.model_validate(doc, context=context)


def _share_fields_set(model: BaseModel, shared: dict[frozenset[str], set[str]]) -> None:
    own = model.__pydantic_fields_set__
    common = shared.setdefault(frozenset(own), own)
    if common is not own:
        object.__setattr__(model, "__pydantic_fields_set__", common)


def _partial_draft(doc: dict[str, Any], context: dict[str, Any]) -> Draft:
    """Validate nodes, edges and metadata one by one, so checks can use the parts that are valid."""
    raw_nodes = doc.get("nodes")
    nodes_valid = isinstance(raw_nodes, list | tuple)
    nodes: list[NodeDefinition | None] = []
    node_ids: list[str | None] = []
    for raw in raw_nodes if isinstance(raw_nodes, list | tuple) else ():
        node = _try(NodeDefinition, raw, context)
        nodes.append(node)
        node_ids.append(node.id if node is not None else _valid_id(raw))
    raw_edges = doc.get("edges", [])
    edges = (
        [_try(EdgeDefinition, raw, context) for raw in raw_edges]
        if isinstance(raw_edges, list | tuple)
        else []
    )
    edges_valid = isinstance(raw_edges, list | tuple) and all(e is not None for e in edges)
    metadata = _try(BlueprintMetadata, doc.get("metadata", {}), context)
    return Draft(nodes, node_ids, nodes_valid, edges, edges_valid, metadata)


def _try(model: Any, raw: object, context: dict[str, Any]) -> Any:
    try:
        return model.model_validate(raw, context=context)
    except ValidationError:
        return None


def _valid_id(raw: object) -> str | None:
    if not isinstance(raw, dict) or "id" not in raw:
        return None
    try:
        node_id: str = _NODE_ID.validate_python(raw["id"], strict=True)
    except ValidationError:
        return None
    return node_id


def _ordered(doc: dict[str, Any], json_issues: list[Issue], issues: list[Issue]) -> list[Problem]:
    """Issues in document order; issues inside a non-JSON value repeat that problem and go."""
    shadow = {i.loc for i in json_issues}
    kept = list(json_issues)
    if shadow:
        kept.extend(
            i for i in issues if not any(i.loc[:n] in shadow for n in range(len(i.loc) + 1))
        )
    else:
        kept.extend(issues)
    positions = _Positions(doc)
    kept.sort(key=lambda i: positions.of(i.loc))
    problems: list[Problem] = []
    seen: set[Issue] = set()
    for issue in kept:
        if issue not in seen:
            seen.add(issue)
            problems.append(Problem(format_loc(issue.loc), issue.code, issue.message))
    return problems


#: JSON name -> Python name, for documents written with the Python names (`max_retries`).
_ALTERNATE_KEYS: Final[dict[str, str]] = {
    field.alias: name
    for model in (Blueprint, NodeDefinition, NodeConfig, EdgeDefinition, BlueprintMetadata)
    for name, field in model.model_fields.items()
    if field.alias
}


class _Positions:
    """Sort keys that follow the document: key order in objects, index order in arrays."""

    def __init__(self, doc: dict[str, Any]) -> None:
        self._doc = doc
        self._key_order: dict[int, dict[str, int]] = {}

    def of(self, loc: Loc) -> tuple[int, ...]:
        key: list[int] = []
        current: object = self._doc
        for element in loc:
            if isinstance(current, dict) and isinstance(element, str):
                order = self._key_order.get(id(current))
                if order is None:
                    order = {k: n for n, k in enumerate(current) if isinstance(k, str)}
                    self._key_order[id(current)] = order
                name = element if element in order else _ALTERNATE_KEYS.get(element, element)
                key.append(order.get(name, len(order)))
                current = current.get(name)
            elif isinstance(current, list | tuple) and isinstance(element, int):
                key.append(element)
                current = current[element] if 0 <= element < len(current) else None
            else:
                key.append(0)
                current = None
        return tuple(key)


__all__ = ["load_blueprint", "read_source", "validate_data"]
