"""`flowcraft graph`: draw a blueprint as Mermaid or DOT text, or as SVG/PNG through Graphviz."""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from typing import Final

from flowcraft_core.analysis import to_dot, to_mermaid

from ._common import CliError, ExitCode, read_blueprint, write_output

FORMATS: Final = ("mermaid", "dot", "svg", "png")
GRAPHVIZ_TIMEOUT_S: Final = 60.0


def register(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
) -> None:
    parser = subparsers.add_parser(
        "graph",
        parents=[common],
        help="draw a blueprint (Mermaid, DOT, SVG, PNG)",
        description="Print a blueprint as a Mermaid flowchart or Graphviz DOT; svg and png "
        "pipe the DOT text through Graphviz's `dot`, which must be on PATH.",
    )
    parser.add_argument("blueprint", help="blueprint file")
    parser.add_argument("--format", choices=FORMATS, default="mermaid")
    parser.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")
    parser.set_defaults(handler=graph_command)


def graph_command(args: argparse.Namespace) -> int:
    fmt: str = args.format
    if fmt in ("mermaid", "dot"):
        bp = read_blueprint(args.blueprint)
        text = to_mermaid(bp) if fmt == "mermaid" else to_dot(bp)
        write_output(text + "\n", args.output)
        return ExitCode.OK
    dot = shutil.which("dot")
    if dot is None:
        raise CliError(
            f"--format {fmt} needs Graphviz's `dot` on PATH; install Graphviz, "
            "or use --format mermaid or --format dot"
        )
    if fmt == "png" and args.output in (None, "-") and sys.stdout.isatty():
        raise CliError("refusing to write PNG to a terminal; use -o FILE")
    bp = read_blueprint(args.blueprint)
    write_output(render(dot, to_dot(bp), fmt), args.output)
    return ExitCode.OK


def render(dot: str, text: str, fmt: str) -> bytes:
    """Run Graphviz: DOT text in, `fmt` bytes out."""
    try:
        done = subprocess.run(
            [dot, f"-T{fmt}"],
            input=text.encode("utf-8"),
            capture_output=True,
            timeout=GRAPHVIZ_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise CliError(f"graphviz `dot` could not run: {exc}") from exc
    if done.returncode != 0:
        reason = done.stderr.decode("utf-8", "replace").strip().splitlines()
        raise CliError(
            f"graphviz `dot` failed (exit {done.returncode})" + (f": {reason[0]}" if reason else "")
        )
    return done.stdout


__all__ = ["FORMATS", "graph_command", "register", "render"]
