"""Tracing (the `otel` extra): a run is one trace and every node activation a `flowcraft.node`
span, in-process, on a LocalCluster, and across two real `flowcraft worker` processes whose
jobs carry the run's trace context; errors and retries are span events; and nothing of
OpenTelemetry is imported while tracing is off."""

from __future__ import annotations

import gzip
import http.server
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from bullmq_processes import adapter
from hypothesis import given
from hypothesis import strategies as st
from obs_nodes import registry
from obs_support import BLUEPRINTS, FAN_IDS, ObsWorker, read_spans
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from flowcraft_bullmq import BullMQAdapter
from flowcraft_core import FlowRuntime
from flowcraft_core.distributed import Job, LocalCluster
from flowcraft_core.distributed import protocol as job_protocol
from flowcraft_core.tracing import Tracing, run_trace_id, span_record


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    """The SDK's in-memory exporter (behind a provider of this test's own, see `tracing`)."""
    return InMemorySpanExporter()


@pytest.fixture
def tracing(exporter: InMemorySpanExporter) -> Iterator[Tracing]:
    """Tracing into `exporter`; closed (and its job hook removed) after the test."""
    instance = Tracing(tracer_provider=exporter_provider(exporter), queue="inprocess")
    try:
        yield instance
    finally:
        instance.close()
    assert job_protocol.job_trace_hook is None


@pytest.fixture
def runtime(tracing: Tracing) -> FlowRuntime:
    """An in-process runtime traced by `tracing` (as middleware and as event bus)."""
    return FlowRuntime(
        registry=registry, blueprints=BLUEPRINTS, middleware=[tracing], event_bus=tracing
    )


def exporter_provider(memory: InMemorySpanExporter) -> TracerProvider:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    return provider


def records(exporter: InMemorySpanExporter) -> list[dict[str, Any]]:
    spans: tuple[ReadableSpan, ...] = exporter.get_finished_spans()
    return [span_record(span) for span in spans]


def check_one_trace(spans: list[dict[str, Any]], run_id: str, node_ids: set[str]) -> None:
    """The run's root span, and one node span per node as its child, all in one trace."""
    roots = [s for s in spans if s["name"] == "flowcraft.run"]
    assert [r["attributes"]["flowcraft.run_id"] for r in roots] == [run_id]
    root = roots[0]
    nodes = [s for s in spans if s["name"] == "flowcraft.node"]
    assert {s["attributes"]["flowcraft.node_id"] for s in nodes} == node_ids
    assert len(nodes) == len(node_ids)  # one span per activation
    for span in nodes:
        assert span["trace_id"] == root["trace_id"]
        assert span["parent_span_id"] == root["span_id"]
        attributes = span["attributes"]
        assert attributes["flowcraft.run_id"] == run_id
        assert attributes["flowcraft.attempt"] == 1
        assert attributes["flowcraft.iteration"] == ""
        assert attributes["flowcraft.queue"]
        assert attributes["flowcraft.activation_id"].startswith(run_id)


def events(span: dict[str, Any]) -> list[str]:
    return [event["name"] for event in span["events"]]


def node_span(spans: list[dict[str, Any]], node_id: str) -> dict[str, Any]:
    (span,) = [s for s in spans if s["attributes"].get("flowcraft.node_id") == node_id]
    return span


# --------------------------------------------------------------------------- in-process


async def test_an_in_process_run_is_one_trace_with_a_span_per_node(
    runtime: FlowRuntime, exporter: InMemorySpanExporter
) -> None:
    result = await runtime.run("fan")
    assert result.status == "completed"
    spans = records(exporter)
    check_one_trace(spans, result.run_id, {"a", *FAN_IDS, "j"})
    (root,) = [s for s in spans if s["name"] == "flowcraft.run"]
    assert root["attributes"]["flowcraft.status"] == "completed"
    # The root spans the whole run: it starts before and ends after every node.
    for span in spans:
        assert root["start_ns"] <= span["start_ns"] <= span["end_ns"] <= root["end_ns"]


async def test_retries_and_errors_are_span_events(
    runtime: FlowRuntime, exporter: InMemorySpanExporter
) -> None:
    flaky = await runtime.run("flaky")
    assert flaky.status == "completed"
    spans = records(exporter)
    retried = node_span(spans, "f")
    assert events(retried) == ["flowcraft.retry"]
    assert retried["events"][0]["attributes"]["exception.message"] == "first attempt fails"
    assert retried["status"] == "UNSET"
    exporter.clear()
    failed = await runtime.run("boom")
    assert failed.status == "failed"
    spans = records(exporter)
    span = node_span(spans, "x")
    assert events(span) == ["exception"]
    assert span["events"][0]["attributes"]["exception.type"] == "ValueError"
    assert span["status"] == "ERROR"
    (root,) = [s for s in spans if s["name"] == "flowcraft.run"]
    assert root["status"] == "ERROR"
    assert root["attributes"]["flowcraft.status"] == "failed"


