"""SPEC 2.7 input resolution and the `_inputs.<id>` records of 3.6/3.12."""

from __future__ import annotations

from typing import Any

import pytest

from .support import Calls, bp, edge, make_runtime, node

FETCHED = {
    "customer": {"email": "a@example.com", "tags": ["vip", "eu"]},
    "items": [{"name": "apple"}, {"name": "pear"}],
}


def recorder(calls: Calls) -> Any:
    async def impl(ctx: Any) -> dict[str, Any]:
        calls.add((ctx.node_id, ctx.input))
        return {"output": ctx.params.get("out")}

    return impl


def run_inputs(inputs: Any) -> dict[str, Any]:
    """fetch -> probe, where probe has `inputs`."""
    return bp(
        [node("fetch", "rec", params={"out": FETCHED}), node("probe", "rec", inputs=inputs)],
        [edge("fetch", "probe", transform="'edge-value'")],
    )


@pytest.mark.parametrize(
    ("reference", "expected"),
    [
        ("fetch", FETCHED),  # rule 2: a node output
        ("_outputs.fetch", FETCHED),  # rule 1: exact key
        ("fetch.customer.email", "a@example.com"),  # rule 4 on a node output
        ("fetch.customer.tags.1", "eu"),  # list index
        ("fetch.items.0.name", "apple"),
        ("fetch.items.5.name", None),  # index out of range
        ("fetch.items.-1", None),  # negative index is not an index
        ("fetch.customer.missing.deeper", None),  # missing link
        ("fetch.customer.email.x", None),  # walking into a string
        ("cfg.limit", 5),  # rule 4 on a context key
        ("cfg", {"limit": 5}),  # rule 3
        ("dotted.key", "exact"),  # rule 3 beats splitting
        ("_threshold", 0.8),  # rule 1
        ("_missing", None),
        ("nowhere", None),  # rule 5
        ("nowhere.deep", None),
    ],
)
async def test_string_inputs_resolve_references(reference: str, expected: Any) -> None:
    calls = Calls()
    runtime, _ = make_runtime({"rec": recorder(calls)})
    initial = {"cfg": {"limit": 5}, "dotted.key": "exact", "_threshold": 0.8}
    result = await runtime.run(run_inputs(reference), initial)
    assert result.status == "completed"
    assert calls.log[-1] == ("probe", expected)


async def test_mapping_inputs_resolve_each_reference() -> None:
    calls = Calls()
    runtime, _ = make_runtime({"rec": recorder(calls)})
    inputs = {
        "order": "fetch",
        "email": "fetch.customer.email",
        "threshold": "_threshold",
        "raw": "_outputs.fetch",
        "none": "missing",
    }
    result = await runtime.run(run_inputs(inputs), {"_threshold": 0.8})
    assert result.status == "completed"
    assert calls.log[-1] == (
        "probe",
        {
            "order": FETCHED,
            "email": "a@example.com",
            "threshold": 0.8,
            "raw": FETCHED,
            "none": None,
        },
    )


async def test_inputs_beat_edge_values_which_are_still_recorded() -> None:
    calls = Calls()
    runtime, _ = make_runtime({"rec": recorder(calls)})
    result = await runtime.run(run_inputs("fetch.customer.email"))
    assert calls.log[-1] == ("probe", "a@example.com")
    assert result.context["_inputs.probe"] == "edge-value"


async def test_node_output_beats_a_context_key_of_the_same_name() -> None:
    calls = Calls()
    runtime, _ = make_runtime({"rec": recorder(calls)})
    result = await runtime.run(run_inputs("fetch"), {"fetch": "context-value"})
    assert calls.log[-1] == ("probe", FETCHED)
    assert result.context["fetch"] == "context-value"


async def test_node_ids_containing_dots_resolve_to_their_output() -> None:
    calls = Calls()
    runtime, _ = make_runtime({"rec": recorder(calls)})
    blueprint = bp(
        [
            node("api.fetch", "rec", params={"out": {"x": 1}}),
            node("probe", "rec", inputs={"whole": "api.fetch", "part": "api.fetch.x"}),
        ],
        [edge("api.fetch", "probe")],
    )
    result = await runtime.run(blueprint)
    assert result.status == "completed"
    # "api.fetch.x": `_outputs.api.fetch.x` and key "api.fetch.x" are missing, and the head
    # "api" names nothing, so the result is None (rule 4 splits at the first dot only).
    assert calls.log[-1] == ("probe", {"whole": {"x": 1}, "part": None})


async def test_edge_activated_node_gets_the_delivered_value_and_records_it() -> None:
    calls = Calls()
    runtime, _ = make_runtime({"rec": recorder(calls)})
    blueprint = bp(
        [node("a", "rec", params={"out": {"n": 2}}), node("b", "rec")],
        [edge("a", "b", transform="input.n + 40")],
    )
    result = await runtime.run(blueprint)
    assert calls.log == [("a", None), ("b", 42)]
    assert result.context["_inputs.b"] == 42


async def test_entry_node_input_comes_from_initial_inputs_key() -> None:
    calls = Calls()
    runtime, _ = make_runtime({"rec": recorder(calls)})
    blueprint = bp([node("first", "rec"), node("second", "rec")])
    result = await runtime.run(blueprint, {"_inputs.first": {"hello": "world"}})
    assert result.status == "completed"
    assert sorted(calls.log, key=lambda c: c[0]) == [
        ("first", {"hello": "world"}),
        ("second", None),
    ]
    # Entry activations do not get `_inputs.<id>` written by the engine.
    assert "_inputs.second" not in result.context
    assert result.context["_inputs.first"] == {"hello": "world"}


async def test_entry_node_with_inputs_uses_them_instead_of_initial_inputs_key() -> None:
    calls = Calls()
    runtime, _ = make_runtime({"rec": recorder(calls)})
    blueprint = bp([node("first", "rec", inputs="seed")])
    await runtime.run(blueprint, {"_inputs.first": "ignored", "seed": [1, 2]})
    assert calls.log == [("first", [1, 2])]


async def test_inputs_see_outputs_committed_before_the_node_started() -> None:
    calls = Calls()
    runtime, _ = make_runtime({"rec": recorder(calls)})
    blueprint = bp(
        [
            node("a", "rec", params={"out": "A"}),
            node("b", "rec", params={"out": "B"}),
            node("c", "rec", inputs={"a": "a", "b": "b"}),
        ],
        [edge("a", "b"), edge("b", "c")],
    )
    await runtime.run(blueprint)
    assert calls.log[-1] == ("c", {"a": "A", "b": "B"})


async def test_initial_outputs_keys_are_readable_but_do_not_mark_nodes_finished() -> None:
    calls = Calls()
    runtime, _ = make_runtime({"rec": recorder(calls)})
    blueprint = bp(
        [node("a", "rec", params={"out": "fresh"}), node("b", "rec", inputs="a")],
        [edge("a", "b")],
    )
    result = await runtime.run(blueprint, {"_outputs.a": "stale"})
    assert result.status == "completed"
    assert calls.log == [("a", None), ("b", "fresh")]
    assert result.context["_outputs.a"] == "fresh"
