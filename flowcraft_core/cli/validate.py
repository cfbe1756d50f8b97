"""`flowcraft validate`: load problems (SPEC 1.4) and lint issues (8.2) of blueprint files.

Each finding is one line, `file: path: message [CODE]`; warnings read
`file: path: warning: message [CODE]`. Exit 1 when an error was found (or, with `--strict`, a
warning), 2 when a file cannot be read.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flowcraft_core.analysis import lint_blueprint
from flowcraft_core.blueprint import Blueprint, load_blueprint
from flowcraft_core.errors import BlueprintError

from ._common import (
    UNREADABLE_CODES,
    ExitCode,
    add_blueprints_option,
    add_registry_option,
    dumps,
    load_registry,
    read_blueprint_dir,
)


@dataclass(frozen=True, slots=True)
class Finding:
    path: str
    code: str
    severity: str
    message: str
    node_id: str | None = None
    edge_index: int | None = None


@dataclass(slots=True)
class FileReport:
    file: str
    blueprint_id: str | None = None
    findings: list[Finding] = field(default_factory=list)
    unreadable: bool = False

    def count(self, severity: str) -> int:
        return sum(1 for f in self.findings if f.severity == severity)

    def to_json(self, strict: bool) -> dict[str, Any]:
        return {
            "file": self.file,
            "blueprintId": self.blueprint_id,
            "valid": self.valid(strict),
            "issues": [
                {
                    "path": f.path,
                    "code": f.code,
                    "severity": f.severity,
                    "message": f.message,
                    "nodeId": f.node_id,
                    "edgeIndex": f.edge_index,
                }
                for f in self.findings
            ],
        }

    def valid(self, strict: bool) -> bool:
        return not self.findings if strict else self.count("error") == 0


def register(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
) -> None:
    parser = subparsers.add_parser(
        "validate",
        parents=[common],
        help="check blueprints: load problems and lint issues",
        description="Load and lint blueprint files; print `file: path: message [CODE]` per "
        "finding. Exit code: 0 valid, 1 errors found (or warnings with --strict), 2 a file "
        "cannot be read.",
    )
    parser.add_argument("files", nargs="+", metavar="BLUEPRINT", help="blueprint files")
    add_registry_option(parser)
    add_blueprints_option(parser)
    parser.add_argument("--format", choices=("text", "json"), default="text")
    parser.add_argument("--strict", action="store_true", help="treat warnings as errors")
    parser.set_defaults(handler=validate_command)


def validate_command(args: argparse.Namespace) -> int:
    registry = load_registry(args.registry) if args.registry else None
    known = read_blueprint_dir(args.blueprints) if args.blueprints else None
    loaded: list[tuple[FileReport, Blueprint | None]] = [_load(name) for name in args.files]
    if known is not None:
        for _, bp in loaded:
            if bp is not None:
                known.setdefault(bp.id, bp)
    reports = []
    for report, bp in loaded:
        if bp is not None:
            lint = lint_blueprint(bp, registry, known)
            report.findings.extend(
                Finding(i.path, i.code, i.severity, i.message, i.node_id, i.edge_index)
                for i in lint.issues
            )
        reports.append(report)
    strict: bool = args.strict
    if args.format == "json":
        document = {
            "valid": all(r.valid(strict) for r in reports),
            "files": [r.to_json(strict) for r in reports],
        }
        print(dumps(document, indent=2))
    else:
        _print_text(reports)
    if any(r.unreadable for r in reports):
        return ExitCode.USAGE
    return ExitCode.OK if all(r.valid(strict) for r in reports) else ExitCode.FAILED


def _load(name: str) -> tuple[FileReport, Blueprint | None]:
    report = FileReport(name)
    try:
        bp = load_blueprint(Path(name))
    except BlueprintError as exc:
        report.blueprint_id = exc.blueprint_id
        report.findings.extend(Finding(p.path, p.code, "error", p.message) for p in exc.problems)
        report.unreadable = any(p.code in UNREADABLE_CODES for p in exc.problems)
        return report, None
    report.blueprint_id = bp.id
    return report, bp


def format_finding(file: str, finding: Finding) -> str:
    level = "" if finding.severity == "error" else f"{finding.severity}: "
    return f"{file}: {finding.path}: {level}{finding.message} [{finding.code}]"


def _print_text(reports: list[FileReport]) -> None:
    errors = warnings = 0
    for report in reports:
        for finding in report.findings:
            print(format_finding(report.file, finding))
        if not report.findings:
            print(f"{report.file}: ok")
        errors += report.count("error")
        warnings += report.count("warning")
    print(
        f"{_plural(len(reports), 'file')}: {_plural(errors, 'error')}, "
        f"{_plural(warnings, 'warning')}"
    )


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


__all__ = ["FileReport", "Finding", "format_finding", "register", "validate_command"]
