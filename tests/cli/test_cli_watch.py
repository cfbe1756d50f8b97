"""The `--watch` printer on a terminal: progress lines plus a status line redrawn in place."""

from __future__ import annotations

import io

from flowcraft_core import FlowRuntime, NodeRegistry, load_blueprint
from flowcraft_core.cli.watch import ProgressPrinter

CLEAR = "\r\x1b[K"


async def test_live_status_line_lists_running_nodes() -> None:
    registry = NodeRegistry()

    @registry.node("echo")
    async def echo(ctx: object) -> None:
        return None

    bp = load_blueprint(
        {
            "id": "live",
            "nodes": [{"id": "a", "uses": "echo"}, {"id": "b", "uses": "echo"}],
            "edges": [{"source": "a", "target": "b"}],
        }
    )
    stream = io.StringIO()
    printer = ProgressPrinter(stream, live=True)
    result = await FlowRuntime(registry=registry, event_bus=printer).run(bp)
    printer.close()

    assert result.status == "completed"
    text = stream.getvalue()
    assert f"{CLEAR}running: a | done: 0" in text
    assert f"{CLEAR}running: b | done: 1" in text
    assert text.endswith(CLEAR)  # the status line is gone at the end
    lines = [part for part in text.replace(CLEAR, "\n").splitlines() if "] " in part]
    assert [line.split("] ", 1)[1].split()[:2] for line in lines] == [
        ["start", "live"],
        ["ok", "a"],
        ["ok", "b"],
        ["end", "live"],
    ]


async def test_not_a_terminal_writes_plain_lines_only() -> None:
    stream = io.StringIO()
    printer = ProgressPrinter(stream)  # StringIO is not a TTY
    result = await FlowRuntime(event_bus=printer).run(
        load_blueprint({"id": "w", "nodes": [{"id": "hold", "uses": "wait"}]})
    )
    printer.close()

    assert result.status == "awaiting"
    text = stream.getvalue()
    assert "\x1b" not in text
    assert "wait     hold  external_event" in text
