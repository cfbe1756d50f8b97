"""The public surface: every package re-exports its API with an `__all__` that resolves."""

from __future__ import annotations

import importlib

import pytest

import flowcraft_core

PACKAGES = [
    "flowcraft_core",
    "flowcraft_core.blueprint",
    "flowcraft_core.expressions",
    "flowcraft_core.analysis",
    "flowcraft_core.runtime",
]

SPEC_NAMES = {
    "load_blueprint",
    "Flow",
    "analyze_blueprint",
    "lint_blueprint",
    "to_mermaid",
    "to_dot",
    "Blueprint",
    "NodeRegistry",
    "NodeContext",
    "NodeResult",
    "BaseNode",
    "FlowRuntime",
    "WorkflowResult",
    "ErrorRecord",
    "CancellationToken",
    "InMemoryEventBus",
    "FlowcraftError",
    "BlueprintError",
    "RegistryError",
    "ReservedKeyError",
    "SerializationError",
    "ExpressionError",
    "ExpressionSyntaxError",
    "NodeTimeoutError",
    "NonRetryableError",
    "FatalNodeError",
    "InvalidNodeResultError",
    "LoopLimitError",
    "SubflowError",
    "BlueprintVersionError",
    "WorkerLostError",
    "NodeCancelledError",
    "RunNotAwaitingError",
    "RunNotFoundError",
}


@pytest.mark.parametrize("name", PACKAGES)
def test_all_names_resolve(name: str) -> None:
    module = importlib.import_module(name)
    exported = module.__all__
    assert len(exported) == len(set(exported)), "duplicate names in __all__"
    for attr in exported:
        assert hasattr(module, attr), f"{name}.__all__ lists missing {attr!r}"


def test_spec_names_exported() -> None:
    missing = SPEC_NAMES - set(flowcraft_core.__all__)
    assert not missing, f"flowcraft_core does not export {sorted(missing)}"


def test_error_tree_roots_at_flowcraft_error() -> None:
    for name in SPEC_NAMES:
        obj = getattr(flowcraft_core, name)
        if isinstance(obj, type) and name.endswith("Error"):
            assert issubclass(obj, flowcraft_core.FlowcraftError), name
    assert issubclass(flowcraft_core.FatalNodeError, flowcraft_core.NonRetryableError)
    assert issubclass(flowcraft_core.ExpressionSyntaxError, flowcraft_core.ExpressionError)


def test_status_compares_equal_to_string() -> None:
    assert flowcraft_core.RunStatus.COMPLETED == "completed"
    assert flowcraft_core.RunStatus("failed") is flowcraft_core.RunStatus.FAILED
