"""Built-in nodes, registered under reserved names (SPEC 5).

Each is an async function `(engine, node, spec) -> Outcome`: built-ins see the engine, unlike
user nodes, because they shape the run itself (waiting, batching, child runs).
"""

from __future__ import annotations

from typing import Any

from .. import reserved
from .batch import gather_node, scatter_node
from .loop import loop_controller
from .sleep import sleep_node
from .subflow import subflow_node
from .wait import wait_node, webhook_node

BUILTINS: dict[str, Any] = {
    reserved.LOOP_CONTROLLER: loop_controller,
    reserved.WAIT: wait_node,
    reserved.WEBHOOK: webhook_node,
    reserved.SLEEP: sleep_node,
    reserved.SUBFLOW: subflow_node,
    reserved.BATCH_SCATTER: scatter_node,
    reserved.BATCH_GATHER: gather_node,
}

__all__ = ["BUILTINS"]
