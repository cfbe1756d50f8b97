"""The inspector's HTML pages, rendered on the server (the pages work without JavaScript;
`static/inspector.js` only adds live reload and checks the resume form's JSON).

Everything that comes from a run (ids, context values, error messages) is HTML-escaped here.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from html import escape
from typing import Any, Final
from urllib.parse import quote, urlencode

from flowcraft_core.blueprint import Blueprint
from flowcraft_core.distributed.protocol import FINISHED_STATUSES
from flowcraft_core.versioning import blueprint_pin

from ..inspection import (
    NOT_REACHED,
    STATES,
    RunInspection,
    RunSummary,
    context_without_outputs,
    waiting_nodes,
)
from .graph import MAX_DRAWN, to_svg

#: Values longer than this (as compact JSON) are cut in tables and expand on click.
SHORT_CHARS: Final = 96
#: An expanded value is cut after this many characters (a page is not a data export).
LONG_CHARS: Final = 200_000
#: The timeline shows at most this many activations (a page, not an export).
MAX_ROWS: Final = 2_000
RUN_STATUSES: Final = (
    "running",
    "awaiting",
    "paused",
    "compensating",
    "completed",
    "failed",
    "cancelled",
    "stalled",
)
RETRY_NOTE: Final = (
    "Retry is not offered on this page: run a failed run's failed nodes again with "
    "'flowcraft retry RUN_ID', or start it over with 'flowcraft restart RUN_ID' "
    "(docs/run-control.md)."
)


def dumps(value: Any, *, indent: int | None = None) -> str:
    """JSON for display: non-JSON values as their repr, never an exception."""
    return json.dumps(value, ensure_ascii=False, indent=indent, default=repr)


def fmt_time(epoch: float | None) -> str:
    if epoch is None:
        return "–"
    moment = datetime.fromtimestamp(epoch, UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S") + f".{moment.microsecond // 1000:03d}Z"


def clock(epoch: float | None) -> str:
    """The time of day of `fmt_time` (the page header has the date)."""
    return fmt_time(epoch)[11:] if epoch is not None else "–"


def cut(text: str, limit: int) -> str:
    """`text`, or its first `limit - 1` characters and an ellipsis."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.2f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def value_html(value: Any) -> str:
    """A value as compact JSON; long ones cut, expandable to the indented whole."""
    text = dumps(value)
    if len(text) <= SHORT_CHARS:
        return f'<code class="value">{escape(text)}</code>'
    full = dumps(value, indent=2)
    if len(full) > LONG_CHARS:
        full = full[:LONG_CHARS] + f"\n… ({len(full) - LONG_CHARS} more characters)"
    return (
        f'<details class="value"><summary><code>{escape(text[:SHORT_CHARS])}…</code> '
        f'<span class="muted">({len(text)} chars)</span></summary>'
        f"<pre>{escape(full)}</pre></details>"
    )


def badge(state: str) -> str:
    return f'<span class="badge st-{escape(state)}">{escape(state)}</span>'


def page(title: str, body: str, *, base: str, where: str, attrs: str = "") -> str:
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)} · flowcraft inspector</title>"
        f'<link rel="stylesheet" href="{base}/static/inspector.css"></head>'
        f'<body{attrs}><header><a class="brand" href="{base}/">flowcraft inspector</a>'
        f'<span class="where">{escape(where)}</span></header><main>{body}</main>'
        f'<script src="{base}/static/inspector.js"></script></body></html>'
    )


def run_link(base: str, run_id: str) -> str:
    return f"{base}/runs/{quote(run_id, safe='')}"


# --------------------------------------------------------------------------- the run list


