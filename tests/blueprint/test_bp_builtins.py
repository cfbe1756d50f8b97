"""Built-in node parameters (SPEC 5): MISSING_PARAM / INVALID_PARAM and the sleep parsers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from bp_support import doc, edge, messages, node, problems

from flowcraft_core.blueprint import load_blueprint, parse_duration_ms, parse_until
from flowcraft_core.blueprint.builtin_params import BUILTIN_PARAMS
from flowcraft_core.reserved import BUILTIN_KEYS


@pytest.mark.parametrize(
    ("value", "ms"),
    [
        (0, 0.0),
        (1500, 1500.0),
        (2.5, 2.5),
        ("0ms", 0.0),
        ("500ms", 500.0),
        ("10s", 10_000.0),
        ("5m", 300_000.0),
        ("1h", 3_600_000.0),
        ("2d", 172_800_000.0),
    ],
)
def test_parse_duration_ms(value: object, ms: float) -> None:
    assert parse_duration_ms(value) == ms


@pytest.mark.parametrize(
    "value",
    [-1, float("nan"), float("inf"), True, None, "", "1.5s", "10 s", "10S", "s", "-5s", "5", "5w",
     "10s\n", "٣s", [10], 10**400, "9" * 5000 + "d"],
)  # fmt: skip
def test_parse_duration_ms_rejects(value: object) -> None:
    with pytest.raises(ValueError):
        parse_duration_ms(value)


def test_parse_until() -> None:
    assert parse_until("2030-01-02T03:04:05Z") == datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    when = parse_until("2030-01-02T03:04:05.250+02:00")
    assert when.utcoffset() == timedelta(hours=2)
    assert when == datetime(2030, 1, 2, 1, 4, 5, 250_000, tzinfo=timezone.utc)  # noqa: UP017


@pytest.mark.parametrize(
    "value", ["2030-01-02T03:04:05", "2030-01-02", "tomorrow", "", 1_900_000_000, None]
)
def test_parse_until_rejects(value: object) -> None:
    with pytest.raises(ValueError):
        parse_until(value)


def test_every_builtin_has_a_param_spec() -> None:
    assert set(BUILTIN_PARAMS) == BUILTIN_KEYS


def _batch(scatter_params: dict[str, Any] | None = None, **gather_params: Any) -> dict[str, Any]:
    params = {"workerUsesKey": "items.process", "gatherNodeId": "g"}
    params.update(scatter_params or {})
    return doc(
        node("s", "batch-scatter", params=params),
        node("g", "batch-gather", params=gather_params),
        edges=[edge("s", "g")],
    )


def test_valid_batch_loads_with_every_documented_param() -> None:
    source = _batch(
        {
            "outputKey": "results",
            "chunkSize": 4,
            "collectErrors": True,
            "workerParams": {"mode": "fast"},
            "workerConfig": {
                "maxRetries": 3,
                "retryDelay": 10,
                "backoff": "exponential",
                "timeout": 5,
            },
        },
        outputKey="out",
        gatherNodeId="g",  # TypeScript-builder compatibility params
        joinStrategy="all",
    )
    bp = load_blueprint(source)
    assert bp.node("s").params["chunkSize"] == 4


_NOT_GATHER = "node 's' is not a 'batch-gather' node"


@pytest.mark.parametrize(
    ("params", "path", "message"),
    [
        ({"workerUsesKey": None}, "workerUsesKey", "must be a non-empty string"),
        ({"workerUsesKey": "wait"}, "workerUsesKey", None),
        ({"chunkSize": 0}, "chunkSize", "must be an integer >= 1"),
        ({"chunkSize": 2.0}, "chunkSize", "must be an integer >= 1"),
        ({"chunkSize": True}, "chunkSize", "must be an integer >= 1"),
        ({"collectErrors": "yes"}, "collectErrors", "must be a boolean"),
        ({"outputKey": ""}, "outputKey", "must be a non-empty string"),
        ({"workerParams": []}, "workerParams", "must be an object"),
        ({"workerConfig": 3}, "workerConfig", "must be an object"),
        ({"workerConfig": {"maxRetries": 0}}, "workerConfig.maxRetries", None),
        ({"workerConfig": {"timeout": 0}}, "workerConfig.timeout", None),
        ({"workerConfig": {"retryDelay": -1}}, "workerConfig.retryDelay", None),
        ({"workerConfig": {"backoff": "x"}}, "workerConfig.backoff", None),
        ({"workerConfig": {"fallback": "x"}}, "workerConfig.fallback", None),
        ({"inputKey": "items"}, "inputKey", "unknown parameter for 'batch-scatter'"),
        ({"gatherNodeId": "nope"}, "gatherNodeId", "unknown node 'nope'"),
        ({"gatherNodeId": "s"}, "gatherNodeId", _NOT_GATHER),
    ],
)
def test_scatter_params(params: dict[str, Any], path: str, message: str | None) -> None:
    source = _batch(params)
    full_path = f"nodes[0].params.{path}"
    assert problems(source) == [(full_path, "INVALID_PARAM")]
    if message is not None:
        assert messages(source) == {full_path: message}


def test_scatter_required_params() -> None:
    source = doc(
        node("s", "batch-scatter"),
        node("g", "batch-gather"),
        edges=[edge("s", "g")],
    )
    assert problems(source) == [
        ("nodes[0].params.workerUsesKey", "MISSING_PARAM"),
        ("nodes[0].params.gatherNodeId", "MISSING_PARAM"),
    ]


def test_scatter_needs_an_edge_to_its_gather() -> None:
    source = _batch()
    source["edges"] = []
    assert messages(source) == {"nodes[0].params.gatherNodeId": "requires an edge from 's' to 'g'"}


def test_gather_params() -> None:
    source = _batch(outputKey=5, joinStrategy="first", extra=1)
    assert problems(source) == [
        ("nodes[1].params.outputKey", "INVALID_PARAM"),
        ("nodes[1].params.joinStrategy", "INVALID_PARAM"),
        ("nodes[1].params.extra", "INVALID_PARAM"),
    ]


def _loop(params: dict[str, Any]) -> dict[str, Any]:
    return doc(
        node("a"),
        node("L", "loop-controller", params=params),
        edges=[edge("a", "L"), edge("L", "a", action="continue")],
    )


def test_loop_controller_params() -> None:
    assert load_blueprint(_loop({"condition": "count < 3", "maxIterations": 5}))
    assert problems(_loop({})) == [("nodes[1].params.condition", "MISSING_PARAM")]
    assert problems(_loop({"condition": 1})) == [("nodes[1].params.condition", "INVALID_PARAM")]
    assert problems(_loop({"condition": "x", "maxIterations": 0})) == [
        ("nodes[1].params.maxIterations", "INVALID_PARAM")
    ]
    assert problems(_loop({"condition": "x", "limit": 3})) == [
        ("nodes[1].params.limit", "INVALID_PARAM")
    ]


@pytest.mark.parametrize(
    "params",
    [{"duration": 0}, {"duration": 250.5}, {"duration": "10s"}, {"until": "2030-01-01T00:00:00Z"}],
)
def test_sleep_accepts(params: dict[str, Any]) -> None:
    assert load_blueprint(doc(node("s", "sleep", params=params)))


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, [("nodes[0].params.duration", "MISSING_PARAM")]),
        ({"duration": "10 s"}, [("nodes[0].params.duration", "INVALID_PARAM")]),
        ({"duration": -5}, [("nodes[0].params.duration", "INVALID_PARAM")]),
        ({"until": "2030-01-01T00:00:00"}, [("nodes[0].params.until", "INVALID_PARAM")]),
        (
            {"duration": 5, "until": "2030-01-01T00:00:00Z"},
            [("nodes[0].params.until", "INVALID_PARAM")],
        ),
        ({"duration": 5, "jitter": 1}, [("nodes[0].params.jitter", "INVALID_PARAM")]),
    ],
)
def test_sleep_rejects(params: dict[str, Any], expected: list[tuple[str, str]]) -> None:
    assert problems(doc(node("s", "sleep", params=params))) == expected


def test_sleep_without_offset_says_why() -> None:
    source = doc(node("s", "sleep", params={"until": "2030-01-01T00:00:00"}))
    assert "offset" in messages(source)["nodes[0].params.until"]


@pytest.mark.parametrize("uses", ["wait", "webhook"])
def test_wait_and_webhook_take_no_params(uses: str) -> None:
    assert load_blueprint(doc(node("w", uses)))
    assert problems(doc(node("w", uses, params={"timeout": 5}))) == [
        ("nodes[0].params.timeout", "INVALID_PARAM")
    ]


def test_subflow_params() -> None:
    good = {"blueprintId": "child", "inputs": {"order": "fetch"}, "outputs": {"total": "sum"}}
    assert load_blueprint(doc(node("c", "subflow", params=good)))
    assert problems(doc(node("c", "subflow"))) == [("nodes[0].params.blueprintId", "MISSING_PARAM")]
    bad = {"blueprintId": "", "inputs": ["order"], "outputs": {"total": 3}, "mode": "x"}
    assert problems(doc(node("c", "subflow", params=bad))) == [
        ("nodes[0].params.blueprintId", "INVALID_PARAM"),
        ("nodes[0].params.inputs", "INVALID_PARAM"),
        ("nodes[0].params.outputs.total", "INVALID_PARAM"),
        ("nodes[0].params.mode", "INVALID_PARAM"),
    ]


def test_user_nodes_params_are_not_checked() -> None:
    assert load_blueprint(doc(node("a", "my.sleep", params={"duration": "whenever"})))
