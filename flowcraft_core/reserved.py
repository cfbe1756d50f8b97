"""Names the engine owns: built-in implementation keys and reserved context keys.

Defined in one place so the loader, registry, runtime and distributed adapter cannot drift.
"""

from __future__ import annotations

from typing import Final

BATCH_SCATTER: Final = "batch-scatter"
BATCH_GATHER: Final = "batch-gather"
LOOP_CONTROLLER: Final = "loop-controller"
SLEEP: Final = "sleep"
WAIT: Final = "wait"
SUBFLOW: Final = "subflow"
WEBHOOK: Final = "webhook"

BUILTIN_KEYS: Final[frozenset[str]] = frozenset(
    {BATCH_SCATTER, BATCH_GATHER, LOOP_CONTROLLER, SLEEP, WAIT, SUBFLOW, WEBHOOK}
)
#: Built-ins whose activation ends waiting (held open by something outside the run).
WAITING_KEYS: Final[frozenset[str]] = frozenset({WAIT, WEBHOOK})
#: Built-ins on which `maxRetries` > 1 and `timeout` make no sense.
NO_RETRY_KEYS: Final[frozenset[str]] = frozenset({WAIT, WEBHOOK, SLEEP, SUBFLOW})

OUTPUTS_PREFIX: Final = "_outputs."
INPUTS_PREFIX: Final = "_inputs."
EXECUTION_ID: Final = "_executionId"
AWAITING_NODE_IDS: Final = "_awaitingNodeIds"
AWAITING_DETAILS: Final = "_awaitingDetails"
RUN_STATE: Final = "_runState"
CATCH_ERROR: Final = "_catch_error"

#: Keys an initial context may not contain.
ENGINE_STATE_KEYS: Final[frozenset[str]] = frozenset(
    {EXECUTION_ID, AWAITING_NODE_IDS, AWAITING_DETAILS, RUN_STATE}
)


def output_key(node_id: str) -> str:
    return OUTPUTS_PREFIX + node_id


def input_key(node_id: str) -> str:
    return INPUTS_PREFIX + node_id


def is_reserved_key(key: str) -> bool:
    """True for keys node code may not write (engine-owned)."""
    return (
        key.startswith(OUTPUTS_PREFIX)
        or key.startswith(INPUTS_PREFIX)
        or key in ENGINE_STATE_KEYS
        or key == CATCH_ERROR
    )
