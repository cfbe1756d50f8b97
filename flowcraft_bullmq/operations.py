"""What `flowcraft worker` turns on for operators: traces, metrics, JSON logs, health checks.

Everything is off by default and costs nothing per job then: the worker gets the plain
adapter, no middleware and no HTTP server. The options (see `add_worker_options`):

* `--traces otlp|console|jsonl:PATH` (or `$FLOWCRAFT_TRACES`): `flowcraft_core.tracing`.
* `--metrics-port N`: Prometheus `/metrics` (`metrics.py`).
* `--health-port N`: `/healthz` and `/readyz` (`health.py`); with the metrics port equal, one
  server answers all three.
* `--log-format json`: one JSON object per log line, with run and node ids.
* `--grace-period S`: on SIGTERM, wait at most S seconds for in-flight nodes.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
from typing import TYPE_CHECKING, Any, Final

from flowcraft_core.cli._common import CliError, number_argument
from flowcraft_core.logs import LOG_FORMATS, NodeLogContext, use_format

from .health import Response, Route, WorkerHealth, serve_http

if TYPE_CHECKING:
    from .adapter import BullMQAdapter

logger = logging.getLogger("flowcraft_bullmq.operations")

TRACES_ENV: Final = "FLOWCRAFT_TRACES"

_port = number_argument(int, 0)
_non_negative_float = number_argument(float, 0)


def add_worker_options(parser: argparse.ArgumentParser) -> None:
    """The operations options of `flowcraft worker`."""
    group = parser.add_argument_group("operations")
    group.add_argument(
        "--metrics-port",
        type=_port,
        metavar="PORT",
        help="serve Prometheus metrics on http://HOST:PORT/metrics (needs flowcraft[metrics])",
    )
    group.add_argument(
        "--health-port",
        type=_port,
        metavar="PORT",
        help="answer GET /healthz and /readyz on PORT (200 while consuming with Redis up, "
        "else 503)",
    )
    group.add_argument(
        "--http-host",
        default="0.0.0.0",
        metavar="HOST",
        help="address the metrics and health ports listen on (0.0.0.0)",
    )
    group.add_argument(
        "--traces",
        metavar="EXPORTER",
        default=None,
        help=f"OpenTelemetry traces: otlp (OTEL_EXPORTER_OTLP_* settings), console or "
        f"jsonl:PATH (default ${TRACES_ENV}, else off; needs flowcraft[otel])",
    )
    group.add_argument(
        "--log-format",
        choices=LOG_FORMATS,
        default="text",
        help="text, or json: one object per line with run_id and node_id (text)",
    )
    group.add_argument(
        "--grace-period",
        type=_non_negative_float,
        metavar="S",
        default=None,
        help="on SIGTERM, wait at most S seconds for in-flight nodes, then cancel them (their "
        "jobs are redelivered); default: wait until they finish",
    )


class WorkerOperations:
    """The observability of one worker process, made from its command-line options."""

    def __init__(self, args: argparse.Namespace) -> None:
        use_format(args.log_format)
        self.args = args
        self.health: WorkerHealth | None = None
        self.metrics: Any = None
        self.tracing: Any = None
        self._provider: Any = None
        self._servers: list[asyncio.Server] = []
        self._ping_client: Any = None
        self._adapter: BullMQAdapter | None = None
        traces = args.traces or os.environ.get(TRACES_ENV)
        try:
            if traces:
                from flowcraft_core.tracing import Tracing, tracer_provider

                self._provider = tracer_provider(traces, service_name="flowcraft-worker")
                self.tracing = Tracing(tracer_provider=self._provider, queue=args.queue)
            if args.metrics_port is not None:
                from .metrics import WorkerMetrics

                self.metrics = WorkerMetrics(queue_name=args.queue)
        except (ImportError, ValueError) as exc:  # an extra missing, an unknown exporter
            raise CliError(f"--traces/--metrics-port: {exc}") from exc

    def adapter_options(self) -> dict[str, Any]:
        """Keyword arguments for the adapter (`adapter_class` picks the metered one)."""
        options: dict[str, Any] = {}
        middleware: list[Any] = [] if self.tracing is None else [self.tracing]
        if self.args.log_format == "json":
            middleware.append(NodeLogContext())
        if middleware:
            options["middleware"] = middleware
        if self.tracing is not None:
            options["event_bus"] = self.tracing
        if self.metrics is not None:
            from .metrics import MeteredAdapter

            options["adapter_class"] = MeteredAdapter
            options["metrics"] = self.metrics
        return options

    async def start(self, adapter: BullMQAdapter) -> None:
        """Open the HTTP ports (the probes answer 503 until `consuming()`)."""
        self._adapter = adapter
        routes: dict[int, dict[str, Route]] = {}
        if self.args.health_port is not None:
            self._ping_client = adapter.connector.new_client()
            self.health = WorkerHealth(self._ping_client.ping)
            routes.setdefault(self.args.health_port, {}).update(
                {"/healthz": self.health.healthz, "/readyz": self.health.readyz}
            )
        if self.metrics is not None:
            routes.setdefault(self.args.metrics_port, {})["/metrics"] = self._scrape
        for port, table in routes.items():
            try:
                server = await serve_http(self.args.http_host, port, table)
            except OSError as exc:
                await self.stop()
                raise CliError(f"cannot listen on {self.args.http_host}:{port}: {exc}") from exc
            self._servers.append(server)
            logger.info("serving %s on %s:%d", ", ".join(table), self.args.http_host, port)

    def consuming(self) -> None:
        if self.health is not None:
            self.health.phase = "consuming"

    def draining(self) -> None:
        if self.health is not None:
            self.health.phase = "draining"

    async def _scrape(self) -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST

        adapter = self._adapter
        refresh = getattr(adapter, "refresh_metrics", None)
        if refresh is not None:
            try:
                await asyncio.wait_for(refresh(), 2.0)
            except Exception as exc:  # the gauges keep their last values
                logger.warning("could not read the queue's job counts: %s", exc)
        return Response(200, self.metrics.exposition(), CONTENT_TYPE_LATEST)

    async def stop(self) -> None:
        """Close the ports, flush the spans."""
        if self.health is not None:
            self.health.phase = "stopped"
        for server in self._servers:
            server.close()
            await server.wait_closed()
        self._servers.clear()
        if self._ping_client is not None:
            await self._ping_client.aclose()
            self._ping_client = None
        if self.tracing is not None:
            self.tracing.close()
        if self._provider is not None:
            await asyncio.to_thread(self._provider.shutdown)


__all__ = ["TRACES_ENV", "WorkerOperations", "add_worker_options"]
