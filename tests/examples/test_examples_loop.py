"""blueprints/loop: a loop-controller draining a list page by page."""

from __future__ import annotations

from examples_support import example_blueprint, example_runtime

from flowcraft_core import Flow

FILE = "paginate.json"


async def test_sample_catalog_is_fetched_in_three_pages() -> None:
    runtime, bus = example_runtime("loop", concurrency=1)
    result = await runtime.run(example_blueprint("loop", FILE))

    assert result.status == "completed", result.errors
    assert result.outputs["summarize"] == {
        "pages": 3,
        "count": 7,
        "items": [f"item-{n}" for n in range(1, 8)],
    }
    pages = [tuple(e.iteration) for e in bus.of_type("node:start") if e.node_id == "fetch_page"]
    assert pages == [(0,), (1,), (2,)]
    controller = [e.result.action for e in bus.of_type("node:finish") if e.node_id == "more_pages"]
    assert controller == ["continue", "continue", "continue", "break"]
    assert result.context["hasMore"] is False
    assert result.context["pending"] == []


async def test_an_empty_catalog_breaks_at_once() -> None:
    runtime, _bus = example_runtime("loop")
    result = await runtime.run(example_blueprint("loop", FILE), {"catalog": []})

    assert result.status == "completed"
    assert "fetch_page" not in result.outputs
    assert result.outputs["summarize"] == {"pages": 0, "count": 0, "items": []}


async def test_a_long_catalog_hits_max_iterations() -> None:
    runtime, _bus = example_runtime("loop")
    catalog = list(range(200))  # 67 pages of 3, more than maxIterations (50)
    result = await runtime.run(example_blueprint("loop", FILE), {"catalog": catalog})

    assert result.status == "failed"
    [error] = result.errors
    assert (error.node_id, error.type) == ("more_pages", "LoopLimitError")
    assert len(result.context["collected"]) == 150


def test_the_builder_writes_the_same_blueprint() -> None:
    flow = (
        Flow("paginate")
        .metadata(
            version="1",
            description=example_blueprint("loop", FILE).metadata.model_extra["description"],
        )
        .node("start", "pages.start", inputs="catalog")
        .loop(
            "more_pages",
            start_node_id="fetch_page",
            end_node_id="fetch_page",
            condition="hasMore",
            max_iterations=50,
        )
        .node("fetch_page", "pages.fetch_page", params={"pageSize": 3})
        .node("summarize", "pages.summarize")
        .edge("start", "more_pages")
        .edge("more_pages", "summarize")
    )

    assert flow.to_blueprint() == example_blueprint("loop", FILE)
