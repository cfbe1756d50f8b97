"""`flowcraft run`: run a blueprint in this process and report its result.

The exit code is the run's status (0 completed, 1 failed, 3 awaiting, 4 cancelled). Ctrl-C
cancels the run through its CancellationToken, so the report still shows what was committed;
a second Ctrl-C abandons it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import Mapping
from typing import Any, Final

from flowcraft_core.blueprint import Blueprint
from flowcraft_core.cancellation import CancellationToken
from flowcraft_core.errors import BlueprintError
from flowcraft_core.events import FlowEvent, NodeSkipped
from flowcraft_core.reserved import AWAITING_DETAILS, OUTPUTS_PREFIX
from flowcraft_core.results import RunStatus, WorkflowResult
from flowcraft_core.runtime import FlowRuntime

from ._common import (
    CliError,
    ExitCode,
    add_blueprints_option,
    add_registry_option,
    blueprint_error,
    dumps,
    load_registry,
    number_argument,
    read_blueprint_dir,
    read_context,
    resolve_blueprint,
)
from .watch import ProgressPrinter

EXIT_BY_STATUS: Final[Mapping[str, int]] = {
    RunStatus.COMPLETED: ExitCode.OK,
    RunStatus.FAILED: ExitCode.FAILED,
    RunStatus.STALLED: ExitCode.FAILED,
    RunStatus.AWAITING: ExitCode.AWAITING,
    RunStatus.CANCELLED: ExitCode.CANCELLED,
}
_VALUE_WIDTH: Final = 400


_positive_int = number_argument(int, 1)


def register(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
) -> None:
    parser = subparsers.add_parser(
        "run",
        parents=[common],
        help="run a blueprint in-process",
        description="Run a blueprint in this process and print its status, node outputs and "
        "errors. Exit code: 0 completed, 1 failed, 3 awaiting, 4 cancelled.",
    )
    parser.add_argument("blueprint", help="blueprint file (or an id from --blueprints)")
    parser.add_argument(
        "--context", metavar="JSON|@FILE", help="initial context: a JSON object, or @file"
    )
    add_registry_option(parser)
    add_blueprints_option(parser)
    parser.add_argument(
        "--concurrency", type=_positive_int, metavar="N", help="at most N nodes at once"
    )
    parser.add_argument("--watch", action="store_true", help="show live node progress")
    parser.add_argument(
        "--json",
        action="store_true",
        help='print {"runId", "status", "context", "errors", "compensated", "compensationFailed"}',
    )
    parser.set_defaults(handler=run_command)


def run_command(args: argparse.Namespace) -> int:
    registry = load_registry(args.registry)
    blueprints = read_blueprint_dir(args.blueprints)
    label, bp = resolve_blueprint(args.blueprint, blueprints)
    context = read_context(args.context)
    printer = ProgressPrinter() if args.watch else None
    events = RunEvents(printer)
    runtime = FlowRuntime(
        registry=registry,
        blueprints=blueprints,
        event_bus=events,
        concurrency=args.concurrency,
    )
    try:
        with printer.logs_clear() if printer is not None else contextlib.nullcontext():
            result = asyncio.run(_run(runtime, bp, context))
    except BlueprintError as exc:
        raise blueprint_error(label, exc, hint=_hint(exc, args)) from None
    except asyncio.CancelledError:
        raise CliError("run abandoned", code=ExitCode.CANCELLED) from None
    finally:
        if printer is not None:
            printer.close()
    if args.json:
        print(dumps(_json_result(result), indent=2))
    else:
        print_result(result, bp, skipped=events.skipped)
    return EXIT_BY_STATUS.get(result.status, ExitCode.FAILED)


async def _run(runtime: FlowRuntime, bp: Blueprint, context: dict[str, Any]) -> WorkflowResult:
    token = CancellationToken()
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    presses = 0

    def interrupted() -> None:
        nonlocal presses
        presses += 1
        if presses == 1:
            print("flowcraft: cancelling (Ctrl-C again to abandon)", file=sys.stderr)
            token.cancel("interrupted")
        elif task is not None:
            task.cancel()

    try:
        loop.add_signal_handler(signal.SIGINT, interrupted)
    except (NotImplementedError, RuntimeError, ValueError):  # not the main thread, or Windows
        installed = False
    else:
        installed = True
    try:
        return await runtime.run(bp, context, signal=token)
    finally:
        if installed:
            loop.remove_signal_handler(signal.SIGINT)


def _hint(exc: BlueprintError, args: argparse.Namespace) -> str | None:
    codes = {p.code for p in exc.problems}
    if "MISSING_IMPLEMENTATION" in codes and not args.registry:
        return "pass the node implementations with --registry MODULE:ATTR"
    if "UNKNOWN_SUBFLOW_BLUEPRINT" in codes and not args.blueprints:
        return "pass the child blueprints' directory with --blueprints DIR"
    return None


def _json_result(result: WorkflowResult) -> dict[str, Any]:
    return {
        "runId": result.run_id,
        "status": str(result.status),
        "context": result.context,
        "errors": [error.to_json() for error in result.errors],
        "compensated": result.compensated,
        "compensationFailed": [error.to_json() for error in result.compensation_failed],
    }


def _short(value: Any) -> str:
    text = dumps(value)
    return text if len(text) <= _VALUE_WIDTH else text[: _VALUE_WIDTH - 3] + "..."


class RunEvents:
    """The run's event bus: notes the top-level run's skipped nodes, forwards to `--watch`."""

    def __init__(self, printer: ProgressPrinter | None) -> None:
        self.printer = printer
        self.root_run: str | None = None
        self.skipped: dict[str, str] = {}

    def emit(self, event: FlowEvent) -> None:
        if self.root_run is None:
            self.root_run = event.run_id
        if isinstance(event, NodeSkipped) and event.run_id == self.root_run:
            if not event.iteration:  # a loop's last pass always skips its body: not news
                self.skipped.setdefault(event.node_id, event.reason)
        if self.printer is not None:
            self.printer.emit(event)


def print_result(
    result: WorkflowResult, bp: Blueprint, *, skipped: Mapping[str, str] | None = None
) -> None:
    """The human-readable report: status, then outputs, skipped and waiting nodes, errors."""
    print(f"blueprint: {bp.id}")
    print(f"run:       {result.run_id}")
    print(f"status:    {result.status}")
    outputs = result.outputs
    order = [n.id for n in bp.nodes if OUTPUTS_PREFIX + n.id in result.context]
    order += [node_id for node_id in outputs if node_id not in set(order)]
    rows: list[tuple[str, str]] = [(node_id, _short(outputs[node_id])) for node_id in order]
    _section("outputs", rows)
    if skipped:
        _section("skipped", [(node_id, reason) for node_id, reason in skipped.items()])
    details = result.context.get(AWAITING_DETAILS)
    if result.status == RunStatus.AWAITING and isinstance(details, dict):
        _section("waiting", [(node_id, _waiting(info)) for node_id, info in details.items()])
    errors = []
    for error in result.errors:
        text = f"{error.type}: {error.message}"
        if error.attempts > 1:
            text += f" (after {error.attempts} attempts)"
        if error.fallback_error:
            fb = error.fallback_error
            text += f"; fallback failed: {fb.get('type')}: {fb.get('message')}"
        errors.append((error.node_id or "(run)", text))
    _section("errors", errors)
    compensation = [(node_id, "compensated") for node_id in result.compensated]
    compensation += [
        (error.node_id or "(run)", f"failed: {error.type}: {error.message}")
        for error in result.compensation_failed
    ]
    _section("compensation", compensation)


def _waiting(info: Any) -> str:
    if not isinstance(info, dict):
        return _short(info)
    reason = str(info.get("reason", ""))
    extra = {k: v for k, v in info.items() if k not in ("reason", "iteration")}
    return f"{reason} {_short(extra)}" if extra else reason


def _section(title: str, rows: list[tuple[str, str]]) -> None:
    if not rows:
        return
    print(f"{title}:")
    width = min(max(len(name) for name, _ in rows), 24)
    for name, text in rows:
        print(f"  {name:<{width}}  {text}")


__all__ = ["EXIT_BY_STATUS", "RunEvents", "print_result", "register", "run_command"]