def runs_page(
    runs: Sequence[RunSummary],
    *,
    base: str,
    where: str,
    status: str,
    blueprint: str,
    limit: int,
    blueprint_ids: Iterable[str],
    max_scanned: int,
    now: float | None = None,
) -> str:
    now = time.time() if now is None else now
    options = "".join(
        f'<option value="{s}"{" selected" if s == status else ""}>{s or "any status"}</option>'
        for s in ("", *RUN_STATUSES)
    )
    known = sorted(set(blueprint_ids) | {r.blueprint_id for r in runs})
    datalist = "".join(f'<option value="{escape(b)}">' for b in known)
    rows = []
    for run in runs:
        rows.append(
            f'<tr data-run="{escape(run.run_id)}" data-status="{escape(run.status)}">'
            f'<td><a href="{run_link(base, run.run_id)}"><code>{escape(run.run_id)}</code></a></td>'
            f"<td>{escape(run.blueprint_id)}</td><td>{badge(run.status)}</td>"
            f"<td>{fmt_time(run.created_at)}</td>"
            f'<td class="num">{fmt_duration(run.duration_s(now))}</td>'
            f'<td class="num">{run.in_flight}</td></tr>'
        )
    table = (
        '<table class="runs"><thead><tr><th>Run</th><th>Blueprint</th><th>Status</th>'
        '<th>Started (UTC)</th><th class="num">Duration</th><th class="num">In flight</th>'
        f"</tr></thead><tbody>{''.join(rows)}</tbody></table>"
        if rows
        else '<p class="empty">No runs match.</p>'
    )
    body = (
        "<h1>Recent runs</h1>"
        f'<form class="filters" method="get" action="{base}/">'
        f'<label>Status <select name="status">{options}</select></label>'
        f'<label>Blueprint <input name="blueprint" list="blueprint-ids" '
        f'value="{escape(blueprint)}" placeholder="any blueprint"></label>'
        f'<datalist id="blueprint-ids">{datalist}</datalist>'
        f'<label>Show <input name="limit" type="number" min="1" max="1000" value="{limit}">'
        '</label><button type="submit">Filter</button></form>'
        f"{table}"
        f'<p class="muted">{len(runs)} run(s), newest first. Runs are found by a SCAN of at '
        f"most {max_scanned} run meta keys; finished runs disappear when their state expires."
        "</p>"
    )
    return page("Runs", body, base=base, where=where)


# --------------------------------------------------------------------------- one run


def run_page(
    run: RunInspection,
    bp: Blueprint | None,
    *,
    base: str,
    where: str,
    message: str = "",
    now: float | None = None,
) -> str:
    now = time.time() if now is None else now
    s = run.summary
    link = run_link(base, s.run_id)
    finished = s.status in FINISHED_STATUSES
    notes = []
    if bp is not None and run.pin and blueprint_pin(bp) != run.pin:
        notes.append(
            "The loaded blueprint is not the version this run started with: the graph may "
            "differ from what ran."
        )
    if bp is None:
        notes.append(
            f"Blueprint {escape(s.blueprint_id)!s} is not loaded here (give the inspector "
            "--blueprints DIR): the graph is not drawn and resume is not available."
        )
    facts = [
        (
            "Blueprint",
            f'{escape(s.blueprint_id)} <span class="muted" title="{escape(run.pin)}">'
            f"{escape(cut(run.pin, 20))}</span>",
        ),
        ("Started", fmt_time(s.created_at)),
        ("Finished", fmt_time(s.finished_at)),
        ("Duration", fmt_duration(s.duration_s(now)) + ("" if finished else " (so far)")),
        ("Last progress", fmt_time(s.progress_at)),
        ("In flight", str(s.in_flight)),
    ]
    if run.expires_in_s is not None:
        facts.append(("State expires in", fmt_duration(run.expires_in_s)))
    if run.buffered_resumes:
        facts.append(("Buffered resumes", str(run.buffered_resumes)))
    sections = [
        f"<h1>Run <code>{escape(s.run_id)}</code> {badge(s.status)}</h1>",
        f'<p class="flash">{escape(message)}</p>' if message else "",
        "".join(f'<p class="note">{n}</p>' for n in notes),
        '<dl class="facts">' + "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in facts) + "</dl>",
        _actions(run, bp, link, finished),
        _graph(run, bp),
        _errors(run),
        _waiting(run),
        _timeline(run, bp, now),
        _values("Outputs", "outputs", run.outputs, "node"),
        _values("Context", "context", context_without_outputs(run.context), "key"),
    ]
    attrs = (
        f' data-run="{escape(s.run_id)}" data-fingerprint="{escape(run.fingerprint)}"'
        f' data-api="{base}/api/runs/{quote(s.run_id, safe="")}"'
        f' data-live="{"0" if finished else "1"}"'
    )
    return page(f"Run {s.run_id}", "".join(sections), base=base, where=where, attrs=attrs)


