"""`run --watch`: live node progress written to stderr from the run's events.

Every finished, failed, skipped, waiting, retried or replaced activation gets one line. On a
terminal a status line below them, redrawn in place, lists what is running now; elsewhere
(a pipe, a CI log) only the plain lines are written. Log records (retries are logged as warnings)
clear the status line before they are written (`logs_clear`). Child runs of subflows share the bus;
their nodes are shown as `<blueprint>/<node>`.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from collections.abc import Iterator
from typing import Any, TextIO

from flowcraft_core.events import FlowEvent

_CLEAR: str = "\r\x1b[K"
_MAX_RUNNING_SHOWN = 4


class ProgressPrinter:
    """An event bus (`emit(event)`) that prints progress lines."""

    def __init__(self, stream: TextIO | None = None, *, live: bool | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.live = self.stream.isatty() if live is None else live
        self.started = time.monotonic()
        self.root_run: str | None = None
        self.running: dict[tuple[str, str, tuple[int, ...]], str] = {}
        self.finished = 0
        self._status_shown = False

    # ------------------------------------------------------------------ bus
    def emit(self, event: FlowEvent) -> None:
        handler = getattr(self, "_on_" + event.type.replace(":", "_"), None)
        if handler is not None:
            handler(event)

    def close(self) -> None:
        """Remove the status line (call once the run has ended)."""
        if self._status_shown:
            self.stream.write(_CLEAR)
            self.stream.flush()
            self._status_shown = False

    def filter(self, record: logging.LogRecord) -> bool:
        """As a logging filter of a handler writing to the same terminal: clear the status
        line before the record is written, so a log line never starts after it (the next
        event draws it again)."""
        self.close()
        return True

    @contextlib.contextmanager
    def logs_clear(self) -> Iterator[None]:
        """While it is open, the root logger's handlers clear the status line first."""
        handlers = list(logging.getLogger().handlers) if self.live else []
        for handler in handlers:
            handler.addFilter(self)
        try:
            yield
        finally:
            for handler in handlers:
                handler.removeFilter(self)

    # ------------------------------------------------------------------ events
    def _on_workflow_start(self, event: Any) -> None:
        if self.root_run is None:
            self.root_run = event.run_id
            self._line("start", event.blueprint_id, f"run {event.run_id}")
        else:
            node = event.parent_node_id or "?"
            self._line("subflow", node, f"child {event.blueprint_id} run {event.run_id}")

    def _on_workflow_resume(self, event: Any) -> None:
        if self.root_run is None:
            self.root_run = event.run_id
        self._line("resume", event.blueprint_id, f"at {event.node_id}")

    def _on_workflow_finish(self, event: Any) -> None:
        if event.run_id == self.root_run:
            self._line("end", event.blueprint_id, event.status)

    def _on_node_start(self, event: Any) -> None:
        self.running[self._key(event)] = self._label(event)
        self._redraw()

    def _on_node_finish(self, event: Any) -> None:
        self._done(event, "ok", f"{event.duration_ms:.1f} ms")

    def _on_node_error(self, event: Any) -> None:
        error = event.error
        self._done(event, "FAIL", f"{error.type}: {error.message}")

    def _on_node_awaiting(self, event: Any) -> None:
        reason = event.details.get("reason", "external_event") if event.details else ""
        self._done(event, "wait", reason)

    def _on_node_skipped(self, event: Any) -> None:
        self._line("skip", self._label(event), event.reason)

    def _on_node_retry(self, event: Any) -> None:
        detail = f"attempt {event.attempt} failed ({type(event.error).__name__}: {event.error})"
        self._line("retry", self._label(event), f"{detail}; next in {event.delay_ms:g} ms")

    def _on_node_fallback(self, event: Any) -> None:
        self._line("fallback", self._label(event), f"-> {event.fallback} ({event.error})")

    # ------------------------------------------------------------------ output
    def _key(self, event: Any) -> tuple[str, str, tuple[int, ...]]:
        return (event.run_id, event.node_id, tuple(event.iteration))

    def _name(self, event: Any, node_id: str) -> str:
        if self.root_run is not None and event.run_id != self.root_run:
            return f"{event.blueprint_id}/{node_id}"
        return node_id

    def _label(self, event: Any) -> str:
        name = self._name(event, event.node_id)
        if event.iteration:
            name += "@" + ".".join(str(i) for i in event.iteration)
        return name

    def _done(self, event: Any, mark: str, detail: str) -> None:
        self.running.pop(self._key(event), None)
        self.finished += 1
        self._line(mark, self._label(event), detail)

    def _line(self, mark: str, name: str, detail: str) -> None:
        elapsed = time.monotonic() - self.started
        text = f"[{elapsed:8.3f}s] {mark:<8} {name}"
        if detail:
            text += f"  {detail}"
        prefix = _CLEAR if self._status_shown else ""
        self._status_shown = False
        self.stream.write(f"{prefix}{text}\n")
        if self.live:
            self._redraw()
        else:
            self.stream.flush()

    def _redraw(self) -> None:
        if not self.live:
            return
        names = list(self.running.values())
        shown = ", ".join(names[:_MAX_RUNNING_SHOWN])
        if len(names) > _MAX_RUNNING_SHOWN:
            shown += f" (+{len(names) - _MAX_RUNNING_SHOWN} more)"
        status = f"running: {shown or '-'} | done: {self.finished}"
        self.stream.write(f"{_CLEAR}{status}")
        self.stream.flush()
        self._status_shown = True


__all__ = ["ProgressPrinter"]
