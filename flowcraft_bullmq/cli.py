"""The distributed commands of `flowcraft` (SPEC 10): `worker`, `start`, `status`, `resume`,
`cancel`, `reconcile`, `schedule add|list|remove`, and the run-control commands of
`control_cli.py`.

`flowcraft_core.cli` loads this group with importlib when `flowcraft_bullmq` is importable
(core never imports it statically). Importing this module stays cheap: BullMQ and redis-py
are imported by the handlers, so `flowcraft validate` does not pay for them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any, Final, TypeVar

from flowcraft_core.cli._common import (
    CliError,
    ExitCode,
    add_blueprints_option,
    add_registry_option,
    dumps,
    load_registry,
    number_argument,
    read_blueprint_dir,
    read_context,
    read_json_argument,
)
from flowcraft_core.errors import RunNotAwaitingError, RunNotFoundError

from .control_cli import register_control
from .operations import WorkerOperations, add_worker_options

if TYPE_CHECKING:
    from .adapter import BullMQAdapter

REDIS_URL_ENV: Final = "FLOWCRAFT_REDIS_URL"
DEFAULT_REDIS_URL: Final = "redis://localhost:6379/0"

T = TypeVar("T")


_positive_int = number_argument(int, 1)
_positive_float = number_argument(float, 0, strict=True)
_non_negative_float = number_argument(float, 0)
_non_negative_int = number_argument(int, 0)
_port = number_argument(int, 0)


def _distributed_options(parser: argparse.ArgumentParser, *, consumer: bool = False) -> None:
    """What every distributed command takes (SPEC 10)."""
    _redis_options(parser, consumer=consumer)
    add_registry_option(parser)
    add_blueprints_option(parser)


def _redis_options(parser: argparse.ArgumentParser, *, consumer: bool = False) -> None:
    parser.add_argument(
        "--redis",
        metavar="URL",
        default=None,
        help=f"Redis URL (default ${REDIS_URL_ENV}, else {DEFAULT_REDIS_URL}); "
        "redis://[user:password@]host:port/db, rediss:// for TLS",
    )
    if consumer:  # a worker consumes several queues (docs/scheduling.md)
        parser.add_argument(
            "--queue",
            action="append",
            metavar="NAME[,NAME]",
            help="a queue to consume, repeatable or comma-separated (default flowcraft); "
            "nodes with config.queue go to the queue they name",
        )
    else:
        parser.add_argument(
            "--queue",
            default="flowcraft",
            help="BullMQ queue name (flowcraft): a run's nodes without config.queue go there",
        )
    parser.add_argument("--prefix", default="flowcraft", help="Redis key prefix (flowcraft)")


def register(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
) -> None:
    worker = subparsers.add_parser(
        "worker",
        parents=[common],
        help="run a distributed worker (BullMQ)",
        description="Consume activation jobs until SIGTERM or SIGINT, then stop fetching, "
        "finish in-flight activations and exit 0 (a second signal cancels them).",
    )
    _distributed_options(worker, consumer=True)
    worker.add_argument(
        "--concurrency",
        type=_positive_int,
        default=10,
        metavar="N",
        help="jobs at once, per queue consumed (10)",
    )
    worker.add_argument(
        "--rate-limit",
        type=_rate_limit,
        metavar="MAX/MS",
        help="BullMQ's limiter: at most MAX jobs per MS milliseconds on each queue consumed, "
        "shared by all workers of that queue (e.g. 100/1000)",
    )
    worker.add_argument(
        "--lock-duration",
        type=_positive_float,
        metavar="S",
        help="BullMQ job lock in seconds (10): a dead worker's job is redelivered after it",
    )
    worker.add_argument(
        "--stalled-interval",
        type=_positive_float,
        metavar="S",
        help="seconds between BullMQ's checks for stalled jobs (5)",
    )
    worker.add_argument(
        "--max-stalled-count",
        type=_non_negative_int,
        metavar="N",
        help="stalls before an activation fails with WorkerLostError (3)",
    )
    _run_job_options(worker)
    worker.add_argument(
        "--progress-interval",
        type=_non_negative_float,
        metavar="S",
        help="refresh a run's progressAt this often while its node runs, so the reconciler "
        "does not take it for stalled (30; 0: never)",
    )
    worker.add_argument(
        "--connect-timeout",
        type=_non_negative_float,
        default=None,
        metavar="S",
        help="keep trying an unreachable Redis at start for S seconds, with backoff, then "
        "exit 5 (30; a wrong password or certificate fails at once)",
    )
    worker.add_argument(
        "--no-uvloop",
        dest="uvloop",
        action="store_false",
        help="run on asyncio's own event loop even when uvloop is installed "
        "(the worker uses uvloop when it is importable: pip install 'flowcraft[fast]')",
    )
    add_worker_options(worker)
    worker.set_defaults(handler=worker_command)

    start = subparsers.add_parser(
        "start",
        parents=[common],
        help="start a distributed run",
        description="Start a run on the workers and print its id; with --wait, wait for "
        "it and print the result (exit 0 completed, 1 failed, 3 awaiting, 4 cancelled, "
        "5 timed out).",
    )
    start.add_argument("blueprint_id", metavar="BLUEPRINT_ID", help="id from --blueprints")
    start.add_argument("--context", metavar="JSON|@FILE", help="initial context (JSON object)")
    start.add_argument("--run-id", help="run id (default: a new uuid4 hex)")
    start.add_argument("--idempotency-key", help="a repeated key returns the first run's id")
    start.add_argument(
        "--priority",
        type=_non_negative_int,
        default=0,
        metavar="N",
        help="the run's jobs' BullMQ priority: 1 highest .. 2097152 lowest; 0 (default) none, "
        "taken before any prioritized job",
    )
    start.add_argument(
        "--delay",
        type=_non_negative_float,
        default=0,
        metavar="S",
        help="start the run after S seconds (it is 'running' meanwhile)",
    )
    start.add_argument(
        "--no-compensate",
        action="store_true",
        help="opt the run out of compensation (docs/compensation.md)",
    )
    start.add_argument("--wait", action="store_true", help="wait for the result")
    _run_job_options(start)
    start.add_argument(
        "--timeout", type=_positive_float, metavar="S", help="with --wait: give up after S s"
    )
    start.add_argument("--json", action="store_true", help="with --wait: print the result as JSON")
    _distributed_options(start)
    start.set_defaults(handler=start_command)

    status = subparsers.add_parser(
        "status",
        parents=[common],
        help="show a distributed run's status",
        description="Print a run's status, waiting nodes and errors.",
    )
    status.add_argument("run_id", metavar="RUN_ID")
    status.add_argument("--json", action="store_true", help="print the result as JSON")
    _distributed_options(status)
    status.set_defaults(handler=status_command)

    inspect = subparsers.add_parser(
        "inspect",
        parents=[common],
        help="serve the run inspector web page",
        description="Serve a web page of recent runs and of each run's graph, timeline, "
        "context and errors, with resume and cancel buttons, until SIGINT or SIGTERM. "
        "Give --blueprints to draw graphs and resume. It has no authentication: it listens "
        "on 127.0.0.1 unless --host says otherwise. Needs the 'inspect' extra (uvicorn).",
    )
    inspect.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    inspect.add_argument(
        "--port", type=_port, default=8080, metavar="N", help="port (8080; 0 picks a free one)"
    )
    _redis_options(inspect)
    add_blueprints_option(inspect)
    inspect.set_defaults(handler=inspect_command)

    resume = subparsers.add_parser(
        "resume",
        parents=[common],
        help="resume a waiting distributed run",
        description="Complete a waiting node with an action and output; prints 'resumed', or "
        "'buffered' when the wait has not started yet (it takes the resume when it does). "
        "Exit 2 if the run has finished.",
    )
    resume.add_argument("run_id", metavar="RUN_ID")
    resume.add_argument("--action", help="the action that routes the waiting node's edges")
    resume.add_argument("--output", metavar="JSON|@FILE", help="the waiting node's output")
    resume.add_argument(
        "--node",
        action="append",
        metavar="ID",
        help="which waiting node (default: the first in order); repeat it for a path through "
        "subflow nodes: --node sub --node w2",
    )
    _distributed_options(resume)
    resume.set_defaults(handler=resume_command)

    cancel = subparsers.add_parser(
        "cancel",
        parents=[common],
        help="cancel a distributed run",
        description="Cancel a running or awaiting run (exit 0); exit 1 if it had finished.",
    )
    cancel.add_argument("run_id", metavar="RUN_ID")
    _distributed_options(cancel)
    cancel.set_defaults(handler=cancel_command)

    reconcile = subparsers.add_parser(
        "reconcile",
        parents=[common],
        help="re-enqueue the lost work of stalled distributed runs",
        description="Find runs that made no progress for --threshold seconds and re-enqueue "
        "what they are owed, from their recorded state. --once (the default) makes one pass "
        "and prints its stats (exit 1 if a run could not be reconciled); --cron upserts a "
        "BullMQ job scheduler whose ticks the workers run, and exits. Give --blueprints so "
        "pending skips and loop ends can be propagated.",
    )
    when = reconcile.add_mutually_exclusive_group()
    when.add_argument("--once", action="store_true", help="one pass now (the default)")
    when.add_argument(
        "--cron",
        metavar="EXPR",
        help="schedule passes on the workers: a cron pattern ('*/5 * * * *'; with 6 "
        "fields, seconds come first)",
    )
    reconcile.add_argument(
        "--threshold",
        type=_non_negative_float,
        default=300.0,
        metavar="S",
        help="a running run is stalled after S seconds without progress (300)",
    )
    reconcile.add_argument(
        "--scan-count",
        type=_positive_int,
        default=100,
        metavar="N",
        help="meta keys per SCAN page (100)",
    )
    _distributed_options(reconcile)
    reconcile.set_defaults(handler=reconcile_command)
    _register_schedule(subparsers, common)
    register_control(subparsers, common, _distributed_options)


def _register_schedule(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
) -> None:
    schedule = subparsers.add_parser(
        "schedule",
        parents=[common],
        help="start distributed runs on a cron schedule",
        description="Schedules are BullMQ job schedulers on the queue: each tick starts one "
        "run (id SCHEDULE_ID~TICK_MS) on whichever worker consumes the queue takes it.",
    )
    actions = schedule.add_subparsers(dest="schedule_action", metavar="ACTION", required=True)
    add = actions.add_parser(
        "add",
        parents=[common],
        help="add or replace a schedule",
        description="Add a schedule (an existing --id is replaced) and print its id.",
    )
    add.add_argument("blueprint_id", metavar="BLUEPRINT_ID", help="id from --blueprints")
    when = add.add_mutually_exclusive_group(required=True)
    when.add_argument(
        "--cron", metavar="EXPR", help="cron pattern ('0 * * * *'; 6 fields: seconds first)"
    )
    when.add_argument(
        "--every", type=_positive_int, metavar="MS", help="a tick every MS milliseconds"
    )
    add.add_argument("--context", metavar="JSON|@FILE", help="each run's initial context")
    add.add_argument("--id", dest="schedule_id", help="schedule id (default: the blueprint id)")
    add.add_argument("--tz", help="time zone of the cron pattern (default UTC)")
    add.add_argument(
        "--priority", type=_non_negative_int, default=0, metavar="N", help="the runs' priority"
    )
    _distributed_options(add)
    add.set_defaults(handler=schedule_add_command)
    listing = actions.add_parser(
        "list",
        parents=[common],
        help="list the schedules",
        description="One line per schedule (id, blueprint, when, next tick); --json for all.",
    )
    listing.add_argument("--json", action="store_true", help="print the schedules as JSON")
    _distributed_options(listing)
    listing.set_defaults(handler=schedule_list_command)
    remove = actions.add_parser(
        "remove",
        parents=[common],
        help="remove a schedule",
        description="Remove a schedule and its pending tick (exit 1 if there was none); runs "
        "it started go on.",
    )
    remove.add_argument("schedule_id", metavar="SCHEDULE_ID")
    _distributed_options(remove)
    remove.set_defaults(handler=schedule_remove_command)


def _rate_limit(text: str) -> tuple[int, int]:
    from .scheduling import parse_rate_limit

    try:
        return parse_rate_limit(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


# --------------------------------------------------------------------------- plumbing


def _adapter(
    args: argparse.Namespace,
    adapter_class: type[BullMQAdapter] | None = None,
    **kwargs: Any,
) -> BullMQAdapter:
    try:
        from .adapter import BullMQAdapter
    except ImportError as exc:
        raise CliError(
            f"the distributed commands need BullMQ: pip install 'flowcraft[bullmq]' ({exc})"
        ) from exc
    url = args.redis or os.environ.get(REDIS_URL_ENV) or DEFAULT_REDIS_URL
    registry = load_registry(args.registry) if getattr(args, "registry", None) else None
    blueprints = read_blueprint_dir(getattr(args, "blueprints", None))
    return (adapter_class or BullMQAdapter)(
        connection=url,
        registry=registry,
        blueprints=blueprints,
        queue_name=args.queue,
        prefix=args.prefix,
        **kwargs,
    )


@contextlib.contextmanager
def _infrastructure_errors(args: argparse.Namespace) -> Iterator[None]:
    """Redis errors become exit 5 with one line naming the server (no password)."""
    from redis.exceptions import RedisError

    try:
        yield
    except (RedisError, ConnectionError) as exc:
        from .connection import redact_url

        url = redact_url(args.redis or os.environ.get(REDIS_URL_ENV) or DEFAULT_REDIS_URL)
        text = " ".join(str(exc).split()) or type(exc).__name__
        if not text.startswith("Redis at "):  # the adapter's errors name the server already
            text = f"Redis at {url}: {text}"
        raise CliError(text, code=ExitCode.INFRASTRUCTURE) from exc


def _client_call(
    args: argparse.Namespace, call: Callable[[BullMQAdapter], Awaitable[T]], **kwargs: Any
) -> T:
    adapter = _adapter(args, **kwargs)

    async def go() -> T:
        async with adapter:
            return await call(adapter)

    with _infrastructure_errors(args):
        return asyncio.run(go())


def _exit_for(status: str) -> int:
    from flowcraft_core.cli.run import EXIT_BY_STATUS

    return EXIT_BY_STATUS.get(status, ExitCode.FAILED)


# --------------------------------------------------------------------------- worker


def _run_job_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--event-stream",
        action="store_true",
        default=None,
        help="also append the events this process emits to the run's Redis Stream, for "
        "adapter.events(run_id) in any process",
    )
    parser.add_argument(
        "--retry-mode",
        choices=("in_process", "queue"),
        help="in_process (default): a node's retries run inside its job; queue: BullMQ runs "
        "them (SPEC 9.5). Workers and the processes that start runs must agree: entry jobs "
        "get their attempts from the process that adds them",
    )


def _require_blueprints(args: argparse.Namespace) -> None:
    if not args.blueprints:
        raise CliError(f"{args.command} needs --blueprints DIR (the blueprints to run, by id)")


def worker_command(args: argparse.Namespace) -> int:
    _require_blueprints(args)
    queues = [name.strip() for text in args.queue or ["flowcraft"] for name in text.split(",")]
    args.queues = list(dict.fromkeys(name for name in queues if name))
    if not args.queues:
        raise CliError("--queue needs a queue name", code=ExitCode.USAGE)
    # The first queue is this adapter's default (runs recorded without one).
    args.queue = args.queues[0]
    options = {
        name: value
        for name, value in (
            ("lock_duration_s", args.lock_duration),
            ("stalled_interval_s", args.stalled_interval),
            ("max_stalled_count", args.max_stalled_count),
            ("retry_mode", args.retry_mode),
            ("progress_interval_s", args.progress_interval),
            ("event_stream", args.event_stream),
        )
        if value is not None
    }
    ops = WorkerOperations(args)
    try:
        adapter = _adapter(
            args,
            concurrency=args.concurrency,
            queues=args.queues,
            rate_limit=args.rate_limit,
            **options,
            **ops.adapter_options(),
        )
    except ValueError as exc:  # a queue name BullMQ cannot use
        raise CliError(str(exc), code=ExitCode.USAGE) from None
    with _infrastructure_errors(args), asyncio.Runner(loop_factory=_loop_factory(args)) as runner:
        signals = runner.run(_serve(adapter, args, ops))
    # A second signal cancelled in-flight activations: not a graceful stop.
    return ExitCode.OK if signals < 2 else 130


def _loop_factory(args: argparse.Namespace) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop when it is installed and not refused (--no-uvloop): a node job spends
    most of its time in Redis round trips, whose socket and callback work uvloop does in C."""
    if not getattr(args, "uvloop", True):
        return None
    try:
        import uvloop
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


