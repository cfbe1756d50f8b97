"""`flowcraft`: the parser, logging set-up and the error boundary around every command.

Commands come in groups, one module each, listed in `COMMAND_GROUPS`. A group module has
`register(subparsers, common)`: it adds its sub-parsers with `parents=[common]` (the global
options) and sets `handler=<function(args) -> int>` as a default. The distributed commands are
a later group of their own.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import logging
import sys
import traceback
from collections.abc import Sequence
from importlib import metadata
from typing import Final

from flowcraft_core.errors import BlueprintError, FlowcraftError

from ._common import CliError, ExitCode, blueprint_error

COMMAND_GROUPS: Final[tuple[str, ...]] = (
    "flowcraft_core.cli.run",
    "flowcraft_core.cli.validate",
    "flowcraft_core.cli.graph",
    "flowcraft_core.cli.schema",
)
#: Groups of other packages, loaded by name only when importable: core never imports them.
OPTIONAL_COMMAND_GROUPS: Final[tuple[str, ...]] = ("flowcraft_bullmq.cli",)

LOG_LEVELS: Final = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
LOG_FORMAT: Final = "%(levelname)s %(name)s: %(message)s"

logger = logging.getLogger("flowcraft_core.cli")


def _log_level(value: str) -> str:
    level = value.upper()
    if level not in LOG_LEVELS:
        raise argparse.ArgumentTypeError(f"choose from {', '.join(LOG_LEVELS)}")
    return level


def _global_options(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    # On sub-parsers the defaults are suppressed so `flowcraft --debug run x` is not undone.
    default_debug: object = argparse.SUPPRESS if suppress else False
    default_level: object = argparse.SUPPRESS if suppress else None
    parser.add_argument(
        "--debug",
        action="store_true",
        default=default_debug,
        help="show tracebacks and DEBUG logs",
    )
    parser.add_argument(
        "--log-level",
        type=_log_level,
        default=default_level,
        metavar="LEVEL",
        help=f"logging level: {', '.join(LOG_LEVELS)} (default WARNING)",
    )


def _version() -> str:
    try:
        return metadata.version("flowcraft")
    except metadata.PackageNotFoundError:
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="flowcraft",
        description="Validate, draw and run flowcraft blueprints.",
        epilog="exit codes: 0 ok, 1 failed/invalid, 2 usage or input error, 3 awaiting, "
        "4 cancelled, 5 infrastructure",
    )
    parser.add_argument("--version", action="version", version=f"flowcraft {_version()}")
    _global_options(parser, suppress=False)
    common = argparse.ArgumentParser(add_help=False)
    _global_options(common, suppress=True)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_GROUPS:
        importlib.import_module(name).register(subparsers, common)
    for name in OPTIONAL_COMMAND_GROUPS:
        if importlib.util.find_spec(name.partition(".")[0]) is not None:
            importlib.import_module(name).register(subparsers, common)
    return parser


class _Logging:
    """One stderr handler on the root logger for the duration of a command."""

    def __init__(self, level: str) -> None:
        self.handler = logging.StreamHandler(sys.stderr)
        self.handler.setFormatter(logging.Formatter(LOG_FORMAT))
        self.root = logging.getLogger()
        self.saved_level = self.root.level
        self.level = level

    def __enter__(self) -> None:
        self.root.addHandler(self.handler)
        self.root.setLevel(self.level)

    def __exit__(self, *exc: object) -> None:
        self.root.removeHandler(self.handler)
        self.root.setLevel(self.saved_level)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `flowcraft` command line; returns the exit code (SPEC 10)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error argparse printed
        return exc.code if isinstance(exc.code, int) else ExitCode.USAGE
    debug: bool = args.debug
    level = "DEBUG" if debug else (args.log_level or "WARNING")
    with _Logging(level):
        try:
            return int(args.handler(args))
        except CliError as exc:
            _report(exc.message, exc.details, debug=debug)
            return exc.code
        except BlueprintError as exc:
            error = blueprint_error(getattr(args, "blueprint", "blueprint"), exc)
            _report(error.message, error.details, debug=debug)
            return ExitCode.USAGE
        except (FlowcraftError, ValueError, OSError) as exc:
            _report(_one_line(exc), (), debug=debug)
            return ExitCode.USAGE
        except KeyboardInterrupt:
            _report("interrupted", (), debug=debug)
            return 130
        except Exception as exc:
            _report(
                f"internal error: {type(exc).__name__}: {_one_line(exc)}",
                () if debug else ("run again with --debug for the traceback",),
                debug=debug,
            )
            return ExitCode.FAILED


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return " ".join(text.split())


def _report(message: str, details: Sequence[str], *, debug: bool) -> None:
    if debug and sys.exc_info()[0] is not None:
        traceback.print_exc(file=sys.stderr)
    print(f"flowcraft: error: {message}", file=sys.stderr)
    for line in details:
        print(f"  {line}", file=sys.stderr)


__all__ = ["COMMAND_GROUPS", "OPTIONAL_COMMAND_GROUPS", "build_parser", "main"]
