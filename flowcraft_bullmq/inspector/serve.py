"""Serving the inspector with uvicorn (`flowcraft inspect`).

The listening socket is bound here first, so a port in use is one clear error (uvicorn would
exit the process), and ``--port 0`` picks a free port that the ready line reports.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING

from .app import create_app

if TYPE_CHECKING:
    from ..adapter import BullMQAdapter


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on (host, port); OSError if it cannot be had."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://{f'[{host}]' if ':' in host else host}:{port}/"


async def serve(adapter: BullMQAdapter, sock: socket.socket, *, where: str = "") -> None:
    """Serve until SIGINT or SIGTERM, then return (the adapter stays the caller's to close)."""
    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn re-raises a signal it handled once it has shut down, which would kill the
        process before the caller closes the adapter: the signal only stops serving here."""

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            loop = asyncio.get_running_loop()
            installed = []
            for signum in (signal.SIGINT, signal.SIGTERM):
                try:
                    loop.add_signal_handler(signum, self.handle_exit, signum, None)
                    installed.append(signum)
                except (NotImplementedError, RuntimeError, ValueError):  # not the main thread
                    pass
            try:
                yield
            finally:
                for signum in installed:
                    loop.remove_signal_handler(signum)

    app = create_app(adapter, where=where)
    config = uvicorn.Config(app, lifespan="off", log_level="warning", access_log=False)
    server = Server(config)
    task = asyncio.ensure_future(server.serve(sockets=[sock]))
    while not server.started and not task.done():  # noqa: ASYNC110 - uvicorn sets a flag
        await asyncio.sleep(0.02)
    if server.started:
        print(f"flowcraft inspect: serving {url_of(sock)} ({where})", file=sys.stderr, flush=True)
    await task
    print("flowcraft inspect: stopped", file=sys.stderr, flush=True)


__all__ = ["bind", "serve", "url_of"]