async def _serve(adapter: BullMQAdapter, args: argparse.Namespace, ops: WorkerOperations) -> int:
    """Consume until a signal; returns how many signals arrived."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    signals = 0

    def on_signal(signum: int) -> None:
        nonlocal signals
        signals += 1
        if signals == 1:
            print(
                f"flowcraft worker: {signal.Signals(signum).name}: finishing in-flight "
                "activations (signal again to cancel them)",
                file=sys.stderr,
                flush=True,
            )
            stop.set()
        else:
            adapter.abort_close()

    installed = []
    for signum in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(signum, on_signal, signum)
            installed.append(signum)
        except (NotImplementedError, RuntimeError, ValueError):  # not the main thread
            pass
    from .connection import WORKER_CONNECT_RETRY_S, connect_retrying

    retry_for_s = WORKER_CONNECT_RETRY_S if args.connect_timeout is None else args.connect_timeout
    try:
        await ops.start(adapter)
        try:
            connecting = asyncio.ensure_future(
                connect_retrying(
                    adapter.connect, adapter.connector.describe(), retry_for_s=retry_for_s
                )
            )
            stopping = asyncio.ensure_future(stop.wait())
            await asyncio.wait({connecting, stopping}, return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            if not connecting.done():  # a signal while Redis is still unreachable
                connecting.cancel()
                await asyncio.gather(connecting, return_exceptions=True)
                return signals
            connecting.result()
            await adapter.start()
            ops.consuming()
            names = ", ".join(repr(name) for name in args.queues)
            print(
                f"flowcraft worker: consuming queue {names} (prefix {args.prefix!r}, "
                f"concurrency {args.concurrency}) on {adapter.connector.describe()}",
                file=sys.stderr,
                flush=True,
            )
            await stop.wait()
            ops.draining()
        finally:
            await adapter.close(timeout_s=args.grace_period)
        print("flowcraft worker: stopped", file=sys.stderr, flush=True)
        return signals
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)
        await ops.stop()


# --------------------------------------------------------------------------- client commands


def start_command(args: argparse.Namespace) -> int:
    _require_blueprints(args)
    context = read_context(args.context)
    if args.timeout is not None and not args.wait:
        raise CliError("--timeout needs --wait")

    async def call(adapter: BullMQAdapter) -> tuple[str, Any]:
        try:
            run_id = await adapter.start_run(
                args.blueprint_id,
                context,
                run_id=args.run_id,
                idempotency_key=args.idempotency_key,
                priority=args.priority,
                delay=args.delay,
                compensate=not args.no_compensate,
            )
        except ValueError as exc:  # an existing run id, a priority out of range
            raise CliError(str(exc)) from None
        if not args.wait:
            return run_id, None
        try:
            return run_id, await adapter.wait_for_result(run_id, timeout_s=args.timeout)
        except TimeoutError:
            raise CliError(
                f"run {run_id} still running after {args.timeout}s", code=ExitCode.INFRASTRUCTURE
            ) from None

    given = (("retry_mode", args.retry_mode), ("event_stream", args.event_stream))
    options = {name: value for name, value in given if value is not None}
    run_id, result = _client_call(args, call, **options)
    if result is None:
        print(run_id)
        return ExitCode.OK
    _print_result(result, args.blueprint_id, args)
    return _exit_for(str(result.status))


def status_command(args: argparse.Namespace) -> int:
    """The run's status, activations (state, attempts, times), waits, errors and outputs,
    read through `BullMQAdapter.inspect_run`; coloured by rich when it is installed."""

    async def call(adapter: BullMQAdapter) -> tuple[Any, Any]:
        try:
            run = await adapter.inspect_run(args.run_id)
            result = await adapter.get_result(args.run_id) if args.json else None
        except RunNotFoundError as exc:
            raise CliError(str(exc)) from None
        return run, result

    run, result = _client_call(args, call)
    if args.json:
        document = run.to_json()
        if result is not None:  # the context as the run's result shapes it (awaiting ids)
            document["context"] = result.context
        print(dumps(document, indent=2))
        return ExitCode.OK
    from .inspector.terminal import print_status

    bp = (
        read_blueprint_dir(args.blueprints).get(run.summary.blueprint_id)
        if args.blueprints
        else None
    )
    print_status(run, bp)
    return ExitCode.OK


def inspect_command(args: argparse.Namespace) -> int:
    try:
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise CliError(
            f"flowcraft inspect needs uvicorn: pip install 'flowcraft[inspect]' ({exc})"
        ) from exc
    from .connection import redact_url
    from .inspector.serve import bind, serve

    try:
        sock = bind(args.host, args.port)
    except OSError as exc:
        raise CliError(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}") from None
    url = redact_url(args.redis or os.environ.get(REDIS_URL_ENV) or DEFAULT_REDIS_URL)
    adapter = _adapter(args)

    async def go() -> None:
        async with adapter:
            await serve(adapter, sock, where=f"{url} · prefix {args.prefix} · queue {args.queue}")

    try:
        with _infrastructure_errors(args):
            asyncio.run(go())
    finally:
        sock.close()
    return ExitCode.OK


def resume_command(args: argparse.Namespace) -> int:
    output = read_json_argument("--output", args.output) if args.output is not None else None

    async def call(adapter: BullMQAdapter) -> str:
        try:
            return await adapter.resume_with_action(
                args.run_id, args.action, output, node_id=args.node
            )
        except (RunNotAwaitingError, RunNotFoundError) as exc:
            raise CliError(str(exc)) from None

    print(_client_call(args, call))
    return ExitCode.OK


def cancel_command(args: argparse.Namespace) -> int:
    async def call(adapter: BullMQAdapter) -> tuple[bool, str]:
        try:
            cancelled = await adapter.cancel_run(args.run_id)
            return cancelled, await adapter.get_status(args.run_id)
        except RunNotFoundError as exc:
            raise CliError(str(exc)) from None

    cancelled, status = _client_call(args, call)
    if cancelled:
        print("cancelled")
        return ExitCode.OK
    print(f"flowcraft: run {args.run_id} had already finished ({status})", file=sys.stderr)
    return ExitCode.FAILED


def reconcile_command(args: argparse.Namespace) -> int:
    async def call(adapter: BullMQAdapter) -> Any:
        from .reconciler import adapter_reconciler

        reconciler = await adapter_reconciler(
            adapter, stalled_threshold_s=args.threshold, scan_count=args.scan_count
        )
        if args.cron is None:
            return await reconciler.run()
        await reconciler.schedule(cron=args.cron)
        return None

    stats = _client_call(args, call)
    if stats is None:
        print(
            f"reconcile scheduled on queue {args.queue!r}: {args.cron!r} "
            f"(threshold {args.threshold:g}s)"
        )
        return ExitCode.OK
    for name in ("scanned_keys", "stalled_runs", "reconciled_runs", "failed_runs"):
        print(f"{name}: {getattr(stats, name)}")
    return ExitCode.FAILED if stats.failed_runs else ExitCode.OK


# --------------------------------------------------------------------------- schedules


def schedule_add_command(args: argparse.Namespace) -> int:
    _require_blueprints(args)
    context = read_context(args.context)
    schedule_id = args.schedule_id or args.blueprint_id

    async def call(adapter: BullMQAdapter) -> Any:
        try:
            return await adapter.add_schedule(
                schedule_id,
                args.blueprint_id,
                cron=args.cron,
                every_ms=args.every,
                context=context,
                priority=args.priority,
                tz=args.tz,
            )
        except ValueError as exc:  # a bad cron pattern, id or priority
            raise CliError(str(exc)) from None

    schedule = _client_call(args, call)
    print(schedule.id)
    return ExitCode.OK


def schedule_list_command(args: argparse.Namespace) -> int:
    async def call(adapter: BullMQAdapter) -> list[Any]:
        return await adapter.list_schedules()

    schedules = _client_call(args, call)
    if args.json:
        print(dumps([schedule.to_json() for schedule in schedules], indent=2))
        return ExitCode.OK
    from datetime import UTC, datetime

    for schedule in schedules:
        when = f"cron {schedule.cron!r}" if schedule.cron else f"every {schedule.every_ms} ms"
        if schedule.tz:
            when += f" ({schedule.tz})"
        upcoming = (
            datetime.fromtimestamp(schedule.next_ms / 1000, UTC).isoformat(timespec="seconds")
            if schedule.next_ms
            else "-"
        )
        print(f"{schedule.id}  {schedule.blueprint_id}  {when}  next {upcoming}")
    return ExitCode.OK


def schedule_remove_command(args: argparse.Namespace) -> int:
    async def call(adapter: BullMQAdapter) -> bool:
        try:
            return await adapter.remove_schedule(args.schedule_id)
        except ValueError as exc:
            raise CliError(str(exc)) from None

    if _client_call(args, call):
        print("removed")
        return ExitCode.OK
    print(f"flowcraft: no schedule {args.schedule_id!r}", file=sys.stderr)
    return ExitCode.FAILED


def _print_result(result: Any, blueprint_id: str, args: argparse.Namespace) -> None:
    """The `run` command's report when the blueprint is at hand, else a plain one."""
    from flowcraft_core.cli.run import print_result
    from flowcraft_core.reserved import AWAITING_DETAILS

    if args.json:
        print(
            dumps(
                {
                    "runId": result.run_id,
                    "blueprintId": blueprint_id,
                    "status": str(result.status),
                    "context": result.context,
                    "errors": [error.to_json() for error in result.errors],
                    "compensated": result.compensated,
                    "compensationFailed": [e.to_json() for e in result.compensation_failed],
                },
                indent=2,
            )
        )
        return
    bp = read_blueprint_dir(args.blueprints).get(blueprint_id) if args.blueprints else None
    if bp is not None:
        print_result(result, bp)
        return
    print(f"blueprint: {blueprint_id}")
    print(f"run:       {result.run_id}")
    print(f"status:    {result.status}")
    rows = [(node_id, dumps(value)) for node_id, value in result.outputs.items()]
    details = result.context.get(AWAITING_DETAILS)
    waiting = [(k, dumps(v)) for k, v in details.items()] if isinstance(details, dict) else []
    errors = [
        (error.node_id or "(run)", f"{error.type}: {error.message}") for error in result.errors
    ]
    for title, section in (("outputs", rows), ("waiting", waiting), ("errors", errors)):
        if section:
            print(f"{title}:")
            for name, text in section:
                print(f"  {name}  {text}")


__all__ = [
    "DEFAULT_REDIS_URL",
    "REDIS_URL_ENV",
    "cancel_command",
    "inspect_command",
    "reconcile_command",
    "register",
    "resume_command",
    "schedule_add_command",
    "schedule_list_command",
    "schedule_remove_command",
    "start_command",
    "status_command",
    "worker_command",
]
