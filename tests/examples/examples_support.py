"""Helpers for the example tests: load an example and run it in-process."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from flowcraft_core import Blueprint, FlowRuntime, InMemoryEventBus, NodeRegistry, load_blueprint

EXAMPLES = Path(__file__).resolve().parents[2] / "blueprints"


def example_registry(name: str) -> NodeRegistry:
    registry: NodeRegistry = importlib.import_module(f"blueprints.{name}.nodes").registry
    return registry


def example_blueprint(name: str, file: str) -> Blueprint:
    return load_blueprint(EXAMPLES / name / file)


def example_runtime(
    name: str, *, blueprints: list[Blueprint] | None = None, **kwargs: Any
) -> tuple[FlowRuntime, InMemoryEventBus]:
    bus = InMemoryEventBus()
    runtime = FlowRuntime(
        registry=example_registry(name), blueprints=blueprints, event_bus=bus, **kwargs
    )
    return runtime, bus


def node_ids(bus: InMemoryEventBus, event_type: str) -> list[str]:
    return [e.node_id for e in bus.of_type(event_type)]
