"""`RedisContext`: the `ContextStore` port (flowcraft_core.context) over one run's context hash
(`P:{R}:ctx`, one field per key, JSON text)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from flowcraft_core.context import DELETED

if TYPE_CHECKING:
    from .store import RedisCoordinationStore


class RedisContext:
    """The `ContextStore` port (flowcraft_core.context) over one run's context hash: reads are
    one round trip, a commit is one atomic script."""

    __slots__ = ("run_id", "store")

    def __init__(self, store: RedisCoordinationStore, run_id: str) -> None:
        self.store = store
        self.run_id = run_id

    async def get(self, key: str) -> Any:
        """The value, or `MISSING`."""
        return await self.store.get(self.run_id, key)

    async def snapshot(self) -> dict[str, Any]:
        return await self.store.snapshot(self.run_id)

    async def commit(self, ops: Iterable[tuple[str, Any]]) -> None:
        """Apply (key, value | DELETED) pairs in order, as one unit."""
        await self.store.commit(
            self.run_id, [(k, None, True) if v is DELETED else (k, v, False) for k, v in ops]
        )


__all__ = ["RedisContext"]
