"""`flowcraft status RUN_ID`: the inspector's run page in a terminal.

With `rich` (the ``inspect`` extra) states are coloured and the activations are a table; without
it the same lines are written as plain aligned text. Either way the first lines keep the
``key:  value`` shape of the `run` command's report (scripts grep ``status:``).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from typing import Any, Final, TextIO

from flowcraft_core.blueprint import Blueprint
from flowcraft_core.distributed.protocol import FINISHED_STATUSES

from ..inspection import NOT_REACHED, RunInspection
from .pages import RETRY_NOTE, clock, cut, dumps, fmt_duration, fmt_time

#: Values are cut to this many characters (the web page expands them).
VALUE_CHARS: Final = 100
_STYLES: Final = {
    "done": "green",
    "completed": "green",
    "failed": "bold red",
    "stalled": "bold red",
    "running": "cyan",
    "queued": "magenta",
    "waiting": "yellow",
    "sleeping": "yellow",
    "awaiting": "bold yellow",
    "paused": "bold magenta",
    "compensating": "bold red",
    "skipped": "dim",
    "cancelled": "dim",
    NOT_REACHED: "dim",
}


def _cut(text: str) -> str:
    return cut(text, VALUE_CHARS)


def status_report(
    run: RunInspection, bp: Blueprint | None, now: float | None = None
) -> dict[str, Any]:
    """The rows both renderers print: header facts, activations, waits, errors, outputs."""
    now = time.time() if now is None else now
    s = run.summary
    finished = s.status in FINISHED_STATUSES
    header = [
        ("blueprint", s.blueprint_id),
        ("run", s.run_id),
        ("status", s.status),
        ("started", fmt_time(s.created_at)),
        ("duration", fmt_duration(s.duration_s(now)) + ("" if finished else " (so far)")),
        ("in flight", str(s.in_flight)),
    ]
    if s.finished_at is not None:
        header.insert(4, ("finished", fmt_time(s.finished_at)))
    rows: list[tuple[str, str, str, str, str, str]] = []
    seen: set[str] = set()
    for a in run.activations:
        seen.add(a.node_id)
        rows.append(
            (
                a.akey.removesuffix("@"),
                a.state,
                str(a.attempts or ""),
                clock(a.started_at) if a.started_at else "",
                fmt_duration(a.ran_s) if a.ran_s is not None else "",
                _cut(a.problem),
            )
        )
    if bp is not None:
        order = {node.id: i for i, node in enumerate(bp.nodes)}
        rows.sort(key=lambda r: order.get(r[0].rpartition("@")[0] or r[0], len(order)))
        rows += [(n.id, NOT_REACHED, "", "", "", "") for n in bp.nodes if n.id not in seen]
    waiting = [(akey.removesuffix("@"), _cut(dumps(d))) for akey, d in run.waiting.items()]
    errors = [
        (
            str(e.get("nodeId") or "(run)") if isinstance(e, dict) else "(run)",
            _cut(f"{e.get('type')}: {e.get('message')}" if isinstance(e, dict) else dumps(e)),
        )
        for e in run.errors
    ]
    outputs = [(node, _cut(dumps(value))) for node, value in run.outputs.items()]
    return {
        "header": header,
        "rows": rows,
        "waiting": waiting,
        "errors": errors,
        "outputs": outputs,
    }


def print_status(
    run: RunInspection,
    bp: Blueprint | None,
    *,
    stream: TextIO | None = None,
    use_rich: bool | None = None,
) -> None:
    """Print the report with rich when it is installed (or `use_rich`), else as plain text."""
    out = stream if stream is not None else sys.stdout
    report = status_report(run, bp)
    if use_rich is not False:
        try:
            import rich  # noqa: F401
        except ImportError:
            if use_rich:
                raise
        else:
            _print_rich(report, out)
            return
    _print_plain(report, out)


_COLUMNS: Final = ("activation", "state", "attempts", "started", "ran", "error")
_SECTIONS: Final = (("waiting", "waiting"), ("errors", "errors"), ("outputs", "outputs"))


def _print_plain(report: dict[str, Any], out: TextIO) -> None:
    for key, value in report["header"]:
        out.write(f"{key + ':':<11}{value}\n")
    rows: Sequence[tuple[str, ...]] = report["rows"]
    if rows:
        out.write("nodes:\n")
        widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(_COLUMNS)]
        for line in (_COLUMNS, *rows):
            cells = (cell.ljust(width) for cell, width in zip(line, widths, strict=True))
            out.write("  " + "  ".join(cells).rstrip() + "\n")
    for title, key in _SECTIONS:
        if report[key]:
            out.write(f"{title}:\n")
            width = max(len(name) for name, _ in report[key])
            for name, text in report[key]:
                out.write(f"  {name.ljust(width)}  {text}\n")
    out.flush()


def _print_rich(report: dict[str, Any], out: TextIO) -> None:
    from rich import box
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    # soft_wrap: lines longer than the terminal are not cut into pieces (values are cut already).
    console = Console(file=out, highlight=False, soft_wrap=True)

    def styled(state: str) -> str:
        style = _STYLES.get(state)
        return f"[{style}]{escape(state)}[/]" if style else escape(state)

    for key, value in report["header"]:
        shown = styled(value) if key == "status" else escape(value)
        console.print(f"{key + ':':<11}{shown}")
    if report["rows"]:
        console.print("nodes:")
        table = Table(box=box.SIMPLE_HEAD, padding=(0, 1), show_edge=False, header_style="bold")
        for i, column in enumerate(_COLUMNS):
            if column == "error":  # cut: the errors section below has the whole message
                table.add_column(column, no_wrap=True, overflow="ellipsis", min_width=12)
            else:  # never squeezed: they are short
                width = max(len(column), *(len(row[i]) for row in report["rows"]))
                table.add_column(
                    column,
                    no_wrap=True,
                    min_width=width,
                    justify="right" if column == "ran" else "left",
                )
        for row in report["rows"]:
            akey, state, *rest = row
            table.add_row(
                escape(akey),
                styled(state),
                *(escape(c) for c in rest[:-1]),
                f"[red]{escape(rest[-1])}[/]" if rest[-1] else "",
            )
        console.print(table)
    for title, key in _SECTIONS:
        if report[key]:
            console.print(f"{title}:")
            width = max(len(name) for name, _ in report[key])
            color = "red" if key == "errors" else None
            for name, text in report[key]:
                body = f"[{color}]{escape(text)}[/]" if color else escape(text)
                console.print(f"  {escape(name.ljust(width))}  {body}")


__all__ = ["RETRY_NOTE", "print_status", "status_report"]
