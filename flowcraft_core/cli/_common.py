"""What every command shares: exit codes, the one-line error, and reading user input.

User input is everything a command line names: blueprint files, `--blueprints DIR`,
`--registry module:attr` and `--context JSON|@file`. Each reader turns a bad input into a
`CliError` whose message names the culprit; `main` prints it as one line and exits 2.
"""

from __future__ import annotations

import argparse
import enum
import importlib
import json
import os
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from flowcraft_core.blueprint import Blueprint, load_blueprint
from flowcraft_core.errors import BlueprintError, FlowcraftError, Problem
from flowcraft_core.registry import NodeRegistry

BLUEPRINT_SUFFIXES: Final = (".json", ".yaml", ".yml")
#: Load problems meaning "this file could not be read" (an input error, not an invalid blueprint).
UNREADABLE_CODES: Final = frozenset({"FILE_NOT_FOUND", "FILE_UNREADABLE"})


class ExitCode(enum.IntEnum):
    """SPEC 10's exit codes."""

    OK = 0
    FAILED = 1
    USAGE = 2
    AWAITING = 3
    CANCELLED = 4
    INFRASTRUCTURE = 5


class CliError(Exception):
    """A problem to report as one line (plus optional detail lines) and an exit code."""

    def __init__(
        self, message: str, *, code: int = ExitCode.USAGE, details: Sequence[str] = ()
    ) -> None:
        self.message = message
        self.code = int(code)
        self.details = list(details)
        super().__init__(message)


# --------------------------------------------------------------------------- blueprints


def number_argument(
    kind: type[int] | type[float], minimum: int, *, strict: bool = False
) -> Callable[[str], Any]:
    """An argparse `type=` that parses `kind` and requires `>= minimum` (`> minimum` if strict),
    with one message shape for every numeric option of every command group."""
    noun = "an integer" if kind is int else "a number"
    bound = f"{'>' if strict else '>='} {minimum}"

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {noun} {bound}, got {text!r}") from None
        if not (value > minimum if strict else value >= minimum):
            shown = value if kind is int else text  # as typed for floats ("0", not "0.0")
            raise argparse.ArgumentTypeError(f"expected {noun} {bound}, got {shown}")
        return value

    return parse


def format_problem(source: str, problem: Problem) -> str:
    """`file: path: message [CODE]`, the line format of `validate` and of load errors."""
    return f"{source}: {problem.path}: {problem.message} [{problem.code}]"


def blueprint_error(source: str, exc: BlueprintError, *, hint: str | None = None) -> CliError:
    """A CliError listing every problem of `exc`, one line each."""
    count = len(exc.problems)
    noun = "problem" if count == 1 else "problems"
    name = f"blueprint {exc.blueprint_id!r}" if exc.blueprint_id else "blueprint"
    details = [format_problem(source, p) for p in exc.problems]
    if hint:
        details.append(f"hint: {hint}")
    return CliError(f"{source}: {name} is invalid ({count} {noun})", details=details)


def read_blueprint(path: str) -> Blueprint:
    """Load one blueprint file; every problem becomes a detail line of one CliError."""
    try:
        return load_blueprint(Path(path))
    except BlueprintError as exc:
        if len(exc.problems) == 1 and exc.problems[0].code in UNREADABLE_CODES:
            raise CliError(exc.problems[0].message) from None
        raise blueprint_error(path, exc) from None


def read_blueprint_dir(directory: str | None) -> dict[str, Blueprint]:
    """Every `*.json`, `*.yaml` and `*.yml` file of `directory`, keyed by blueprint id."""
    if directory is None:
        return {}
    root = Path(directory)
    if not root.is_dir():
        raise CliError(f"--blueprints {directory}: not a directory")
    found: dict[str, Blueprint] = {}
    origin: dict[str, Path] = {}
    for path in sorted(root.iterdir()):
        if path.suffix.lower() not in BLUEPRINT_SUFFIXES or not path.is_file():
            continue
        bp = read_blueprint(str(path))
        if bp.id in found:
            raise CliError(
                f"--blueprints {directory}: blueprint id {bp.id!r} is defined twice "
                f"({origin[bp.id].name} and {path.name})"
            )
        found[bp.id] = bp
        origin[bp.id] = path
    return found


def resolve_blueprint(name: str, blueprints: Mapping[str, Blueprint]) -> tuple[str, Blueprint]:
    """A file path, or else the id of a blueprint from `--blueprints`: (label, blueprint)."""
    path = Path(name)
    if path.exists() or name not in blueprints:
        return name, read_blueprint(name)
    return name, blueprints[name]


