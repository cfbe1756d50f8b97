"""Structured logs: a JSON formatter, and run and node ids on every record of a node's code.

flowcraft's loggers (`flowcraft_core.*`, `flowcraft_bullmq.*`) pass `extra={"run_id": ...,
"node_id": ...}` where they know them. `NodeLogContext` (a middleware) makes the ids of the node
attempt being run current, and `RunContextFilter` copies them onto records that lack them, so
a node's own `logging` calls carry them too. Handlers are configured by the application (the
`flowcraft worker --log-format json` option uses `use_format`), never on import.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, Final

from .node import NodeContext
from .results import NodeResult

#: The ids of the node attempt this task runs: (run_id, node_id, attempt), or None.
_current: contextvars.ContextVar[tuple[str, str, int] | None] = contextvars.ContextVar(
    "flowcraft_log_context", default=None
)

#: Record attributes that are not `extra` fields (the stdlib's own, and ours).
_STANDARD: Final = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys()
    | {"message", "asctime", "taskName"}
)
LOG_FORMATS: Final = ("text", "json")


class NodeLogContext:
    """Middleware: while a node attempt runs, its run id, node id and attempt are current."""

    async def around_node(
        self, *, ctx: NodeContext, call_next: Callable[[], Awaitable[NodeResult]]
    ) -> NodeResult:
        token = _current.set((ctx.run_id, ctx.node_id, ctx.attempt))
        try:
            return await call_next()
        finally:
            _current.reset(token)


class RunContextFilter(logging.Filter):
    """Adds `run_id`, `node_id` (and `attempt`) of the current node attempt to a record that
    does not name them."""

    def filter(self, record: logging.LogRecord) -> bool:
        current = _current.get()
        if current is not None:
            run_id, node_id, attempt = current
            if getattr(record, "run_id", None) is None:
                record.run_id = run_id
                if getattr(record, "node_id", None) is None:
                    record.node_id = node_id
                    record.attempt = attempt
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: `time` (UTC ISO 8601), `level`, `logger`, `message`, the
    `extra` fields (`run_id`, `node_id`, ...; values that are not JSON become strings) and
    `exception` (the formatted traceback) when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def use_format(log_format: str, logger: logging.Logger | None = None) -> None:
    """`json`: give the handlers of `logger` (default: the root logger) that write to stderr
    the JSON formatter and the run-context filter. `text` leaves them as they are."""
    if log_format not in LOG_FORMATS:
        raise ValueError(f"unknown log format {log_format!r}: {', '.join(LOG_FORMATS)}")
    if log_format == "text":
        return
    formatter = JsonFormatter()
    target = logger if logger is not None else logging.getLogger()
    for handler in target.handlers:
        if getattr(handler, "stream", None) is not sys.stderr:
            continue
        handler.setFormatter(formatter)
        if not any(isinstance(f, RunContextFilter) for f in handler.filters):
            handler.addFilter(RunContextFilter())


__all__ = [
    "LOG_FORMATS",
    "JsonFormatter",
    "NodeLogContext",
    "RunContextFilter",
    "use_format",
]
