"""Properties: random damage never escapes as anything but BlueprintError; loading stays linear."""

from __future__ import annotations

import copy
import json
import time
from typing import Any

import yaml
from bp_support import ORDER_REVIEW_JSON
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flowcraft_core.blueprint import Blueprint, load_blueprint
from flowcraft_core.errors import BlueprintError

KNOWN_CODES = {
    "INVALID_SYNTAX",
    "MISSING_FIELD",
    "INVALID_TYPE",
    "UNKNOWN_FIELD",
    "INVALID_VALUE",
    "DUPLICATE_NODE_ID",
    "UNKNOWN_EDGE_SOURCE",
    "UNKNOWN_EDGE_TARGET",
    "UNKNOWN_CYCLE_ENTRY_POINT",
    "INVALID_EXPRESSION",
    "FALLBACK_SELF",
    "FALLBACK_HAS_EDGES",
    "FALLBACK_CHAIN",
    "LOOP_WITHOUT_CONTINUE",
    "IRREDUCIBLE_CYCLE",
    "MISSING_PARAM",
    "INVALID_PARAM",
    "UNSUPPORTED_CONFIG",
    "RESERVED_NODE_ID",
}


def _valid_base() -> dict[str, Any]:
    """The SPEC example plus one of each built-in, so mutations reach every check."""
    base: dict[str, Any] = json.loads(ORDER_REVIEW_JSON)
    base["metadata"]["cycleEntryPoints"] = ["L"]
    base["nodes"] += [
        {
            "id": "L",
            "uses": "loop-controller",
            "params": {"condition": "iteration < 3", "maxIterations": 5},
        },
        {"id": "body", "uses": "work", "config": {"backoff": "exponential"}},
        {
            "id": "s",
            "uses": "batch-scatter",
            "params": {"workerUsesKey": "w", "gatherNodeId": "g", "chunkSize": 2},
        },
        {"id": "g", "uses": "batch-gather", "params": {"outputKey": "out"}},
        {"id": "nap", "uses": "sleep", "params": {"duration": "10s"}},
        {"id": "child", "uses": "subflow", "params": {"blueprintId": "c", "inputs": {"a": "b"}}},
        {"id": "hook", "uses": "webhook"},
    ]
    base["edges"] += [
        {"source": "notify", "target": "L"},
        {"source": "L", "target": "body", "action": "continue"},
        {"source": "body", "target": "L"},
        {"source": "L", "target": "s", "action": "break"},
        {"source": "s", "target": "g"},
        {"source": "g", "target": "nap"},
        {"source": "nap", "target": "child"},
        {"source": "child", "target": "hook"},
    ]
    return base


BASE = _valid_base()

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
    | st.sampled_from(["", "a", "fetch", "score", "L", "s", "g", "s[0]", "wait", "sleep",
                       "batch-scatter", "loop-controller", "subflow", "continue", "all", "any",
                       "10s", "-1", "2030-01-01T00:00:00Z", "a <", "x ==", "(", "_x", "bogus"])
)  # fmt: skip
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)
field_names = st.sampled_from(
    ["id", "uses", "params", "inputs", "config", "maxRetries", "retryDelay", "timeout", "fallback",
     "joinStrategy", "backoff", "source", "target", "action", "condition", "transform", "version",
     "cycleEntryPoints", "duration", "until", "workerUsesKey", "gatherNodeId", "chunkSize",
     "collectErrors", "workerConfig", "blueprintId", "_sourceLocation", "bogus"]
) | st.text(max_size=6)  # fmt: skip


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            out += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            out += _paths(item, (*prefix, index))
    return out


