"""OpenTelemetry tracing (the `otel` extra): a run is a trace, a node attempt a span.

`Tracing` is both a middleware and an event bus; give it to a runtime or an adapter as both::

    tracing = Tracing(queue="flowcraft")
    FlowRuntime(..., middleware=[tracing], event_bus=tracing)

* `workflow:start` opens the run's root span `flowcraft.run` (a child of the caller's current
  span, if any). In-process it ends at `workflow:finish`; a distributed start ends it once the
  entry jobs are made (no one process sees a distributed run end).
* Every node attempt runs inside a `flowcraft.node` span, a child of the run's root, with the
  attributes `flowcraft.run_id`, `.blueprint_id`, `.node_id`, `.attempt`, `.iteration`,
  `.queue` and `.activation_id`. A failed attempt records an `exception` event and an error
  status; the next attempt starts with a `flowcraft.retry` event.
* Distributed, the run's trace context (W3C `traceparent`) travels in every job's data
  (`Job.trace`, set through `protocol.job_trace_hook`): a worker that reads a job learns the
  run's context, and the jobs it enqueues carry it on, so one run is one trace across workers.
  A run whose start was not traced (a plain client) has no context to carry: the workers then
  derive its trace id from the run id (`run_trace_id`), the same in every process, under a
  parent span no one exports.

Nothing here imports OpenTelemetry until a `Tracing` is made, so a process that never traces
never loads it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from .events import (
    FlowEvent,
    NodeAwaiting,
    NodeError,
    NodeFallback,
    NodeFinish,
    NodeRetry,
    WorkflowFinish,
    WorkflowStart,
)
from .node import NodeContext
from .results import NodeResult
from .runtime.executor import RetryLater

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
    from opentelemetry.trace import Span

#: The instrumentation scope name.
TRACER_NAME: Final = "flowcraft"
#: Runs whose trace context a process remembers (the oldest are forgotten first).
MAX_RUNS: Final = 10_000
_INSTALL_HINT: Final = "tracing needs OpenTelemetry: pip install 'flowcraft[otel]'"


_Key = tuple[str, str, tuple[int, ...]]
#: The events that end an activation's span (in-process and distributed alike).
_TERMINAL: Final = frozenset({NodeFinish.type, NodeError.type, NodeAwaiting.type})
_NODE_EVENTS: Final = _TERMINAL | {NodeRetry.type, NodeFallback.type}
#: A node span whose activation's closing event never comes (an event bus not wired, an
#: activation that emits none) ends this long after its code ran.
SPAN_END_WAIT_S: Final = 10.0


@dataclass(slots=True)
class _NodeSpan:
    span: Span
    end_ns: int | None = None
    ends_at: frozenset[str] = frozenset()
    timer: asyncio.TimerHandle | None = None
    ended: bool = False


@dataclass(slots=True)
class _RunTrace:
    carrier: dict[str, str]
    context: Context
    #: The open root span, in the process that started the run (None elsewhere, or ended).
    root: Span | None = None


class Tracing:
    """Middleware plus event bus that traces runs; see the module docstring.

    Making one installs the job trace hook for the process (like OpenTelemetry's global
    provider, tracing is process-wide); `uninstall()` removes it.
    """

    def __init__(self, *, tracer_provider: Any = None, queue: str | None = None) -> None:
        try:
            from opentelemetry import trace
            from opentelemetry.trace.propagation.tracecontext import (
                TraceContextTextMapPropagator,
            )
        except ImportError as exc:  # pragma: no cover - the extra is installed in the suite
            raise ImportError(_INSTALL_HINT) from exc
        from .distributed import protocol  # here: importing this module stays cheap

        self._protocol = protocol
        self._trace = trace
        self._tracer = trace.get_tracer(TRACER_NAME, tracer_provider=tracer_provider)
        self._propagator = TraceContextTextMapPropagator()
        self.queue = queue
        self._runs: OrderedDict[str, _RunTrace] = OrderedDict()
        #: node spans whose code ran or runs, until their activation's events end them
        self._open: dict[_Key, _NodeSpan] = {}
        protocol.job_trace_hook = self._job_trace

    def uninstall(self) -> None:
        """Stop putting trace context into new jobs (if this is the installed tracing)."""
        if self._protocol.job_trace_hook == self._job_trace:
            self._protocol.job_trace_hook = None

    # ----------------------------------------------------------------- event bus
    def emit(self, event: FlowEvent) -> None:
        if event.type in _NODE_EVENTS:
            self._node_event(event)
        elif isinstance(event, WorkflowStart):
            self._start_run(event)
        elif isinstance(event, WorkflowFinish):
            run = self._runs.get(event.run_id)
            if run is not None and run.root is not None:
                root, run.root = run.root, None
                root.set_attribute("flowcraft.status", event.status)
                if event.errors:
                    first = event.errors[0]
                    root.set_status(self._error_status(f"{first.type}: {first.message}"))
                root.end()

    def _start_run(self, event: WorkflowStart) -> None:
        attributes: dict[str, str] = {
            "flowcraft.run_id": event.run_id,
            "flowcraft.blueprint_id": event.blueprint_id,
        }
        if event.parent_run_id is not None:
            attributes["flowcraft.parent_run_id"] = event.parent_run_id
        root = self._tracer.start_span("flowcraft.run", attributes=attributes)
        context = self._trace.set_span_in_context(root)
        carrier: dict[str, str] = {}
        self._propagator.inject(carrier, context=context)
        self._remember(event.run_id, _RunTrace(carrier, context, root))

    def _derived(self, run_id: str) -> _RunTrace:
        """The run's context when no job brought one (its start was not traced): a parent
        derived from the run id, the same in every process, so the run is still one trace."""
        trace = self._trace
        parent = trace.NonRecordingSpan(
            trace.SpanContext(
                int(run_trace_id(run_id), 16),
                int(_digest(run_id)[16:24].hex(), 16) or 1,
                is_remote=True,
                trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED),
            )
        )
        context = trace.set_span_in_context(parent)
        carrier: dict[str, str] = {}
        self._propagator.inject(carrier, context=context)
        run = _RunTrace(carrier, context)
        self._remember(run_id, run)
        return run

    def _remember(self, run_id: str, run: _RunTrace) -> None:
        runs = self._runs
        runs[run_id] = run
        runs.move_to_end(run_id)
        while len(runs) > MAX_RUNS:
            _, old = runs.popitem(last=False)
            if old.root is not None:
                old.root.end()

    # ----------------------------------------------------------------- jobs
    def _job_trace(
        self, run_id: str, carried: Mapping[str, str] | None
    ) -> Mapping[str, str] | None:
        """`protocol.job_trace_hook`: learn a read job's context, give a new job its run's."""
        run = self._runs.get(run_id)
        if carried is not None:
            if run is None or run.carrier != carried:
                if run is not None and run.root is not None:
                    run.root.end()
                context = self._propagator.extract(dict(carried))
                self._remember(run_id, _RunTrace(dict(carried), context))
            return carried
        if run is None:
            return None
        if run.root is not None:  # a distributed start: the entry jobs are being made
            root, run.root = run.root, None
            root.end()
        return run.carrier

    # ----------------------------------------------------------------- middleware
    async def around_node(
        self, *, ctx: NodeContext, call_next: Callable[[], Awaitable[NodeResult]]
    ) -> NodeResult:
        run = self._runs.get(ctx.run_id) or self._derived(ctx.run_id)
        attributes: dict[str, str | int] = {
            "flowcraft.run_id": ctx.run_id,
            "flowcraft.blueprint_id": ctx.blueprint_id,
            "flowcraft.node_id": ctx.node_id,
            "flowcraft.attempt": ctx.attempt,
            "flowcraft.iteration": ".".join(str(i) for i in ctx.iteration),
            "flowcraft.activation_id": ctx.activation_id,
        }
        if self.queue is not None:
            attributes["flowcraft.queue"] = self.queue
        span = self._tracer.start_span(
            "flowcraft.node",
            context=run.context if run is not None else None,
            attributes=attributes,
        )
        key = (ctx.run_id, ctx.node_id, ctx.iteration)
        node = _NodeSpan(span)
        self._open[key] = node
        ends_at: frozenset[str] | None = _TERMINAL
        try:
            with self._trace.use_span(
                span, end_on_exit=False, record_exception=False, set_status_on_exception=False
            ):
                result = await call_next()
        except asyncio.CancelledError:
            span.add_event("flowcraft.cancelled")
            ends_at = None
            raise
        except RetryLater:  # retry_mode="queue": this job's attempt failed, its node:retry ends it
            ends_at = frozenset({NodeRetry.type})
            raise
        except Exception as exc:
            span.record_exception(exc)
            span.set_status(self._error_status(f"{type(exc).__name__}: {exc}"))
            raise
        else:
            if result.action is not None:
                span.set_attribute("flowcraft.action", str(result.action))
            return result
        finally:
            self._ran(key, node, ends_at)

    def _ran(self, key: _Key, node: _NodeSpan, ends_at: frozenset[str] | None) -> None:
        """The node code is done: end the span now, or at its activation's next event of
        `ends_at` (the events of a distributed job are emitted after it is recorded, and its
        retries belong on the span), at the latest after SPAN_END_WAIT_S."""
        node.end_ns = time.time_ns()
        node.ends_at = ends_at or frozenset()
        if ends_at is None:
            self._end(key, node)
            return
        try:
            node.timer = asyncio.get_running_loop().call_later(
                SPAN_END_WAIT_S, self._end, key, node
            )
        except RuntimeError:  # no running loop: nothing could emit its events
            self._end(key, node)

    def _end(self, key: _Key, node: _NodeSpan) -> None:
        if self._open.get(key) is node:
            del self._open[key]
        if node.timer is not None:
            node.timer.cancel()
        if not node.ended:
            node.ended = True
            node.span.end(end_time=node.end_ns)

    def _node_event(self, event: Any) -> None:
        key = (event.run_id, event.node_id, event.iteration)
        node = self._open.get(key)
        if node is None:
            return
        span, at = node.span, int(event.timestamp.timestamp() * 1e9)
        if isinstance(event, NodeRetry):
            span.add_event(
                "flowcraft.retry",
                {
                    "flowcraft.attempt": event.attempt,
                    "flowcraft.delay_ms": float(event.delay_ms),
                    "exception.type": type(event.error).__name__,
                    "exception.message": str(event.error),
                },
                timestamp=at,
            )
        elif isinstance(event, NodeFallback):
            span.add_event(
                "flowcraft.fallback",
                {
                    "flowcraft.fallback": event.fallback,
                    "exception.type": type(event.error).__name__,
                    "exception.message": str(event.error),
                },
                timestamp=at,
            )
        elif isinstance(event, NodeError):
            span.set_status(self._error_status(f"{event.error.type}: {event.error.message}"))
            span.set_attribute("flowcraft.attempts", event.error.attempts)
        elif isinstance(event, NodeAwaiting):
            span.set_attribute("flowcraft.awaiting", True)
        if event.type in node.ends_at and node.end_ns is not None:
            self._end(key, node)

    def close(self) -> None:
        """End the spans still waiting for their events, and `uninstall()` (at shutdown)."""
        for key, node in list(self._open.items()):
            if node.end_ns is not None:
                self._end(key, node)
        self.uninstall()

    def _error_status(self, description: str) -> Any:
        return self._trace.Status(self._trace.StatusCode.ERROR, description)


def _digest(run_id: str) -> bytes:
    return hashlib.sha256(b"flowcraft-run:" + run_id.encode()).digest()


def run_trace_id(run_id: str) -> str:
    """The trace id (32 hex digits) of a run whose start was not traced: its workers derive
    it from the run id, so an operator can find the trace from the id alone."""
    return _digest(run_id)[:16].hex()


# --------------------------------------------------------------------------- exporters


def tracer_provider(exporter: str, *, service_name: str = "flowcraft") -> TracerProvider:
    """An SDK provider for a `--traces` value: `otlp` (OTLP over HTTP, configured by the
    standard `OTEL_EXPORTER_OTLP_*` variables; batched), `console`, or `jsonl:PATH` (one JSON
    object per span appended to PATH, written at once: for tests and debugging)."""
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import (
            BatchSpanProcessor,
            ConsoleSpanExporter,
            SimpleSpanProcessor,
        )
    except ImportError as exc:
        raise ImportError(_INSTALL_HINT) from exc
    attributes = {} if os.environ.get("OTEL_SERVICE_NAME") else {"service.name": service_name}
    provider = TracerProvider(resource=Resource.create(attributes))
    if exporter == "otlp":
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        except ImportError as exc:
            raise ImportError(_INSTALL_HINT) from exc
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    elif exporter == "console":
        provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
    elif exporter.startswith("jsonl:") and len(exporter) > len("jsonl:"):
        provider.add_span_processor(SimpleSpanProcessor(_jsonl_exporter(exporter[6:])))
    else:
        raise ValueError(f"unknown trace exporter {exporter!r}: otlp, console or jsonl:PATH")
    return provider


def _jsonl_exporter(path: str) -> Any:
    from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

    class JsonLinesSpanExporter(SpanExporter):
        """Appends one JSON object per span to a file (whole lines, one writer lock)."""

        def __init__(self) -> None:
            self._lock = threading.Lock()

        def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
            lines = "".join(json.dumps(span_record(span)) + "\n" for span in spans)
            with self._lock, open(path, "a", encoding="utf-8") as file:
                file.write(lines)
            return SpanExportResult.SUCCESS

    return JsonLinesSpanExporter()


def span_record(span: ReadableSpan) -> dict[str, Any]:
    """A finished span as plain JSON data (ids in hex, times in ns since the epoch)."""
    context = span.get_span_context()
    assert context is not None
    return {
        "name": span.name,
        "trace_id": f"{context.trace_id:032x}",
        "span_id": f"{context.span_id:016x}",
        "parent_span_id": f"{span.parent.span_id:016x}" if span.parent is not None else None,
        "start_ns": span.start_time,
        "end_ns": span.end_time,
        "status": span.status.status_code.name,
        "attributes": dict(span.attributes or {}),
        "events": [
            {"name": event.name, "attributes": dict(event.attributes or {})}
            for event in span.events
        ],
        "resource": {k: str(v) for k, v in span.resource.attributes.items()},
    }


__all__ = [
    "MAX_RUNS",
    "SPAN_END_WAIT_S",
    "TRACER_NAME",
    "Tracing",
    "run_trace_id",
    "span_record",
    "tracer_provider",
]
