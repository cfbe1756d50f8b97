"""The node contract: NodeContext handed to node code, and the BaseNode class lifecycle."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .cancellation import CancellationToken
from .context import AsyncContextView


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeContext:
    """Everything an attempt may use; built fresh for every attempt."""

    context: AsyncContextView
    input: Any
    params: Mapping[str, Any]
    dependencies: Mapping[str, Any]
    run_id: str
    blueprint_id: str
    node_id: str
    iteration: tuple[int, ...]
    attempt: int
    activation_id: str
    signal: CancellationToken


class BaseNode:
    """Class nodes: `prep -> exec -> post`, with `fallback` and `recover`.

    One instance per activation (retries share it). Only `exec` is retried and timed. Methods
    may be async or plain; plain ones run in a worker thread.
    """

    #: Actions this node can return, if known (the linter uses it).
    actions: tuple[str, ...] | None = None

    def __init__(self, params: Mapping[str, Any], node_id: str) -> None:
        self.params = params
        self.node_id = node_id

    async def prep(self, ctx: NodeContext) -> Any:
        return ctx.input

    async def exec(self, prep_result: Any, ctx: NodeContext) -> Any:
        raise NotImplementedError(f"{type(self).__name__}.exec is not implemented")

    async def fallback(self, error: BaseException, ctx: NodeContext) -> Any:
        raise error

    async def post(self, exec_result: Any, ctx: NodeContext) -> Any:
        return exec_result

    async def recover(self, error: BaseException, ctx: NodeContext) -> None:
        return None


__all__ = ["BaseNode", "NodeContext"]