def _mutate(data: st.DataObject, doc: dict[str, Any]) -> Any:
    path = data.draw(st.sampled_from(_paths(doc)))
    if not path:
        return data.draw(st.sampled_from([doc, None, [doc], "text", 3]))
    parent: Any = doc
    for key in path[:-1]:
        parent = parent[key]
    key = path[-1]
    action = data.draw(st.sampled_from(["replace", "delete", "add", "copy"]))
    if action == "replace":
        parent[key] = data.draw(json_values)
    elif action == "delete":
        del parent[key]
    elif action == "add" and isinstance(parent, dict):
        parent[data.draw(field_names)] = data.draw(json_values)
    elif action == "add":
        parent.insert(key, data.draw(json_values))
    else:  # copy a sibling over, e.g. a duplicate node or a wrong-kind value
        siblings = list(parent.values()) if isinstance(parent, dict) else parent
        parent[key] = copy.deepcopy(data.draw(st.sampled_from(siblings)))
    return doc


def _check(source: Any) -> None:
    try:
        bp = load_blueprint(source)
    except BlueprintError as err:
        assert err.problems
        for problem in err.problems:
            assert problem.code in KNOWN_CODES, problem
            assert problem.path and problem.message
        str(err)
    else:
        assert isinstance(bp, Blueprint)
        dumped = bp.model_dump(by_alias=True, exclude_unset=True, mode="json")
        assert load_blueprint(dumped).model_dump() == bp.model_dump()


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_random_damage_loads_or_raises_blueprint_error(data: st.DataObject) -> None:
    doc: Any = copy.deepcopy(BASE)
    for _ in range(data.draw(st.integers(1, 4))):
        if not isinstance(doc, dict):
            break
        doc = _mutate(data, doc)
    _check(doc)
    if isinstance(doc, dict):
        _check(json.dumps(doc))
        _check(yaml.safe_dump(doc))


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200) | st.text(max_size=200))
def test_random_text_loads_or_raises_blueprint_error(text: bytes | str) -> None:
    if (
        isinstance(text, str)
        and "\n" not in text
        and text.lower().endswith((".json", ".yaml", ".yml"))
    ):
        text += "\n"  # a path, not a document
    _check(text)


def test_base_document_is_valid() -> None:
    bp = load_blueprint(BASE)
    assert len(bp.nodes) == 14


def _big(n: int) -> dict[str, Any]:
    nodes = [
        {"id": f"n{i}", "uses": "work", "params": {"x": i}, "config": {"maxRetries": 2}}
        for i in range(n)
    ]
    edges = [
        {"source": f"n{i}", "target": f"n{i + 1}", "condition": f"result.output > {i % 7}"}
        for i in range(n - 1)
    ]
    return {"id": "big", "nodes": nodes, "edges": edges}


def _cpu_seconds(fn: Any, arg: Any) -> float:
    started = time.process_time()
    fn(arg)
    return time.process_time() - started


def test_large_blueprint_loads_in_linear_time() -> None:
    """100,000 nodes load in seconds; 4x the nodes costs about 4x, not 16x."""
    small, large = _big(25_000), _big(100_000)
    # CPU time of this process (not wall time), so other processes' load does not skew it;
    # the best of two runs of the small one, so one hiccup does not make the ratio look bad.
    small_s = min(_cpu_seconds(load_blueprint, small) for _ in range(2))
    started = time.process_time()
    bp = load_blueprint(large)
    large_s = time.process_time() - started
    print(f"load 25k nodes: {small_s:.2f}s, 100k nodes: {large_s:.2f}s")
    assert len(bp.nodes) == 100_000
    assert large_s < 60
    assert large_s < 10 * small_s + 1  # linear (x4) with slack; quadratic would be x16


def test_large_blueprint_errors_are_collected_quickly() -> None:
    doc = _big(100_000)
    for i in range(0, 100_000, 2):
        doc["nodes"][i]["config"]["maxRetries"] = 0
        doc["edges"][i - 1 if i else 0]["target"] = "nowhere"
    started = time.perf_counter()
    try:
        load_blueprint(doc)
    except BlueprintError as err:
        assert len(err.problems) == 100_000
    elapsed = time.perf_counter() - started
    print(f"100k nodes with 100k problems: {elapsed:.2f}s")
    assert elapsed < 60
