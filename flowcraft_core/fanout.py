"""`FanOutBus`: one event bus that hands every event to several (observers next to a user's bus).

Each bus is called as the runtime calls one (`make_emitter`): sync or async `emit`, and a bus
that raises is logged and skipped, so one observer cannot starve the others.
"""

from __future__ import annotations

from typing import Any

from .events import Emitter, FlowEvent, make_emitter


class FanOutBus:
    """Emits each event to every bus given (None entries are dropped), in order."""

    def __init__(self, *buses: Any) -> None:
        self.buses = tuple(bus for bus in buses if bus is not None)
        self._emitters: tuple[Emitter, ...] = tuple(
            emitter for emitter in map(make_emitter, self.buses) if emitter is not None
        )

    async def emit(self, event: FlowEvent) -> None:
        for emitter in self._emitters:
            await emitter(event)


__all__ = ["FanOutBus"]
