"""A cancellation token shared by the engine, node code and worker threads."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable


class CancellationToken:
    """Set once; readable from any thread; awaitable from the event loop.

    `reason` is `"cancelled"` or `"timeout"` for tokens the engine sets; a user may pass any
    reason. Child tokens (per attempt) are cancelled with their parent.
    """

    __slots__ = ("_callbacks", "_cancelled", "_lock", "_waiters", "reason")

    def __init__(self) -> None:
        self._cancelled = False
        self.reason: str | None = None
        self._callbacks: list[Callable[[CancellationToken], None]] = []
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self._lock = threading.Lock()

    @property
    def cancelled(self) -> bool:
        return self._cancelled

    def cancel(self, reason: str | None = None) -> None:
        """Request cancellation; later calls do nothing."""
        with self._lock:
            if self._cancelled:
                return
            self._cancelled = True
            self.reason = reason if reason is not None else "cancelled"
            callbacks, self._callbacks = self._callbacks, []
            waiters, self._waiters = self._waiters, []
        for loop, fut in waiters:
            loop.call_soon_threadsafe(_resolve, fut)
        for callback in callbacks:
            callback(self)

    def add_callback(self, callback: Callable[[CancellationToken], None]) -> None:
        """Call `callback(token)` on cancellation (at once if already cancelled)."""
        with self._lock:
            if not self._cancelled:
                self._callbacks.append(callback)
                return
        callback(self)

    def remove_callback(self, callback: Callable[[CancellationToken], None]) -> None:
        with self._lock:
            try:
                self._callbacks.remove(callback)
            except ValueError:
                pass

    def child(self) -> CancellationToken:
        """A token cancelled (with the same reason) when this one is."""
        child = CancellationToken()
        self.add_callback(lambda parent: child.cancel(parent.reason))
        return child

    async def wait(self) -> None:
        """Return once cancelled."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        with self._lock:
            if self._cancelled:
                return
            self._waiters.append((loop, fut))
        await fut

    def __repr__(self) -> str:
        state = f"cancelled ({self.reason})" if self._cancelled else "active"
        return f"<CancellationToken {state}>"


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


__all__ = ["CancellationToken"]
