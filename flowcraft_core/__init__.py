"""flowcraft_core: declarative DAG blueprints and their in-process asyncio runtime.

Layers point one way: blueprint model -> analysis -> runtime. Nothing here imports Redis or
BullMQ; the distributed adapter lives in `flowcraft_bullmq`.
"""

import logging

from .analysis import (
    BlueprintAnalysis,
    LintIssue,
    LintReport,
    analyze_blueprint,
    lint_blueprint,
    to_dot,
    to_mermaid,
)
from .blueprint import Blueprint, Flow, load_blueprint
from .cancellation import CancellationToken
from .errors import (
    BlueprintError,
    BlueprintVersionError,
    ExpressionError,
    ExpressionSyntaxError,
    FatalNodeError,
    FlowcraftError,
    InvalidNodeResultError,
    LoopLimitError,
    NodeCancelledError,
    NodeTimeoutError,
    NonRetryableError,
    Problem,
    RegistryError,
    ReservedKeyError,
    RunNotAwaitingError,
    RunNotFoundError,
    SerializationError,
    SubflowError,
    WorkerLostError,
)
from .events import FlowEvent, InMemoryEventBus
from .fanout import FanOutBus
from .logs import JsonFormatter, NodeLogContext, RunContextFilter
from .node import BaseNode, NodeContext
from .registry import NodeRegistry
from .results import ErrorRecord, NodeResult, RunStatus, WorkflowResult
from .runtime import FlowRuntime
from .serializer import JsonSerializer
from .tracing import Tracing
from .typed import NodeTypes, NodeValidationError, typed

# Libraries add no handlers (SPEC 7.4); this keeps Python's last-resort handler quiet.
logging.getLogger("flowcraft_core").addHandler(logging.NullHandler())

__all__ = [
    "BaseNode",
    "Blueprint",
    "BlueprintAnalysis",
    "BlueprintError",
    "BlueprintVersionError",
    "CancellationToken",
    "ErrorRecord",
    "ExpressionError",
    "ExpressionSyntaxError",
    "FanOutBus",
    "FatalNodeError",
    "Flow",
    "FlowEvent",
    "FlowRuntime",
    "FlowcraftError",
    "InMemoryEventBus",
    "InvalidNodeResultError",
    "JsonFormatter",
    "JsonSerializer",
    "LintIssue",
    "LintReport",
    "LoopLimitError",
    "NodeCancelledError",
    "NodeContext",
    "NodeLogContext",
    "NodeRegistry",
    "NodeResult",
    "NodeTimeoutError",
    "NodeTypes",
    "NodeValidationError",
    "NonRetryableError",
    "Problem",
    "RegistryError",
    "ReservedKeyError",
    "RunContextFilter",
    "RunNotAwaitingError",
    "RunNotFoundError",
    "RunStatus",
    "SerializationError",
    "SubflowError",
    "Tracing",
    "WorkerLostError",
    "WorkflowResult",
    "analyze_blueprint",
    "lint_blueprint",
    "load_blueprint",
    "to_dot",
    "to_mermaid",
    "typed",
]