def _actions(run: RunInspection, bp: Blueprint | None, link: str, finished: bool) -> str:
    parts = []
    waiting = waiting_nodes(run)
    if waiting and bp is not None:
        actions = sorted(
            {e.action for e in bp.edges if e.source in waiting and e.action is not None}
        )
        nodes = "".join(f'<option value="{escape(n)}">{escape(n)}</option>' for n in waiting)
        choices = "".join(f'<option value="{escape(a)}">' for a in actions)
        parts.append(
            f'<form id="resume-form" class="action" method="post" action="{link}/resume">'
            "<h3>Resume a waiting node</h3>"
            f'<label>Node <select name="node">{nodes}</select></label>'
            '<label>Action <input name="action" list="resume-actions" '
            f'placeholder="{escape(actions[0]) if actions else "(none)"}"></label>'
            f'<datalist id="resume-actions">{choices}</datalist>'
            '<label class="wide">Output (JSON; empty = null)'
            '<textarea name="output" rows="3" spellcheck="false"></textarea></label>'
            '<span class="form-error" aria-live="polite"></span>'
            '<button type="submit" class="primary">Resume</button></form>'
        )
    if not finished:
        parts.append(
            f'<form id="cancel-form" class="action" method="post" action="{link}/cancel">'
            '<h3>Cancel</h3><p class="muted">Running nodes are cancelled; nothing else '
            'starts.</p><button type="submit" class="danger">Cancel run</button></form>'
        )
    parts.append(f'<p class="muted retry-note">{escape(RETRY_NOTE)}</p>')
    return '<section class="actions"><h2>Actions</h2>' + "".join(parts) + "</section>"


def _graph(run: RunInspection, bp: Blueprint | None) -> str:
    legend = "".join(
        f'<span class="legend-item">{badge(state)}</span>'
        for state in ("done", "running", "queued", "waiting", "failed", "skipped", NOT_REACHED)
    )
    if bp is None or len(bp.nodes) > MAX_DRAWN:
        why = "not loaded" if bp is None else f"too large to draw ({len(bp.nodes)} nodes)"
        items = "".join(
            f"<li>{escape(n)} {badge(state)}</li>" for n, state in run.node_states.items()
        )
        return (
            f'<section class="graph-section"><h2>Nodes</h2><p class="muted">Blueprint {why}.'
            f'</p><ul class="node-list">{items}</ul></section>'
        )
    svg = to_svg(bp, run.node_states, default_state=NOT_REACHED)
    return (
        '<section class="graph-section"><h2>Graph</h2>'
        f'<div class="legend">{legend}</div><div class="graph-box">{svg}</div></section>'
    )


def _errors(run: RunInspection) -> str:
    if not run.errors:
        return ""
    items = []
    for error in run.errors:
        if not isinstance(error, Mapping):
            items.append(f'<li class="error">{value_html(error)}</li>')
            continue
        node = error.get("nodeId")
        iteration = error.get("iteration") or []
        where = escape(str(node)) if node is not None else "(run)"
        if iteration:
            where += "@" + ".".join(str(i) for i in iteration)
        fallback = error.get("fallbackError")
        extra = (
            f'<div class="muted">fallback failed too: {escape(str(fallback.get("type")))}: '
            f"{escape(str(fallback.get('message')))}</div>"
            if isinstance(fallback, Mapping)
            else ""
        )
        items.append(
            f'<li class="error" data-node="{escape(str(node))}"><div><strong>{where}</strong> '
            f'<span class="err-type">{escape(str(error.get("type")))}</span> '
            f'<span class="muted">after {escape(str(error.get("attempts", 0)))} attempt(s), '
            f"{escape(str(error.get('timestamp', '')))}</span></div>"
            f'<pre class="err-message">{escape(str(error.get("message")))}</pre>{extra}</li>'
        )
    return f'<section class="errors"><h2>Errors</h2><ul>{"".join(items)}</ul></section>'


def _waiting(run: RunInspection) -> str:
    if not run.waiting:
        return ""
    rows = "".join(
        f"<tr><td><code>{escape(akey)}</code></td><td>{value_html(details)}</td></tr>"
        for akey, details in run.waiting.items()
    )
    return (
        '<section><h2>Waiting</h2><table class="kv"><thead><tr><th>Activation</th>'
        f"<th>Details</th></tr></thead><tbody>{rows}</tbody></table></section>"
    )


