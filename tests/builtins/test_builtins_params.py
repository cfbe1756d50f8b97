"""SPEC 5 (and 1.4): built-in parameters and configs are checked at load, all problems at once."""

from __future__ import annotations

from typing import Any

import pytest

from flowcraft_core import BlueprintError, load_blueprint

SCATTER = {"workerUsesKey": "work", "gatherNodeId": "g"}


def one(node: dict[str, Any]) -> dict[str, Any]:
    return {"id": "p", "nodes": [node]}


def batch(scatter: dict[str, Any], *extra: dict[str, Any], edge: bool = True) -> dict[str, Any]:
    return {
        "id": "p",
        "nodes": [
            {"id": "s", "uses": "batch-scatter", "params": scatter},
            {"id": "g", "uses": "batch-gather"},
            *extra,
        ],
        "edges": [{"source": "s", "target": "g"}] if edge else [],
    }


def loop(params: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": "p",
        "nodes": [
            {"id": "L", "uses": "loop-controller", "params": params},
            {"id": "b", "uses": "work"},
        ],
        "edges": [{"source": "L", "target": "b", "action": "continue"}],
    }


INVALID = [
    (one({"id": "n", "uses": "sleep"}), [("nodes[0].params.duration", "MISSING_PARAM")]),
    (
        one({"id": "n", "uses": "sleep", "params": {"duration": 1, "until": "2030-01-01T00:00Z"}}),
        [("nodes[0].params.until", "INVALID_PARAM")],
    ),
    (
        one({"id": "n", "uses": "sleep", "params": {"duration": "1.5s"}}),
        [("nodes[0].params.duration", "INVALID_PARAM")],
    ),
    (
        one({"id": "n", "uses": "sleep", "params": {"duration": "10 s"}}),
        [("nodes[0].params.duration", "INVALID_PARAM")],
    ),
    (
        one({"id": "n", "uses": "sleep", "params": {"duration": -1}}),
        [("nodes[0].params.duration", "INVALID_PARAM")],
    ),
    (
        one({"id": "n", "uses": "sleep", "params": {"duration": True}}),
        [("nodes[0].params.duration", "INVALID_PARAM")],
    ),
    (
        one({"id": "n", "uses": "sleep", "params": {"until": "2030-01-01T00:00:00"}}),
        [("nodes[0].params.until", "INVALID_PARAM")],
    ),
    (
        one({"id": "n", "uses": "sleep", "params": {"until": "tomorrow"}}),
        [("nodes[0].params.until", "INVALID_PARAM")],
    ),
    (
        one({"id": "n", "uses": "sleep", "params": {"duration": 5, "extra": 1}}),
        [("nodes[0].params.extra", "INVALID_PARAM")],
    ),
    (
        one({"id": "n", "uses": "wait", "params": {"extra": 1}}),
        [("nodes[0].params.extra", "INVALID_PARAM")],
    ),
    (
        one({"id": "n", "uses": "wait", "config": {"maxRetries": 2}}),
        [("nodes[0].config.maxRetries", "UNSUPPORTED_CONFIG")],
    ),
    (
        one({"id": "n", "uses": "webhook", "config": {"timeout": 100}}),
        [("nodes[0].config.timeout", "UNSUPPORTED_CONFIG")],
    ),
    (
        one({"id": "n", "uses": "sleep", "params": {"duration": 1}, "config": {"timeout": 5}}),
        [("nodes[0].config.timeout", "UNSUPPORTED_CONFIG")],
    ),
    (
        one(
            {
                "id": "n",
                "uses": "subflow",
                "params": {"blueprintId": "c"},
                "config": {"maxRetries": 3},
            }
        ),
        [("nodes[0].config.maxRetries", "UNSUPPORTED_CONFIG")],
    ),
    (one({"id": "n", "uses": "subflow"}), [("nodes[0].params.blueprintId", "MISSING_PARAM")]),
    (batch(SCATTER, edge=False), [("nodes[0].params.gatherNodeId", "INVALID_PARAM")]),
    (
        batch({**SCATTER, "chunkSize": 0}),
        [("nodes[0].params.chunkSize", "INVALID_PARAM")],
    ),
    (
        batch({**SCATTER, "workerUsesKey": "wait"}),
        [("nodes[0].params.workerUsesKey", "INVALID_PARAM")],
    ),
    (
        batch({**SCATTER, "collectErrors": "yes"}),
        [("nodes[0].params.collectErrors", "INVALID_PARAM")],
    ),
    (batch({"gatherNodeId": "g"}), [("nodes[0].params.workerUsesKey", "MISSING_PARAM")]),
    (
        batch(SCATTER, {"id": "s[0]", "uses": "work"}),
        [("nodes[2].id", "RESERVED_NODE_ID")],
    ),
    (loop({}), [("nodes[0].params.condition", "MISSING_PARAM")]),
    (
        loop({"condition": "true", "maxIterations": 0}),
        [("nodes[0].params.maxIterations", "INVALID_PARAM")],
    ),
    (
        {
            "id": "p",
            "nodes": [
                {"id": "L", "uses": "loop-controller", "params": {"condition": "true"}},
                {"id": "b", "uses": "work"},
            ],
            "edges": [{"source": "L", "target": "b"}],
        },
        [("nodes[0]", "LOOP_WITHOUT_CONTINUE")],
    ),
]


