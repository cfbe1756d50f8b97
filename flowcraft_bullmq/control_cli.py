"""The run-control commands of `flowcraft` (docs/run-control.md, docs/events.md): `pause`,
`unpause`, `restart`, `retry` and `send-event`. `unpause`, not `resume`: `flowcraft resume`
already completes a waiting node.

Registered by `cli.register`; the handlers import the adapter lazily like the other commands.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from flowcraft_core.cli._common import CliError, ExitCode, read_json_argument
from flowcraft_core.errors import RunNotAwaitingError, RunNotFoundError

if TYPE_CHECKING:
    from .adapter import BullMQAdapter


def register_control(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
    options: Callable[[argparse.ArgumentParser], None],
) -> None:
    """Add the commands; `options` adds the distributed options (--redis, --blueprints...)."""

    def command(name: str, handler: Callable[[argparse.Namespace], int], text: str) -> Any:
        parser = subparsers.add_parser(name, parents=[common], help=text.split(";")[0],
                                       description=text)  # fmt: skip
        parser.add_argument("run_id", metavar="RUN_ID")
        options(parser)
        parser.set_defaults(handler=handler)
        return parser

    command(
        "pause",
        pause_command,
        "pause a running or awaiting distributed run; in-flight nodes finish, nothing new "
        "starts until 'flowcraft unpause' (exit 1 if the run is not running or awaiting)",
    )
    command(
        "unpause",
        unpause_command,
        "continue a paused distributed run where it stopped (exit 1 if it is not paused)",
    )
    command(
        "restart",
        restart_command,
        "start a new run of the run's blueprint with its initial context; prints the new "
        "run id (its meta links the old one: restartedFrom)",
    )
    retry = command(
        "retry",
        retry_command,
        "run a failed distributed run's failed nodes again, and what follows them, keeping "
        "what succeeded (same run id); exit 2 if the run cannot be retried",
    )
    retry.add_argument(
        "--from-start",
        action="store_true",
        help="restart the whole run instead (a new run id, as 'flowcraft restart')",
    )
    event = command(
        "send-event",
        send_event_command,
        "deliver a named event to a run (RUN_ID, or the idempotency key it was started "
        "with); a wait on that event resumes with the payload, or gets it when it starts",
    )
    event.add_argument("name", metavar="NAME", help="the event name (config.event of the wait)")
    event.add_argument("--payload", metavar="JSON|@FILE", help="the event payload (JSON)")


def _call(args: argparse.Namespace, call: Callable[[BullMQAdapter], Awaitable[Any]]) -> Any:
    from .cli import _client_call

    async def guarded(adapter: BullMQAdapter) -> Any:
        try:
            return await call(adapter)
        except (RunNotFoundError, RunNotAwaitingError, ValueError) as exc:
            raise CliError(str(exc)) from None

    return _client_call(args, guarded)


def _toggle(args: argparse.Namespace, pause: bool) -> int:
    async def call(adapter: BullMQAdapter) -> tuple[bool, str]:
        method = adapter.pause_run if pause else adapter.resume_run
        changed = await method(args.run_id)
        return changed, await adapter.get_status(args.run_id)

    changed, status = _call(args, call)
    if changed:
        print(status)
        return ExitCode.OK
    wanted = "running or awaiting" if pause else "paused"
    print(f"flowcraft: run {args.run_id} is {status}, not {wanted}", file=sys.stderr)
    return ExitCode.FAILED


def pause_command(args: argparse.Namespace) -> int:
    return _toggle(args, pause=True)


def unpause_command(args: argparse.Namespace) -> int:
    return _toggle(args, pause=False)


def restart_command(args: argparse.Namespace) -> int:
    print(_call(args, lambda adapter: adapter.restart_run(args.run_id)))
    return ExitCode.OK


def retry_command(args: argparse.Namespace) -> int:
    from_failed = not args.from_start
    print(_call(args, lambda adapter: adapter.retry_run(args.run_id, from_failed=from_failed)))
    return ExitCode.OK


def send_event_command(args: argparse.Namespace) -> int:
    payload = read_json_argument("--payload", args.payload) if args.payload is not None else None
    print(_call(args, lambda adapter: adapter.send_event(args.run_id, args.name, payload)))
    return ExitCode.OK


__all__ = ["register_control"]