async def test_the_run_span_is_a_child_of_the_callers_span(
    runtime: FlowRuntime, exporter: InMemorySpanExporter
) -> None:
    tracer = exporter_provider(exporter).get_tracer("test")
    with tracer.start_as_current_span("request") as request:
        await runtime.run("flaky")
    spans = records(exporter)
    (root,) = [s for s in spans if s["name"] == "flowcraft.run"]
    assert root["parent_span_id"] == f"{request.get_span_context().span_id:016x}"
    assert {s["trace_id"] for s in spans} == {f"{request.get_span_context().trace_id:032x}"}


async def test_a_local_cluster_run_is_one_trace(
    tracing: Tracing, exporter: InMemorySpanExporter
) -> None:
    cluster = LocalCluster(
        registry=registry,
        blueprints=BLUEPRINTS,
        workers=3,
        middleware=[tracing],
        event_bus=tracing,
    )
    result = await cluster.run("fan")
    assert result.status == "completed"
    check_one_trace(records(exporter), result.run_id, {"a", *FAN_IDS, "j"})


# --------------------------------------------------------------------------- the job payload


@given(
    run_id=st.from_regex(r"[a-z0-9]{1,12}", fullmatch=True),
    trace=st.none() | st.dictionaries(st.sampled_from(["traceparent", "tracestate"]), st.text()),
)
def test_a_jobs_trace_context_survives_its_data(run_id: str, trace: dict[str, str] | None) -> None:
    job = Job(run_id, "n", (1, 2), trace=trace)
    data = job.to_data()
    assert ("trace" in data) == bool(trace)
    again = Job.from_data(data)
    assert again == job
    assert again.trace == (trace or None)


def test_without_the_hook_jobs_carry_no_trace() -> None:
    assert job_protocol.job_trace_hook is None
    assert "trace" not in Job("r", "n", ()).to_data()


# --------------------------------------------------------------------------- off = not loaded


def _loaded_after(code: str) -> list[str]:
    """The OpenTelemetry and prometheus_client modules a fresh interpreter has loaded after
    `code` (run in this directory, with the tests on the path), minus those loaded at
    `# baseline` by redis-py (redis 7+ loads OpenTelemetry's metrics API itself when it is
    installed; that is not ours)."""
    here = Path(__file__).parent
    probe = (
        "import sys\n"
        "def loaded(): return {m for m in sys.modules if m.split('.')[0] in "
        "('opentelemetry', 'prometheus_client')}\n"
        "base = set()\n"
        + code.replace("# baseline", "base = loaded()")
        + "\nprint(sorted(loaded() - base))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        check=True,
        cwd=here,
        env={"PYTHONPATH": f"{here}:{here.parent}", "PATH": "/usr/bin:/bin"},
    )
    return [name for name in out.stdout.strip().strip("[]").split(", ") if name]


def test_the_core_runs_blueprints_without_loading_opentelemetry() -> None:
    code = """
import asyncio
import flowcraft_core, flowcraft_core.tracing, flowcraft_core.logs, flowcraft_core.fanout
from flowcraft_core import FlowRuntime
from flowcraft_core.distributed import LocalCluster
from obs_nodes import registry
from obs_nodes import BLUEPRINTS
run = FlowRuntime(registry=registry, blueprints=BLUEPRINTS).run("fan")
assert asyncio.run(run).status == "completed"
cluster = LocalCluster(registry=registry, blueprints=BLUEPRINTS)
assert asyncio.run(cluster.run("flaky")).status == "completed"
"""
    assert _loaded_after(code) == []


def test_a_worker_without_traces_or_metrics_loads_neither() -> None:
    code = """
import argparse
import redis.asyncio, bullmq
# baseline
import flowcraft_bullmq, flowcraft_bullmq.cli, flowcraft_bullmq.operations
import flowcraft_bullmq.health
from flowcraft_core.cli import build_parser
from flowcraft_bullmq.operations import WorkerOperations
args = build_parser().parse_args(["worker", "--blueprints", ".", "--health-port", "1"])
options = WorkerOperations(args).adapter_options()
assert options == {}, options
"""
    assert _loaded_after(code) == []


# --------------------------------------------------------------------------- two processes


