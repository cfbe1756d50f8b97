"""The inspector's HTML without Redis: long values cut and expandable, huge runs bounded."""

from __future__ import annotations

from flowcraft_bullmq.inspection import Activation, RunInspection, RunSummary, node_states
from flowcraft_bullmq.inspector.pages import LONG_CHARS, MAX_ROWS, SHORT_CHARS, run_page, value_html


def test_values_are_cut_and_expand_to_the_whole() -> None:
    assert value_html("<i>") == '<code class="value">&quot;&lt;i&gt;&quot;</code>'
    long = {"k": "x" * 500}
    html = value_html(long)
    assert html.startswith('<details class="value"><summary>')
    assert "x" * (SHORT_CHARS - 10) in html and "x" * 500 in html
    huge = value_html(["y" * (LONG_CHARS + 10)])
    assert "more characters)" in huge and "y" * (LONG_CHARS + 10) not in huge


def test_a_huge_run_shows_a_bounded_timeline() -> None:
    acts = [
        Activation(akey=f"n@{i}", node_id="n", iteration=(i,), state="done", enqueued_at=float(i))
        for i in range(MAX_ROWS + 500)
    ]
    run = RunInspection(
        summary=RunSummary("r", "bp", "completed", 0.0, 10.0, 10.0, 0),
        pin="",
        context={},
        errors=[],
        waiting={},
        activations=acts,
        node_states=node_states(acts),
    )
    html = run_page(run, None, base="", where="")
    assert html.count("data-akey=") == MAX_ROWS
    assert f"Only the first {MAX_ROWS} are shown" in html
    assert "is not loaded here" in html  # no blueprint: no graph, no resume