@pytest.mark.parametrize(("blueprint", "expected"), INVALID)
def test_invalid_builtin_params(blueprint: dict[str, Any], expected: list[tuple[str, str]]) -> None:
    with pytest.raises(BlueprintError) as info:
        load_blueprint(blueprint)
    assert [(p.path, p.code) for p in info.value.problems] == expected


def test_all_problems_are_reported_together() -> None:
    blueprint = {
        "id": "p",
        "nodes": [
            {"id": "n", "uses": "sleep", "params": {"duration": "soon"}},
            {"id": "w", "uses": "wait", "config": {"maxRetries": 2}},
            {"id": "sub", "uses": "subflow"},
        ],
    }
    with pytest.raises(BlueprintError) as info:
        load_blueprint(blueprint)
    assert [(p.path, p.code) for p in info.value.problems] == [
        ("nodes[0].params.duration", "INVALID_PARAM"),
        ("nodes[1].config.maxRetries", "UNSUPPORTED_CONFIG"),
        ("nodes[2].params.blueprintId", "MISSING_PARAM"),
    ]


VALID = [
    one({"id": "n", "uses": "sleep", "params": {"duration": 0}}),
    one({"id": "n", "uses": "sleep", "params": {"duration": "2d"}}),
    one({"id": "n", "uses": "sleep", "params": {"duration": "500ms"}}),
    one({"id": "n", "uses": "sleep", "params": {"until": "2030-01-01T00:00:00+02:00"}}),
    one({"id": "n", "uses": "sleep", "params": {"until": "2030-01-01T00:00:00Z"}}),
    one({"id": "n", "uses": "wait", "config": {"maxRetries": 1}}),
    one({"id": "n", "uses": "webhook"}),
    batch(
        {
            **SCATTER,
            "chunkSize": 2,
            "collectErrors": True,
            "outputKey": "k",
            "workerParams": {"a": [1]},
            "workerConfig": {
                "maxRetries": 2,
                "retryDelay": 5,
                "backoff": "exponential",
                "timeout": 9,
            },
        }
    ),
    {
        "id": "p",
        "nodes": [
            {"id": "s", "uses": "batch-scatter", "params": SCATTER},
            {
                "id": "g",
                "uses": "batch-gather",
                "params": {"outputKey": "k", "gatherNodeId": "s", "joinStrategy": "all"},
            },
        ],
        "edges": [{"source": "s", "target": "g"}],
    },
    loop({"condition": "iteration < 3", "maxIterations": 3}),
]


@pytest.mark.parametrize("blueprint", VALID)
def test_valid_builtin_params(blueprint: dict[str, Any]) -> None:
    load_blueprint(blueprint)
