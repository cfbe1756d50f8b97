"""Health checks of a worker, and the tiny HTTP server that answers them and serves metrics.

* `GET /healthz` (liveness): 200 once the worker consumes and Redis answers a PING, 503
  before that and while Redis is lost (the process cannot do its job; k8s may restart it).
* `GET /readyz` (readiness): 200 while consuming and Redis answers, 503 before, while Redis
  is lost and once a shutdown began (draining in-flight nodes).
* `GET /metrics`: Prometheus text format (`metrics.py`), on the metrics port.

The server is plain asyncio (HTTP/1.0, one request per connection, GET and HEAD only): the
worker needs no web framework, and a probe costs one PING, never anything per job.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

logger = logging.getLogger("flowcraft_bullmq.health")

#: A PING slower than this counts as Redis lost.
PING_TIMEOUT_S: Final = 1.0
_REASONS: Final = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 503: "Unavailable"}
_MAX_REQUEST: Final = 8192


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: bytes
    content_type: str = "application/json"


Route = Callable[[], Awaitable[Response]]


class WorkerHealth:
    """What the probes report: the worker's phase, and whether Redis answers now."""

    def __init__(
        self, ping: Callable[[], Awaitable[Any]], *, ping_timeout_s: float = PING_TIMEOUT_S
    ) -> None:
        self._ping = ping
        self.ping_timeout_s = ping_timeout_s
        #: "starting" -> "consuming" -> "draining" -> "stopped"
        self.phase = "starting"

    async def redis_ok(self) -> tuple[bool, str]:
        try:
            await asyncio.wait_for(self._ping(), self.ping_timeout_s)
        except Exception as exc:
            return False, f"{type(exc).__name__}: {exc}".strip()
        return True, "ok"

    async def healthz(self) -> Response:
        return await self._check(alive_phases=("consuming", "draining"))

    async def readyz(self) -> Response:
        return await self._check(alive_phases=("consuming",))

    async def _check(self, *, alive_phases: tuple[str, ...]) -> Response:
        ok, redis_text = await self.redis_ok()
        healthy = ok and self.phase in alive_phases
        body = {"status": "ok" if healthy else "unavailable", "phase": self.phase}
        body["redis"] = redis_text
        return Response(200 if healthy else 503, json.dumps(body).encode() + b"\n")


async def serve_http(host: str, port: int, routes: Mapping[str, Route]) -> asyncio.Server:
    """Start answering GET (and HEAD) for `routes` on host:port; close the server to stop."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            method, _, rest = head.decode("latin-1").partition(" ")
            path = rest.split(" ", 1)[0].split("?", 1)[0]
            route = routes.get(path)
            if method not in ("GET", "HEAD"):
                response = Response(405, b"", "text/plain")
            elif route is None:
                response = Response(404, b"not found\n", "text/plain")
            else:
                response = await route()
            reason = _REASONS.get(response.status, "")
            header = (
                f"HTTP/1.0 {response.status} {reason}\r\n"
                f"Content-Type: {response.content_type}\r\n"
                f"Content-Length: {len(response.body)}\r\nConnection: close\r\n\r\n"
            )
            writer.write(header.encode("latin-1"))
            if method != "HEAD":
                writer.write(response.body)
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        except ConnectionError:
            pass
        except Exception:
            logger.exception("the HTTP endpoint failed on a request")
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    return await asyncio.start_server(handle, host, port, limit=_MAX_REQUEST)


__all__ = ["PING_TIMEOUT_S", "Response", "Route", "WorkerHealth", "serve_http"]
