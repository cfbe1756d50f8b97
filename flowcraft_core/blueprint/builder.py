"""`Flow`: build a blueprint in Python instead of JSON (SPEC 1.6).

The builder only writes the JSON tree; `to_blueprint()` hands that tree to `load_blueprint`, so a
built flow and the same JSON give equal `Blueprint`s and pass the same validation. Node code
given as an object (a function or a `BaseNode` subclass) is registered under
`module.qualname`, which is the same in every process, and `uses` names that key.

Composite helpers expand into plain nodes and edges:

* `batch("b", worker, ...)` adds `b_scatter` and `b_gather` joined by one edge; edges written
  against `b` are rewired when the tree is produced (into `b` reaches the scatter, out of `b`
  leaves the gather), so edges keep their declaration order whenever they were added.
* `loop("L", ...)` adds a `loop-controller` with the edges `end -> L` and `L -> start
  [continue]`; every other edge leaving `L` without an action gets action `break`.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Final

from flowcraft_core import reserved
from flowcraft_core.expressions import Evaluator
from flowcraft_core.registry import NodeRegistry, default_key

from .loader import load_blueprint
from .model import Blueprint, BlueprintMetadata, NodeConfig

#: snake_case spelling -> JSON name, for `config=` and `metadata()`.
_CONFIG_NAMES: Final[Mapping[str, str]] = {
    name: field.alias for name, field in NodeConfig.model_fields.items() if field.alias
}
_METADATA_NAMES: Final[Mapping[str, str]] = {
    name: field.alias for name, field in BlueprintMetadata.model_fields.items() if field.alias
}


@dataclass(frozen=True, slots=True)
class _Batch:
    scatter_id: str
    gather_id: str


class Flow:
    """A fluent blueprint builder; every method but the final three returns `self`.

    >>> flow = Flow("greet").node("hello", say_hello).node("bye", "greetings.bye")
    >>> flow.edge("hello", "bye").to_blueprint()            # doctest: +SKIP
    """

    def __init__(self, id: str) -> None:
        self._id = id
        self._nodes: list[dict[str, Any]] = []
        self._edges: list[dict[str, Any]] = []
        self._metadata: dict[str, Any] = {}
        self._registry = NodeRegistry()
        self._ids: set[str] = set()
        self._batches: dict[str, _Batch] = {}
        self._loops: set[str] = set()

    @property
    def id(self) -> str:
        return self._id

    # ------------------------------------------------------------------ nodes
    def node(
        self,
        id: str,
        impl_or_key: Any,
        *,
        params: Mapping[str, Any] | None = None,
        inputs: str | Mapping[str, str] | None = None,
        config: Mapping[str, Any] | NodeConfig | None = None,
    ) -> Flow:
        """Add a node. `impl_or_key` is a `uses` key (str) or node code to register.

        `config` takes JSON names (`maxRetries`) or snake_case ones (`max_retries`); a callable
        `fallback` is registered like `impl_or_key` and replaced by its key.
        """
        self._add_node(id, self._uses(impl_or_key), params, inputs, config)
        return self

    def sleep(
        self,
        id: str,
        duration: float | str | timedelta,
        *,
        inputs: str | Mapping[str, str] | None = None,
    ) -> Flow:
        """Add a `sleep`: milliseconds, a string like `"10s"`, or a `timedelta`."""
        if isinstance(duration, timedelta):
            duration = duration.total_seconds() * 1000
        self._add_node(id, reserved.SLEEP, {"duration": duration}, inputs, None)
        return self

    def wait(self, id: str, *, inputs: str | Mapping[str, str] | None = None) -> Flow:
        """Add a `wait`: the run returns `awaiting` here until resumed."""
        self._add_node(id, reserved.WAIT, None, inputs, None)
        return self

    def webhook(self, id: str, *, inputs: str | Mapping[str, str] | None = None) -> Flow:
        """Add a `webhook`: a wait completed by an incoming request."""
        self._add_node(id, reserved.WEBHOOK, None, inputs, None)
        return self

    def subflow(
        self,
        id: str,
        blueprint_id: str,
        *,
        inputs: Mapping[str, str] | None = None,
        outputs: Mapping[str, str] | None = None,
        config: Mapping[str, Any] | NodeConfig | None = None,
    ) -> Flow:
        """Add a `subflow` running blueprint `blueprint_id` as a child run (SPEC 5.6)."""
        params: dict[str, Any] = {"blueprintId": blueprint_id}
        if inputs is not None:
            params["inputs"] = dict(inputs)
        if outputs is not None:
            params["outputs"] = dict(outputs)
        self._add_node(id, reserved.SUBFLOW, params, None, config)
        return self

    def batch(
        self,
        id: str,
        worker: Any,
        *,
        input_key: str,
        output_key: str | None = None,
        chunk_size: int | None = None,
        collect_errors: bool | None = None,
        worker_params: Mapping[str, Any] | None = None,
        worker_config: Mapping[str, Any] | None = None,
    ) -> Flow:
        """Run `worker` on every item of the list `input_key` names (SPEC 5.1).

        Adds `<id>_scatter` and `<id>_gather`; edges into or out of `id` are rewired to them.
        """
        scatter_id, gather_id = f"{id}_scatter", f"{id}_gather"
        self._claim(id)
        params: dict[str, Any] = {
            "workerUsesKey": self._uses(worker),
            "gatherNodeId": gather_id,
        }
        if output_key is not None:
            params["outputKey"] = output_key
        if chunk_size is not None:
            params["chunkSize"] = chunk_size
        if collect_errors is not None:
            params["collectErrors"] = collect_errors
        if worker_params is not None:
            params["workerParams"] = dict(worker_params)
        if worker_config is not None:
            params["workerConfig"] = _config_dict(worker_config)
        self._add_node(scatter_id, reserved.BATCH_SCATTER, params, input_key, None)
        self._add_node(gather_id, reserved.BATCH_GATHER, None, None, None)
        self._edges.append({"source": scatter_id, "target": gather_id})
        self._batches[id] = _Batch(scatter_id, gather_id)
        return self

    def loop(
        self,
        id: str,
        *,
        start_node_id: str,
        end_node_id: str,
        condition: str,
        max_iterations: int | None = None,
    ) -> Flow:
        """Add a `loop-controller` repeating `start .. end` while `condition` is truthy."""
        params: dict[str, Any] = {"condition": condition}
        if max_iterations is not None:
            params["maxIterations"] = max_iterations
        self._add_node(id, reserved.LOOP_CONTROLLER, params, None, None)
        self._loops.add(id)
        self._edges.append({"source": end_node_id, "target": id})
        self._edges.append({"source": id, "target": start_node_id, "action": "continue"})
        return self

    # ------------------------------------------------------------------ edges, metadata
    def edge(
        self,
        source: str,
        target: str,
        *,
        action: str | None = None,
        condition: str | None = None,
        transform: str | None = None,
    ) -> Flow:
        """Add an edge; `condition` and `transform` are expressions (SPEC 6)."""
        edge: dict[str, Any] = {"source": source, "target": target}
        if action is not None:
            edge["action"] = action
        if condition is not None:
            edge["condition"] = condition
        if transform is not None:
            edge["transform"] = transform
        self._edges.append(edge)
        return self

    def metadata(self, **values: Any) -> Flow:
        """Merge metadata: `version`, `cycle_entry_points` (`cycleEntryPoints`), any other key."""
        for key, value in values.items():
            name = _METADATA_NAMES.get(key, key)
            self._metadata[name] = list(value) if name == "cycleEntryPoints" else value
        return self

    # ------------------------------------------------------------------ results
    def to_dict(self) -> dict[str, Any]:
        """The blueprint's JSON tree (a fresh copy on every call)."""
        data: dict[str, Any] = {
            "id": self._id,
            "nodes": copy.deepcopy(self._nodes),
            "edges": [self._finish_edge(edge) for edge in self._edges],
        }
        if self._metadata:
            data["metadata"] = copy.deepcopy(self._metadata)
        return data

    def to_blueprint(self, *, evaluator: Evaluator | None = None) -> Blueprint:
        """The validated blueprint, exactly as `load_blueprint(self.to_dict())` returns it."""
        return load_blueprint(self.to_dict(), evaluator=evaluator)

    def registry(self) -> NodeRegistry:
        """A new `NodeRegistry` holding the node code given to this flow."""
        return NodeRegistry(self._registry)

    # ------------------------------------------------------------------ internals
    def _uses(self, impl_or_key: Any) -> str:
        if isinstance(impl_or_key, str):
            return impl_or_key
        key = default_key(impl_or_key)
        if self._registry.get(key) is not impl_or_key:
            self._registry.register(key, impl_or_key)
        return key

    def _claim(self, id: str) -> None:
        if not isinstance(id, str):
            raise TypeError(f"node ids are strings, got {type(id).__name__}")
        if id in self._ids:
            raise ValueError(f"flow {self._id!r}: id {id!r} is already used")
        self._ids.add(id)

    def _add_node(
        self,
        id: str,
        uses: str,
        params: Mapping[str, Any] | None,
        inputs: str | Mapping[str, str] | None,
        config: Mapping[str, Any] | NodeConfig | None,
    ) -> None:
        self._claim(id)
        node: dict[str, Any] = {"id": id, "uses": uses}
        if params is not None:
            node["params"] = copy.deepcopy(dict(params))
        if inputs is not None:
            node["inputs"] = inputs if isinstance(inputs, str) else dict(inputs)
        if config is not None:
            conf = self._config(config)
            if conf:
                node["config"] = conf
        self._nodes.append(node)

    def _config(self, config: Mapping[str, Any] | NodeConfig) -> dict[str, Any]:
        conf = _config_dict(config)
        fallback = conf.get("fallback")
        if fallback is not None and not isinstance(fallback, str):
            conf["fallback"] = self._uses(fallback)
        return conf

    def _finish_edge(self, edge: dict[str, Any]) -> dict[str, Any]:
        out = dict(edge)
        source_batch = self._batches.get(out["source"])
        if source_batch is not None:
            out["source"] = source_batch.gather_id
        target_batch = self._batches.get(out["target"])
        if target_batch is not None:
            out["target"] = target_batch.scatter_id
        if out["source"] in self._loops and "action" not in out:
            # Keep `action` right after source/target, where edge() puts it.
            out = {"source": out["source"], "target": out["target"], "action": "break"} | out
        return out


def _config_dict(config: Mapping[str, Any] | NodeConfig) -> dict[str, Any]:
    """Config with JSON names; snake_case keys are renamed, unknown keys kept for the loader."""
    if isinstance(config, NodeConfig):
        return config.model_dump(mode="json", by_alias=True, exclude_defaults=True)
    return {_CONFIG_NAMES.get(key, key): value for key, value in config.items()}


__all__ = ["Flow"]
