"""Typed nodes (issue 8): pydantic models for params, input and output.

Params are refused when a blueprint meets the registry (load, lint, `flowcraft validate`,
planning); input and output on every activation, in-process and distributed alike.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from blueprints.typed_orders.nodes import Invoice, Order, registry
from flowcraft_core import (
    BaseNode,
    BlueprintError,
    FlowRuntime,
    NodeContext,
    NodeRegistry,
    NodeValidationError,
    RunStatus,
    lint_blueprint,
    load_blueprint,
    typed,
)
from flowcraft_core.blueprint import blueprint_json_schema
from flowcraft_core.cli import main
from flowcraft_core.distributed import LocalCluster

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "blueprints" / "typed_orders" / "typed-orders.yaml"
REGISTRY_SPEC = "blueprints.typed_orders.nodes:registry"


def order(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": "A-1",
        "customer": "ada",
        "lines": [{"sku": "pen", "quantity": 3, "unit_price": 2.5}],
    }
    base.update(changes)
    return base


def example(**param_changes: Any) -> dict[str, Any]:
    data = load_blueprint(EXAMPLE).model_dump(by_alias=True, exclude_none=True)
    data["nodes"][1]["params"].update(param_changes)
    return data


async def run_example(context: dict[str, Any], *, distributed: bool = False) -> Any:
    bp = load_blueprint(EXAMPLE)
    if distributed:
        cluster = LocalCluster(registry=registry, blueprints=[bp])
        return await cluster.run(bp.id, context)
    return await FlowRuntime(registry=registry, blueprints=[bp]).run(bp, context)


# --- run time: input and output -------------------------------------------------------------


@pytest.mark.parametrize("distributed", [False, True], ids=["in-process", "distributed-memory"])
async def test_valid_order_is_invoiced_with_json_outputs(distributed: bool) -> None:
    result = await run_example({"order": order()}, distributed=distributed)
    assert result.status == RunStatus.COMPLETED
    invoice = result.context["_outputs.price"]
    assert invoice == {"order_id": "A-1", "net": 7.5, "tax": 1.5, "total": 9.0, "currency": "EUR"}
    assert result.context["_outputs.done"]["status"] == "invoiced"
    json.dumps(result.context)  # models reached the context as plain JSON data


@pytest.mark.parametrize("distributed", [False, True], ids=["in-process", "distributed-memory"])
async def test_invalid_input_fails_the_node_naming_each_field(distributed: bool) -> None:
    bad = order(lines=[{"sku": "pen", "quantity": 0, "unit_price": 2.5}])
    del bad["customer"]
    result = await run_example({"order": bad}, distributed=distributed)
    assert result.status == RunStatus.FAILED
    [error] = result.errors
    assert error.node_id == "parse"
    assert error.type == "NodeValidationError"
    assert "invalid input" in error.message
    assert "input.customer: Field required" in error.message
    assert "input.lines[0].quantity" in error.message
    assert "_outputs.parse" not in result.context


async def test_validation_failures_are_not_retried_but_fallbacks_apply() -> None:
    calls: list[int] = []

    class Payload(BaseModel):
        n: int

    async def strict(ctx: NodeContext) -> Any:
        calls.append(ctx.attempt)
        return {"output": ctx.input.n}

    async def stand_in(ctx: NodeContext) -> Any:
        return {"output": "fallback"}

    reg = NodeRegistry()
    reg.register("strict", strict, input=Payload)
    reg.register("stand_in", stand_in)
    bp = load_blueprint(
        {
            "id": "retry-typed",
            "nodes": [
                {
                    "id": "a",
                    "uses": "strict",
                    "inputs": "payload",
                    "config": {"maxRetries": 3, "fallback": "stand_in"},
                }
            ],
            "edges": [],
        }
    )
    result = await FlowRuntime(registry=reg).run(bp, {"payload": {"n": "not a number"}})
    assert calls == []  # the body never ran: validation happens before it
    assert result.status == RunStatus.COMPLETED
    assert result.context["_outputs.a"] == "fallback"
    ok = await FlowRuntime(registry=reg).run(bp, {"payload": {"n": "7"}})
    assert ok.context["_outputs.a"] == 7  # coerced by the model
    assert calls == [1]


async def test_output_that_breaks_its_model_fails_the_node() -> None:
    class Out(BaseModel):
        total: float

    reg = NodeRegistry()

    @reg.node("bad", output=Out)
    async def bad(ctx: NodeContext) -> Any:
        return {"output": {"total": "lots"}, "action": "x"}

    bp = load_blueprint({"id": "o", "nodes": [{"id": "n", "uses": "bad"}], "edges": []})
    result = await FlowRuntime(registry=reg).run(bp)
    assert result.status == RunStatus.FAILED
    assert result.errors[0].type == "NodeValidationError"
    assert "node 'n': invalid output: output.total" in result.errors[0].message


async def test_class_nodes_and_plain_functions_can_be_typed() -> None:
    class In(BaseModel):
        word: str

    class Out(BaseModel):
        shout: str

    class Shout(BaseNode):
        async def prep(self, ctx: NodeContext) -> Any:
            return ctx.input.word  # prep sees the model instance

        async def exec(self, prep_result: Any, ctx: NodeContext) -> Any:
            return {"output": {"shout": prep_result.upper()}}

    def length(ctx: NodeContext) -> Any:  # plain: runs in a thread, still typed
        return {"output": {"shout": str(len(ctx.input.shout))}}

    reg = NodeRegistry()
    reg.register("shout", typed(Shout, input=In, output=Out))
    reg.register("length", length, input=Out, output=Out)
    bp = load_blueprint(
        {
            "id": "c",
            "nodes": [{"id": "s", "uses": "shout", "inputs": "w"}, {"id": "l", "uses": "length"}],
            "edges": [{"source": "s", "target": "l"}],
        }
    )
    result = await FlowRuntime(registry=reg).run(bp, {"w": {"word": "hey"}})
    assert result.status == RunStatus.COMPLETED, result.errors
    assert result.context["_outputs.s"] == {"shout": "HEY"}
    assert result.context["_outputs.l"] == {"shout": "3"}
    failed = await FlowRuntime(registry=reg).run(bp, {"w": {"word": 5}})
    assert failed.errors[0].message.startswith("node 's': invalid input: input.word")


def test_typed_refuses_what_is_not_a_model_or_implementation() -> None:
    with pytest.raises(TypeError, match="pydantic BaseModel"):
        typed(lambda ctx: None, input=dict)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="not a BaseNode subclass"):
        typed(int, input=Order)


# --- load time: params ----------------------------------------------------------------------


def test_params_are_checked_when_the_blueprint_meets_the_registry() -> None:
    data = example(taxRate=0.9, currency="euro")
    load_blueprint(data)  # without a registry nothing is known about `orders.price`
    with pytest.raises(BlueprintError) as caught:
        load_blueprint(data, registry=registry)
    found = {(p.path, p.code) for p in caught.value.problems}
    assert found == {
        ("nodes[1].params.taxRate", "INVALID_PARAMS"),
        ("nodes[1].params.currency", "INVALID_PARAMS"),
    }
    assert "less than or equal to 0.5" in str(caught.value)
    assert caught.value.blueprint_id == "typed-orders"


async def test_runtime_refuses_to_run_a_blueprint_with_bad_params() -> None:
    bp = load_blueprint(example(taxRate=-1))
    with pytest.raises(BlueprintError, match=r"nodes\[1\]\.params\.taxRate"):
        await FlowRuntime(registry=registry).run(bp, {"order": order()})


def test_lint_reports_invalid_params_as_errors_with_paths() -> None:
    bp = load_blueprint(example(taxRate="high"))
    report = lint_blueprint(bp, registry)
    assert not report.is_valid
    [issue] = [i for i in report.issues if i.code == "INVALID_PARAMS"]
    assert (issue.path, issue.node_id, issue.severity) == (
        "nodes[1].params.taxRate",
        "price",
        "error",
    )


def test_batch_worker_params_are_checked_against_the_item_model() -> None:
    class ItemParams(BaseModel):
        factor: int

    reg = NodeRegistry()
    reg.register("times", lambda ctx: {"output": ctx.input}, params=ItemParams)
    doc = {
        "id": "b",
        "nodes": [
            {
                "id": "s",
                "uses": "batch-scatter",
                "params": {
                    "workerUsesKey": "times",
                    "gatherNodeId": "g",
                    "workerParams": {"factor": "x"},
                },
            },
            {"id": "g", "uses": "batch-gather"},
        ],
        "edges": [{"source": "s", "target": "g"}],
    }
    with pytest.raises(BlueprintError) as caught:
        load_blueprint(doc, registry=reg)
    assert [p.path for p in caught.value.problems] == ["nodes[0].params.workerParams.factor"]


def test_flowcraft_validate_reports_params_with_paths(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(REPO)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(example(taxRate=2)), encoding="utf-8")
    code = main(["validate", str(path), "--registry", REGISTRY_SPEC])
    out = capsys.readouterr().out
    assert code == 1
    assert "nodes[1].params.taxRate" in out and "[INVALID_PARAMS]" in out
    assert main(["validate", str(EXAMPLE), "--registry", REGISTRY_SPEC]) == 0


def test_flowcraft_schema_describes_typed_params(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(REPO)
    assert main(["schema", "--registry", REGISTRY_SPEC]) == 0
    schema = json.loads(capsys.readouterr().out)
    rules = {
        rule["if"]["properties"]["uses"]["const"]: rule["then"]["properties"]["params"]
        for rule in schema["$defs"]["NodeDefinition"]["allOf"]
    }
    assert rules["orders.price"]["properties"]["taxRate"]["maximum"] == 0.5
    assert "orders.parse" not in rules  # typed input/output, but no params model
    assert "batch-scatter" in rules  # built-ins are still described
    assert "orders.price" not in {
        r["if"]["properties"]["uses"]["const"]
        for r in blueprint_json_schema()["$defs"]["NodeDefinition"]["allOf"]
    }


# --- property: the node accepts exactly what its model accepts --------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | st.text(max_size=3) | st.floats(-3, 3),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=6,
)
line_like = st.fixed_dictionaries(
    {"sku": st.text(max_size=2), "quantity": json_values, "unit_price": json_values}
)
order_like = st.fixed_dictionaries(
    {"id": st.text(max_size=2), "customer": json_values, "lines": st.lists(line_like, max_size=2)}
)


@given(payload=st.one_of(order_like, json_values))
async def test_a_run_completes_exactly_when_the_model_accepts_the_order(payload: Any) -> None:
    try:
        Order.model_validate(payload)
        accepted = True
    except ValidationError:
        accepted = False
    result = await run_example({"order": payload})
    failed_at_parse = any(
        e.node_id == "parse" and e.type == "NodeValidationError" for e in result.errors
    )
    assert failed_at_parse is not accepted
    if accepted:
        assert result.status == RunStatus.COMPLETED, result.errors
        Invoice.model_validate(result.context["_outputs.price"])


def test_node_validation_error_lists_every_problem() -> None:
    error = NodeValidationError("x", "input", [("input.a", "bad"), ("input.b", "worse")])
    assert str(error) == "node 'x': invalid input: input.a: bad; input.b: worse"
    assert error.problems == [("input.a", "bad"), ("input.b", "worse")]


async def test_aliased_fields_keep_their_blueprint_spelling() -> None:
    """A model with aliases validates the blueprint's names and hands back the same names."""
    from pydantic import ConfigDict, Field

    class Params(BaseModel):
        model_config = ConfigDict(populate_by_name=True)
        tax_rate: float = Field(alias="taxRate")

    class Out(BaseModel):
        total_cents: int = Field(alias="totalCents")

    reg = NodeRegistry()

    @reg.node("tax", params=Params, output=Out)
    async def tax(ctx: NodeContext) -> Out:
        return Out(totalCents=int(100 * (1 + ctx.params["taxRate"])))

    bp = load_blueprint(
        {"id": "a", "nodes": [{"id": "t", "uses": "tax", "params": {"taxRate": 0.25}}]},
        registry=reg,
    )
    result = await FlowRuntime(registry=reg).run(bp)
    assert result.status == RunStatus.COMPLETED, result.errors
    assert result.context["_outputs.t"] == {"totalCents": 125}
