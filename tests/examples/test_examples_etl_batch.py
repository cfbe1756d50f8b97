"""blueprints/etl_batch: batch scatter/gather with an in-flight cap and collected errors."""

from __future__ import annotations

from examples_support import example_blueprint, example_registry, example_runtime

from flowcraft_core import Flow

FILE = "etl.yaml"


async def test_sample_rows_are_transformed_in_order_and_loaded() -> None:
    runtime, bus = example_runtime("etl_batch")
    result = await runtime.run(example_blueprint("etl_batch", FILE))

    assert result.status == "completed", result.errors
    rows = [
        {"sku": "apple", "qty": 3, "unitPrice": 0.5, "total": 1.5},
        {"sku": "pear", "qty": 2, "unitPrice": 0.75, "total": 1.5},
        {"sku": "apple", "qty": 1, "unitPrice": 0.5, "total": 0.5},
        {"sku": "plum", "qty": 10, "unitPrice": 0.2, "total": 2.0},
    ]
    assert result.context["rows"] == rows
    assert result.outputs["transform_gather"] == rows
    assert result.outputs["transform_scatter"] == {
        "gatherNodeId": "transform_gather",
        "itemCount": 4,
    }
    assert result.outputs["load"] == {
        "loaded": 4,
        "rejected": [],
        "revenue": 5.5,
        "bySku": {"apple": 2.0, "pear": 1.5, "plum": 2.0},
    }
    [start] = bus.of_type("batch:start")
    assert (start.batch_id, start.item_count) == ("transform_scatter", 4)


async def test_at_most_chunk_size_items_are_in_flight() -> None:
    csv = "sku,qty,unit_price\n" + "".join(f"s{i},1,1\n" for i in range(9))
    runtime, bus = example_runtime("etl_batch")
    result = await runtime.run(example_blueprint("etl_batch", FILE), {"csv": csv})

    assert result.status == "completed", result.errors
    in_flight = peak = 0
    for event in bus.events:
        if getattr(event, "node_id", "").startswith("transform_scatter["):
            if event.type == "node:start":
                in_flight += 1
                peak = max(peak, in_flight)
            elif event.type in ("node:finish", "node:error"):
                in_flight -= 1
    assert peak == 2
    assert result.outputs["load"]["loaded"] == 9


async def test_bad_rows_are_collected_and_the_run_completes() -> None:
    csv = "sku,qty,unit_price\nfig,4,1.25\nbroken,x,1\nkiwi,2,0.5\n"
    runtime, bus = example_runtime("etl_batch")
    result = await runtime.run(example_blueprint("etl_batch", FILE), {"csv": csv})

    assert result.status == "completed"
    assert result.errors == []
    assert result.context["rows"][1] == {
        "error": {"type": "NonRetryableError", "message": "bad number in 'broken,x,1'"}
    }
    assert result.outputs["load"] == {
        "loaded": 2,
        "rejected": ["bad number in 'broken,x,1'"],
        "revenue": 6.0,
        "bySku": {"fig": 5.0, "kiwi": 1.0},
    }
    assert [e.node_id for e in bus.of_type("node:error")] == ["transform_scatter[1]"]


def test_the_builder_writes_the_same_blueprint() -> None:
    flow = (
        Flow("etl-batch")
        .metadata(version="1")
        .node("extract", "etl.extract", inputs="csv")
        .batch(
            "transform",
            "etl.transform_row",
            input_key="extract",
            output_key="rows",
            chunk_size=2,
            collect_errors=True,
        )
        .node("load", "etl.load")
        .edge("extract", "transform")
        .edge("transform", "load")
    )

    assert flow.to_blueprint() == example_blueprint("etl_batch", FILE)
    assert set(example_registry("etl_batch")) == {"etl.extract", "etl.transform_row", "etl.load"}