def _timeline(run: RunInspection, bp: Blueprint | None, now: float) -> str:
    if not run.activations:
        return '<section><h2>Timeline</h2><p class="empty">No activations yet.</p></section>'
    order = {node.id: i for i, node in enumerate(bp.nodes)} if bp is not None else {}
    s = run.summary
    times = [
        t
        for a in run.activations
        for t in (a.enqueued_at, a.started_at, a.finished_at)
        if t is not None
    ]
    start = s.created_at if s.created_at is not None else min(times, default=now)
    end = s.finished_at if s.finished_at is not None else now
    end = max([end, *times])
    span = max(end - start, 1e-3)
    anchored: set[str] = set()
    rows = []
    for a in run.activations[:MAX_ROWS]:
        anchor = ""
        if a.node_id not in anchored:
            anchored.add(a.node_id)
            anchor = f' id="node-{order.get(a.node_id, "x" + str(len(anchored)))}"'
        label = a.akey.removesuffix("@")
        bar = ""
        begin = a.started_at or a.enqueued_at
        if begin is not None:
            # A wait or sleep still open lasts until now (its job ended when it began waiting).
            stop = a.finished_at
            if stop is None or a.state in ("waiting", "sleeping"):
                stop = end
            queued = ""
            if a.enqueued_at is not None and a.started_at is not None:
                queued = (
                    f'<span class="bar queue" style="left:{_pct(a.enqueued_at - start, span)}%;'
                    f'width:{_pct(a.started_at - a.enqueued_at, span)}%"></span>'
                )
            bar = queued + (
                f'<span class="bar st-{escape(a.state)}" style="left:{_pct(begin - start, span)}%;'
                f'width:{max(0.4, _pct(stop - begin, span))}%"></span>'
            )
        rows.append(
            f'<tr{anchor} data-akey="{escape(a.akey)}" data-state="{escape(a.state)}">'
            f"<td><code>{escape(label)}</code></td><td>{badge(a.state)}</td>"
            f'<td class="num">{a.attempts}</td><td class="time">{clock(a.started_at)}</td>'
            f'<td class="num">{fmt_duration(a.ran_s)}</td>'
            f'<td class="track">{bar}</td><td class="detail">{escape(a.problem)}</td></tr>'
        )
    return (
        '<section class="timeline"><h2>Timeline</h2>'
        f'<p class="muted">{len(run.activations)} activation(s); bars from the run start '
        f"({fmt_time(start)}) to {fmt_time(end)}; the light part is time queued. Times come "
        "from BullMQ's job records while BullMQ keeps them."
        + (
            f" Only the first {MAX_ROWS} are shown (all of them: the JSON API)."
            if len(run.activations) > MAX_ROWS
            else ""
        )
        + "</p>"
        '<table class="timeline"><thead><tr><th>Activation</th><th>State</th>'
        '<th class="num">Attempts</th><th>Started (UTC)</th><th class="num">Ran</th>'
        f'<th class="track">Timeline</th><th>Error</th></tr></thead><tbody>{"".join(rows)}'
        "</tbody></table></section>"
    )


def _pct(part: float, whole: float) -> float:
    return round(max(0.0, min(100.0, 100.0 * part / whole)), 3)


def _values(title: str, css: str, values: Mapping[str, Any], head: str) -> str:
    if not values:
        return ""
    rows = "".join(
        f"<tr><td><code>{escape(key)}</code></td><td>{value_html(value)}</td></tr>"
        for key, value in values.items()
    )
    return (
        f'<section class="{css}"><h2>{title}</h2><table class="kv"><thead><tr><th>{head}</th>'
        f"<th>value</th></tr></thead><tbody>{rows}</tbody></table></section>"
    )


def message_page(title: str, text: str, *, base: str, where: str) -> str:
    body = f'<h1>{escape(title)}</h1><p>{escape(text)}</p><p><a href="{base}/">All runs</a></p>'
    return page(title, body, base=base, where=where)


def redirect_to(link: str, message: str) -> str:
    return f"{link}?{urlencode({'msg': message})}"


__all__ = [
    "RETRY_NOTE",
    "RUN_STATUSES",
    "STATES",
    "clock",
    "cut",
    "dumps",
    "fmt_duration",
    "fmt_time",
    "message_page",
    "redirect_to",
    "run_page",
    "runs_page",
    "value_html",
]
