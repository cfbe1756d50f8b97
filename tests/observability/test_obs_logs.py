"""Structured logs: the JSON formatter, run and node ids on a node's own log records (through the
`NodeLogContext` middleware and `RunContextFilter`), and `flowcraft worker --log-format json`
on a real worker process."""

from __future__ import annotations

import io
import json
import logging
import signal
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from bullmq_processes import adapter
from hypothesis import given
from hypothesis import strategies as st
from obs_nodes import BLUEPRINTS, registry
from obs_support import ObsWorker

from flowcraft_core import FlowRuntime
from flowcraft_core.logs import JsonFormatter, NodeLogContext, RunContextFilter, use_format


def record(message: str = "hello %s", args: tuple[Any, ...] = ("world",), **extra: Any) -> Any:
    logger = logging.getLogger("flowcraft_core.test")
    return logger.makeRecord(
        logger.name, logging.WARNING, __file__, 1, message, args, None, extra=extra
    )


def test_the_json_formatter_writes_one_object_with_the_extra_fields() -> None:
    line = JsonFormatter().format(record(run_id="r1", node_id="n1", custom={"a": 1}))
    entry = json.loads(line)
    assert entry["message"] == "hello world"
    assert entry["level"] == "WARNING"
    assert entry["logger"] == "flowcraft_core.test"
    assert entry["time"].endswith("+00:00")
    assert (entry["run_id"], entry["node_id"], entry["custom"]) == ("r1", "n1", {"a": 1})
    assert "\n" not in line


def test_an_exception_is_one_field_and_odd_values_become_text() -> None:
    try:
        raise ValueError("bad")
    except ValueError:
        failed = record(thing=object())
        failed.exc_info = sys.exc_info()
    entry = json.loads(JsonFormatter().format(failed))
    assert entry["exception"].startswith("Traceback") and "ValueError: bad" in entry["exception"]
    assert entry["thing"].startswith("<object object")


@given(st.text(), st.dictionaries(st.from_regex(r"[a-z]{1,8}", fullmatch=True), st.text()))
def test_any_message_and_extras_make_one_json_line(message: str, extra: dict[str, str]) -> None:
    usable = {k: v for k, v in extra.items() if k not in vars(record()) and k != "message"}
    line = JsonFormatter().format(record(message, (), **usable))
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["message"] == message
    for key, value in usable.items():
        assert entry[key] == value


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """Records of the `obs_nodes` logger as JSON lines, with the run-context filter."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RunContextFilter())
    logger = logging.getLogger("obs_nodes")
    logger.addHandler(handler)
    try:
        yield stream
    finally:
        logger.removeHandler(handler)


async def test_a_nodes_own_log_records_carry_its_run_and_node(captured: io.StringIO) -> None:
    runtime = FlowRuntime(registry=registry, blueprints=BLUEPRINTS, middleware=[NodeLogContext()])
    result = await runtime.run("chatty")
    entry = json.loads(captured.getvalue())
    assert entry["message"] == "hello from the node"
    assert (entry["run_id"], entry["node_id"], entry["attempt"]) == (result.run_id, "c", 1)
    captured.truncate(0)
    captured.seek(0)
    logging.getLogger("obs_nodes").warning("outside any node")
    assert "run_id" not in json.loads(captured.getvalue())


def test_use_format_json_touches_only_stderr_handlers() -> None:
    logger = logging.getLogger("flowcraft_test_use_format")
    to_stderr, elsewhere = logging.StreamHandler(sys.stderr), logging.StreamHandler(io.StringIO())
    logger.addHandler(to_stderr)
    logger.addHandler(elsewhere)
    try:
        use_format("text", logger)
        assert not isinstance(to_stderr.formatter, JsonFormatter)
        use_format("json", logger)
        use_format("json", logger)
        assert isinstance(to_stderr.formatter, JsonFormatter)
        assert [type(f) for f in to_stderr.filters] == [RunContextFilter]
        assert elsewhere.formatter is None and not elsewhere.filters
        with pytest.raises(ValueError, match="unknown log format 'xml'"):
            use_format("xml", logger)
    finally:
        logger.removeHandler(to_stderr)
        logger.removeHandler(elsewhere)


async def test_a_worker_logs_json_lines_with_run_and_node_ids(
    redis_url: str, prefix: str, spawn: Callable[..., ObsWorker]
) -> None:
    worker = spawn(redis_url, prefix, "--log-format", "json", "--log-level", "INFO")
    await worker.ready()
    async with adapter(redis_url, prefix, blueprints=BLUEPRINTS, consume=False) as a:
        run_id = await a.start_run("chatty")
        assert (await a.wait_for_result(run_id, timeout_s=30)).status == "completed"
    worker.proc.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=30) == 0
    # The worker's own progress lines are plain text; every log record is one JSON object.
    logs = [line for line in worker.lines if not line.startswith("flowcraft worker:")]
    entries = [json.loads(line) for line in logs]
    assert any(e["logger"] == "flowcraft_bullmq.adapter" for e in entries), logs
    (hello,) = [e for e in entries if e["message"] == "hello from the node"]
    assert (hello["run_id"], hello["node_id"], hello["logger"]) == (run_id, "c", "obs_nodes")
