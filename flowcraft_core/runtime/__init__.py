"""The in-process runtime: plan compilation, the engine, the executor and FlowRuntime."""

from .runtime import FlowRuntime

__all__ = ["FlowRuntime"]
