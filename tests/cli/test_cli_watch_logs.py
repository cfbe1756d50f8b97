"""`run --watch` on a terminal with log records (retries are logged as warnings): each record
starts on a cleared line, never after the live status line."""

from __future__ import annotations

import io
import logging
from typing import Any

from flowcraft_core import FlowRuntime, NodeRegistry, load_blueprint
from flowcraft_core.cli.watch import ProgressPrinter

CLEAR = "\r\x1b[K"


async def test_log_records_clear_the_status_line_first() -> None:
    registry = NodeRegistry()

    @registry.node("flaky")
    async def flaky(ctx: Any) -> dict[str, Any]:
        if ctx.attempt < 2:
            raise ConnectionError("try again")
        return {"output": 1}

    bp = load_blueprint(
        {"id": "logs", "nodes": [{"id": "f", "uses": "flaky", "config": {"maxRetries": 2}}]}
    )
    stream = io.StringIO()
    printer = ProgressPrinter(stream, live=True)
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        with printer.logs_clear():
            result = await FlowRuntime(registry=registry, event_bus=printer).run(bp)
        assert handler.filters == []  # removed again
    finally:
        root.removeHandler(handler)
    printer.close()

    assert result.status == "completed"
    text = stream.getvalue()
    assert "WARNING" in text
    for line in text.split("\n"):
        if "WARNING" in line:
            # What precedes the record on its line was cleared: no status text before it.
            assert line.rsplit(CLEAR, 1)[-1].startswith("WARNING"), repr(line)