# --------------------------------------------------------------------------- registries


def add_registry_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--registry",
        action="append",
        default=[],
        metavar="MODULE:ATTR",
        help="node implementations: a NodeRegistry or mapping (repeatable; merged). "
        "ATTR defaults to 'registry'",
    )


def add_blueprints_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--blueprints",
        metavar="DIR",
        help="directory of *.json/*.yaml/*.yml blueprints, keyed by id (for subflows)",
    )


def import_object(spec: str) -> Any:
    """`module:attr` (attr may be dotted; default `registry`), importable from the CWD."""
    module_name, _, attr = spec.partition(":")
    if not module_name:
        raise CliError(f"--registry {spec!r}: expected MODULE:ATTR, e.g. myapp.nodes:registry")
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise CliError(f"--registry {spec}: cannot import {module_name!r}: {exc}") from exc
    except Exception as exc:  # user code failing at import time
        raise CliError(
            f"--registry {spec}: importing {module_name!r} raised {type(exc).__name__}: {exc}"
        ) from exc
    for part in (attr or "registry").split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise CliError(
                f"--registry {spec}: {module_name!r} has no attribute {attr or 'registry'!r}"
            ) from None
    return obj


def load_registry(specs: Iterable[str]) -> NodeRegistry:
    """Merge every `--registry` into one NodeRegistry (a name bound twice is an error)."""
    merged = NodeRegistry()
    for spec in specs:
        obj = import_object(spec)
        if not isinstance(obj, Mapping):
            raise CliError(
                f"--registry {spec}: expected a NodeRegistry or a mapping, got {type(obj).__name__}"
            )
        for name, impl in obj.items():
            if name in merged:
                if merged[name] is impl:
                    continue  # the same registry given twice, or shared entries
                raise CliError(
                    f"--registry {spec}: {name!r} is already bound to another implementation "
                    "by an earlier --registry"
                )
            try:
                merged.register(name, impl)
            except FlowcraftError as exc:
                raise CliError(f"--registry {spec}: {exc}") from exc
    return merged


# --------------------------------------------------------------------------- context, output


def read_json_argument(option: str, value: str) -> Any:
    """JSON text, or `@file` (`@-` is stdin)."""
    if value.startswith("@"):
        name = value[1:]
        try:
            text = sys.stdin.read() if name == "-" else Path(name).read_text(encoding="utf-8")
        except OSError as exc:
            raise CliError(f"{option} {value}: {exc.strerror or exc}") from exc
        except UnicodeDecodeError as exc:
            raise CliError(f"{option} {value}: not UTF-8 text (byte {exc.start})") from exc
        where = f"{option} {value}"
    else:
        text, where = value, option
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise CliError(
            f"{where}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
        ) from exc
    except RecursionError:
        raise CliError(f"{where}: not valid JSON (nested too deeply)") from None
    except ValueError as exc:  # an integer with more digits than Python converts
        raise CliError(f"{where}: not valid JSON ({exc})") from None


def read_context(value: str | None) -> dict[str, Any]:
    if value is None:
        return {}
    data = read_json_argument("--context", value)
    if not isinstance(data, dict):
        raise CliError(f"--context: expected a JSON object, got {type(data).__name__}")
    return data


def write_output(data: str | bytes, path: str | None) -> None:
    """Write to `-o FILE`, or to stdout."""
    if path is None or path == "-":
        if isinstance(data, bytes):
            sys.stdout.flush()
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()
        else:
            sys.stdout.write(data)
        return
    try:
        if isinstance(data, bytes):
            Path(path).write_bytes(data)
        else:
            Path(path).write_text(data, encoding="utf-8")
    except OSError as exc:
        raise CliError(f"-o {path}: {exc.strerror or exc}") from exc


def dumps(value: Any, *, indent: int | None = None) -> str:
    """JSON for humans: non-ASCII kept, anything unexpected shown with str()."""
    separators = None if indent is not None else (", ", ": ")
    return json.dumps(value, ensure_ascii=False, indent=indent, separators=separators, default=str)


__all__ = [
    "BLUEPRINT_SUFFIXES",
    "UNREADABLE_CODES",
    "CliError",
    "ExitCode",
    "add_blueprints_option",
    "add_registry_option",
    "blueprint_error",
    "dumps",
    "format_problem",
    "import_object",
    "load_registry",
    "read_blueprint",
    "read_blueprint_dir",
    "read_context",
    "read_json_argument",
    "resolve_blueprint",
    "write_output",
]
