"""The inspector as a raw ASGI 3 application (no framework: a dozen routes do not need one).

Routes (all under the ASGI `root_path`, so it can be mounted behind a proxy):

=======================================  ====================================================
``GET  /``                               recent runs; ``?status=&blueprint=&limit=``
``GET  /runs/{id}``                      one run (``?msg=`` shows the result of an action)
``POST /runs/{id}/resume``               form: ``node``, ``action``, ``output`` (JSON) -> 303
``POST /runs/{id}/cancel``               -> 303 back to the run
``GET  /api/runs``, ``/api/runs/{id}``   the same data as JSON
``POST /api/runs/{id}/resume``, ``…/cancel``  JSON body ``{"node", "action", "output"}``
``GET  /static/{name}``                  the page's CSS and JS (package data)
=======================================  ====================================================

It reads and acts only through `BullMQAdapter`'s public API. It has no authentication: bind it
to localhost or put it behind one. Cross-site writes are refused: a form POST must come from
this origin (``Origin``/``Sec-Fetch-Site``), a JSON POST must be ``application/json`` (a page
elsewhere cannot send that without a CORS preflight, which this app never grants).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from importlib import resources
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import parse_qs, urlsplit

from flowcraft_core.errors import BlueprintError, RunNotAwaitingError, RunNotFoundError
from flowcraft_core.ids import validate_run_id

from . import pages

if TYPE_CHECKING:
    from ..adapter import BullMQAdapter

logger = logging.getLogger("flowcraft_bullmq.inspector")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

MAX_BODY: Final = 1 << 20
_STATIC_TYPES: Final = {
    "inspector.css": "text/css; charset=utf-8",
    "inspector.js": "text/javascript; charset=utf-8",
}
_SECURITY_HEADERS: Final = [
    (
        b"content-security-policy",
        b"default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        b"img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
]


class HttpError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class InspectorApp:
    """ASGI app over one connected (or lazily connecting) `BullMQAdapter`."""

    def __init__(
        self, adapter: BullMQAdapter, *, where: str = "", max_scanned: int = 10_000
    ) -> None:
        self.adapter = adapter
        self.where = where or f"prefix {adapter.prefix} · queue {adapter.queue_name}"
        self.max_scanned = max_scanned
        self._static: dict[str, bytes] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        base = str(scope.get("root_path", "")).rstrip("/")
        try:
            await self._route(scope, receive, send, base)
        except HttpError as exc:
            await self._error(scope, send, base, exc.status, exc.message)
        except RunNotFoundError as exc:
            await self._error(scope, send, base, 404, str(exc))
        except Exception as exc:  # Redis down, a bug: one line, the page says so
            logger.exception("inspector request %s %s failed", scope["method"], scope["path"])
            await self._error(scope, send, base, 503, f"{type(exc).__name__}: {exc}")

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.adapter.connect()
                except Exception as exc:
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.adapter.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    # ------------------------------------------------------------------ routing
    async def _route(self, scope: Scope, receive: Receive, send: Send, base: str) -> None:
        method = scope["method"]
        path = str(scope["path"])[len(base) :] if base else str(scope["path"])
        parts = [p for p in path.split("/") if p]
        query = {k: v[-1] for k, v in parse_qs(scope.get("query_string", b"").decode()).items()}
        api = bool(parts) and parts[0] == "api"
        if api:
            parts = parts[1:]
        if parts[:1] == ["static"] and len(parts) == 2 and method in ("GET", "HEAD"):
            await self._send_static(send, parts[1])
            return
        if not parts and not api and method in ("GET", "HEAD"):
            await self._runs(send, base, query, api=False)
            return
        if parts == ["runs"] and method in ("GET", "HEAD"):
            await self._runs(send, base, query, api=api)
            return
        if len(parts) >= 2 and parts[0] == "runs":
            run_id = _run_id(parts[1])
            if len(parts) == 2 and method in ("GET", "HEAD"):
                await self._run(send, base, run_id, query, api=api)
                return
            if len(parts) == 3 and parts[2] in ("resume", "cancel"):
                if method != "POST":
                    raise HttpError(405, f"{parts[2]} needs POST")
                body = await _read_body(receive)
                _check_origin(scope, api=api)
                await self._act(send, base, run_id, parts[2], body, api=api)
                return
        raise HttpError(404, f"no page at {path}")

    # ------------------------------------------------------------------ pages
    async def _runs(self, send: Send, base: str, query: Mapping[str, str], *, api: bool) -> None:
        status = query.get("status", "").strip()
        blueprint = query.get("blueprint", "").strip()
        try:
            limit = max(1, min(1000, int(query.get("limit") or 100)))
        except ValueError:
            raise HttpError(400, "limit must be an integer") from None
        runs = await self.adapter.list_runs(
            limit=limit,
            status=status or None,
            blueprint_id=blueprint or None,
            max_scanned=self.max_scanned,
        )
        if api:
            await _json(send, 200, {"runs": [r.to_json() for r in runs]})
            return
        html = pages.runs_page(
            runs,
            base=base,
            where=self.where,
            status=status,
            blueprint=blueprint,
            limit=limit,
            blueprint_ids=self.adapter.blueprints,
            max_scanned=self.max_scanned,
        )
        await _html(send, 200, html)

    async def _run(
        self, send: Send, base: str, run_id: str, query: Mapping[str, str], *, api: bool
    ) -> None:
        run = await self.adapter.inspect_run(run_id)
        if api:
            await _json(send, 200, run.to_json())
            return
        bp = self.adapter.blueprints.get(run.summary.blueprint_id)
        html = pages.run_page(run, bp, base=base, where=self.where, message=query.get("msg", ""))
        await _html(send, 200, html)

    async def _act(
        self, send: Send, base: str, run_id: str, action: str, body: bytes, *, api: bool
    ) -> None:
        fields = _json_body(body) if api else _form_body(body)
        try:
            if action == "cancel":
                done = await self.adapter.cancel_run(run_id)
                outcome = "cancelled" if done else "already finished"
            else:
                outcome = await self.adapter.resume_with_action(
                    run_id,
                    _text(fields.get("action")),
                    _output(fields.get("output"), api=api),
                    node_id=_text(fields.get("node")),
                )
            ok = True
        except (RunNotAwaitingError, BlueprintError, ValueError) as exc:
            if isinstance(exc, HttpError):
                raise
            outcome, ok = str(exc), False
        if api:
            await _json(send, 200 if ok else 409, {"result" if ok else "error": outcome})
            return
        message = f"{action}: {outcome}"
        link = pages.run_link(base, run_id)
        await _send(send, 303, b"", [(b"location", pages.redirect_to(link, message).encode())])

    async def _send_static(self, send: Send, name: str) -> None:
        kind = _STATIC_TYPES.get(name)
        if kind is None:
            raise HttpError(404, f"no static file {name}")
        data = self._static.get(name)
        if data is None:
            data = resources.files(__package__).joinpath("static", name).read_bytes()
            self._static[name] = data
        headers = [(b"content-type", kind.encode()), (b"cache-control", b"max-age=300")]
        await _send(send, 200, data, headers)

    async def _error(self, scope: Scope, send: Send, base: str, status: int, text: str) -> None:
        if str(scope["path"]).removeprefix(base).startswith("/api/"):
            await _json(send, status, {"error": text})
            return
        title = {404: "Not found", 405: "Method not allowed", 503: "Unavailable"}.get(
            status, "Error"
        )
        await _html(send, status, pages.message_page(title, text, base=base, where=self.where))


# --------------------------------------------------------------------------- helpers


def _run_id(text: str) -> str:
    try:
        return validate_run_id(text)
    except ValueError as exc:
        raise HttpError(404, str(exc)) from None


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise HttpError(400, f"expected a string, not {type(value).__name__}")
    return value.strip() or None


def _output(value: Any, *, api: bool) -> Any:
    """A JSON body carries the output as a value; a form as JSON text (empty: null)."""
    if api:
        return value
    text = _text(value)
    if text is None:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise HttpError(400, f"output is not JSON: {exc}") from None


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise HttpError(400, "client went away")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            raise HttpError(413, "request body too large")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _form_body(body: bytes) -> dict[str, str]:
    return {k: v[-1] for k, v in parse_qs(body.decode(errors="replace")).items()}


def _json_body(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body or b"{}")
    except json.JSONDecodeError as exc:
        raise HttpError(400, f"body is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise HttpError(400, "body must be a JSON object")
    return data


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


def _check_origin(scope: Scope, *, api: bool) -> None:
    """Refuse writes a page on another origin could make (see the module docstring)."""
    if api:
        kind = (_header(scope, b"content-type") or "").split(";")[0].strip().lower()
        if kind != "application/json":
            raise HttpError(415, "API writes need Content-Type: application/json")
        return
    if (_header(scope, b"sec-fetch-site") or "same-origin") not in ("same-origin", "none"):
        raise HttpError(403, "cross-site request refused")
    origin = _header(scope, b"origin")
    if origin is not None and origin != "null":
        if urlsplit(origin).netloc != (_header(scope, b"host") or ""):
            raise HttpError(403, "cross-origin request refused")
    elif origin == "null":
        raise HttpError(403, "opaque-origin request refused")


async def _send(
    send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    all_headers = [
        (b"content-length", str(len(body)).encode()),
        *_SECURITY_HEADERS,
        *(headers or []),
    ]
    await send({"type": "http.response.start", "status": status, "headers": all_headers})
    await send({"type": "http.response.body", "body": body})


async def _html(send: Send, status: int, html: str) -> None:
    await _send(
        send,
        status,
        html.encode(),
        [(b"content-type", b"text/html; charset=utf-8"), (b"cache-control", b"no-store")],
    )


async def _json(send: Send, status: int, data: Any) -> None:
    body = pages.dumps(data).encode()
    await _send(
        send,
        status,
        body,
        [(b"content-type", b"application/json"), (b"cache-control", b"no-store")],
    )


def create_app(
    adapter: BullMQAdapter, *, where: str = "", max_scanned: int = 10_000
) -> InspectorApp:
    """The inspector over `adapter` (give it `blueprints` to draw graphs and resume)."""
    return InspectorApp(adapter, where=where, max_scanned=max_scanned)


__all__ = ["HttpError", "InspectorApp", "create_app"]