async def test_a_distributed_run_is_one_trace_across_two_worker_processes(
    redis_url: str,
    prefix: str,
    tmp_path: Path,
    spawn: Callable[..., ObsWorker],
    tracing: Tracing,
    exporter: InMemorySpanExporter,
) -> None:
    files = [tmp_path / "worker0.jsonl", tmp_path / "worker1.jsonl"]
    workers = [
        spawn(redis_url, prefix, "--traces", f"jsonl:{file}", "--concurrency", "2")
        for file in files
    ]
    for worker in workers:
        await worker.ready()
    adapter = BullMQAdapter(
        connection=redis_url,
        blueprints=BLUEPRINTS,
        prefix=prefix,
        middleware=[tracing],
        event_bus=tracing,
    )
    async with adapter:
        run_ids = [await adapter.start_run("fan") for _ in range(4)]
        flaky = await adapter.start_run("flaky")
        boom = await adapter.start_run("boom")
        for run_id in [*run_ids, flaky, boom]:
            await adapter.wait_for_result(run_id, timeout_s=30)
    for worker in workers:  # SIGTERM: the workers flush their spans and exit 0
        worker.proc.send_signal(signal.SIGTERM)
    for worker in workers:
        assert worker.wait(timeout=30) == 0, worker.stderr
    worker_spans = [read_spans(file) for file in files]
    assert all(spans for spans in worker_spans), "both workers ran nodes"
    assert all(s["resource"]["service.name"] == "flowcraft-worker" for s in worker_spans[0])
    every = [*records(exporter), *worker_spans[0], *worker_spans[1]]
    for run_id in run_ids:
        mine = [s for s in every if s["attributes"].get("flowcraft.run_id") == run_id]
        check_one_trace(mine, run_id, {"a", *FAN_IDS, "j"})
        for span in mine:
            if span["name"] == "flowcraft.node":
                assert span["attributes"]["flowcraft.queue"] == "flowcraft"
    # Some run had nodes on both workers.
    per_file = [{s["attributes"]["flowcraft.run_id"] for s in spans} for spans in worker_spans]
    assert set(run_ids) & per_file[0] & per_file[1]
    by_run = {
        run_id: [s for s in every if s["attributes"].get("flowcraft.run_id") == run_id]
        for run_id in (flaky, boom)
    }
    retried = node_span(by_run[flaky], "f")
    assert events(retried) == ["flowcraft.retry"]
    assert retried["events"][0]["attributes"]["flowcraft.attempt"] == 1
    failed = node_span(by_run[boom], "x")
    assert events(failed) == ["exception"] and failed["status"] == "ERROR"


class _Collector(http.server.ThreadingHTTPServer):
    """A minimal OTLP/HTTP trace collector: keeps the spans of every POST /v1/traces."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _CollectorHandler)
        self.spans: list[tuple[dict[str, str], Any]] = []  # (resource attributes, span)


class _CollectorHandler(http.server.BaseHTTPRequestHandler):
    server: _Collector

    def do_POST(self) -> None:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
        )

        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        for resource_spans in request.resource_spans:
            resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
            for scope in resource_spans.scope_spans:
                self.server.spans.extend((resource, span) for span in scope.spans)
        self.send_response(200 if self.path == "/v1/traces" else 404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


async def test_a_worker_exports_spans_over_otlp_http(
    redis_url: str,
    prefix: str,
    spawn: Callable[..., ObsWorker],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    collector = _Collector()
    thread = threading.Thread(target=collector.serve_forever, daemon=True)
    thread.start()
    try:
        endpoint = f"http://127.0.0.1:{collector.server_address[1]}"
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
        monkeypatch.setenv("OTEL_SERVICE_NAME", "orders-worker")
        worker = spawn(redis_url, prefix, "--traces", "otlp")
        await worker.ready()
        async with adapter(redis_url, prefix, blueprints=BLUEPRINTS, consume=False) as a:
            run_id = await a.start_run("fan")
            await a.wait_for_result(run_id, timeout_s=30)
        worker.proc.send_signal(signal.SIGTERM)  # flushes the batch
        assert worker.wait(timeout=30) == 0, worker.stderr
    finally:
        collector.shutdown()
        collector.server_close()
    nodes = [
        (resource, span) for resource, span in collector.spans if span.name == "flowcraft.node"
    ]
    assert len(nodes) == 6
    assert {resource["service.name"] for resource, _ in nodes} == {"orders-worker"}
    for _, span in nodes:
        attributes = {a.key: a.value for a in span.attributes}
        assert attributes["flowcraft.run_id"].string_value == run_id
    # The client did not trace: the workers derived the run's trace from its id.
    assert {span.trace_id.hex() for _, span in nodes} == {run_trace_id(run_id)}
    assert len({span.parent_span_id for _, span in nodes}) == 1


def test_an_unknown_trace_exporter_is_a_usage_error(
    blueprint_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from flowcraft_core.cli import main

    assert main(["worker", "--blueprints", str(blueprint_dir), "--traces", "zipkin"]) == 2
    assert "unknown trace exporter 'zipkin'" in capsys.readouterr().err
    assert job_protocol.job_trace_hook is None
