"""The blueprint data model: frozen pydantic models whose aliases are the JSON names.

The JSON shape is the TypeScript Flowcraft one, so a blueprint written there loads here. Fields
whose name starts with `_` are dropped before validation (editor tooling puts
`_sourceLocation` and the like there); unknown fields are errors unless the validation context
says `allow_unknown`.
"""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    StringConstraints,
    ValidationInfo,
    field_serializer,
    model_validator,
)

NodeId = Annotated[
    str, StringConstraints(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f-\x9f]+$")
]
Key = Annotated[str, StringConstraints(min_length=1, max_length=10_000)]
#: A BullMQ queue name: no ':' (BullMQ builds its keys with it) and no control characters.
QueueName = Annotated[
    str, StringConstraints(min_length=1, max_length=200, pattern=r"^[^:\x00-\x1f\x7f-\x9f]+$")
]


class _FrozenModel(BaseModel):
    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        populate_by_name=True,
        strict=True,
        serialize_by_alias=True,
    )

    @model_validator(mode="before")
    @classmethod
    def _drop_private_and_unknown(cls, data: Any, info: ValidationInfo) -> Any:
        if not isinstance(data, dict):
            return data
        allow_unknown = bool(info.context and info.context.get("allow_unknown"))
        if not allow_unknown and not any(
            isinstance(key, str) and key.startswith("_") for key in data
        ):
            return data
        known: set[str] | None = None
        if allow_unknown and cls.model_config.get("extra") == "forbid":
            known = set()
            for name, field in cls.model_fields.items():
                known.add(name)
                if field.alias:
                    known.add(field.alias)
        out = {}
        for key, value in data.items():
            if isinstance(key, str) and key.startswith("_"):
                continue
            if known is not None and key not in known:
                continue
            out[key] = value
        return out


class NodeConfig(_FrozenModel):
    """Per-node resilience and join settings; durations in milliseconds as in the JSON."""

    max_retries: int = Field(1, alias="maxRetries", ge=1, description="Total attempts (>= 1).")
    retry_delay: float = Field(
        0, alias="retryDelay", ge=0, description="Delay before each retry, ms."
    )
    backoff: Literal["fixed", "exponential"] = Field("fixed", description="Retry delay growth.")
    timeout: float | None = Field(None, gt=0, description="Per-attempt time limit, ms.")
    fallback: Key | None = Field(
        None, description="A node id of this blueprint, or else an implementation key."
    )
    join_strategy: Literal["all", "any"] = Field(
        "all",
        alias="joinStrategy",
        description="Wait for every incoming edge, or fire on the first.",
    )
    event: Key | None = Field(
        None,
        description="`wait` nodes only: the named event this node waits for (the same as the "
        "wait's params.event; docs/events.md).",
    )
    compensate: Key | None = Field(
        None,
        description="Implementation key that undoes this node's work if the run fails after "
        "the node completed (saga rollback); it receives the node's output.",
    )
    queue: QueueName | None = Field(
        None,
        description="Distributed runs only: the queue this node's jobs go to, so its own "
        "worker pool runs it (`flowcraft worker --queue NAME`); in-process it has no effect.",
    )


_DEFAULT_CONFIG: Final = NodeConfig()


def default_config() -> NodeConfig:
    """The one `NodeConfig()` that nodes without a config share: it is frozen, and one per
    node cost about 0.6 KB (a million-node blueprint held 0.6 GB of identical configs).
    A factory rather than a default, so the JSON schema stays as it was (no `default`)."""
    return _DEFAULT_CONFIG


class NodeDefinition(_FrozenModel):
    """One step of a blueprint."""

    id: NodeId
    uses: Key = Field(description="Implementation key: a registry name or a built-in.")
    params: dict[str, Any] = Field(default_factory=dict, description="Static parameters.")
    inputs: Key | dict[str, Key] | None = Field(
        None, description="How the node's input is computed: a reference or name -> reference."
    )
    config: NodeConfig = Field(default_factory=default_config)


class EdgeDefinition(_FrozenModel):
    """Routing and data flow between two nodes."""

    source: NodeId
    target: NodeId
    action: Key | None = Field(None, description="Taken only when the source returns this action.")
    condition: Key | None = Field(None, description="Expression; taken only when truthy.")
    transform: Key | None = Field(None, description="Expression computing the delivered value.")


class BlueprintMetadata(BaseModel):
    """Free-form metadata; `version` and `cycleEntryPoints` are interpreted."""

    model_config = ConfigDict(
        frozen=True, extra="allow", populate_by_name=True, strict=True, serialize_by_alias=True
    )

    version: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None
    cycle_entry_points: tuple[NodeId, ...] = Field((), alias="cycleEntryPoints", strict=False)

    @field_serializer("cycle_entry_points")
    def _ser_entries(self, value: tuple[str, ...]) -> list[str]:
        return list(value)


class Blueprint(_FrozenModel):
    """A validated, immutable workflow definition. Build one with `load_blueprint` or `Flow`."""

    id: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    nodes: tuple[NodeDefinition, ...] = Field(strict=False)
    edges: tuple[EdgeDefinition, ...] = Field((), strict=False)
    metadata: BlueprintMetadata = Field(default_factory=BlueprintMetadata)

    # Derived, cached state (compiled expressions, execution plan); never part of the data.
    _cache: dict[str, Any] = PrivateAttr(default_factory=dict)

    @field_serializer("nodes", "edges")
    def _ser_seq(self, value: tuple[BaseModel, ...]) -> list[Any]:
        return list(value)

    def node(self, node_id: str) -> NodeDefinition:
        """The node with this id (KeyError if absent)."""
        index: dict[str, NodeDefinition] | None = self._cache.get("node_index")
        if index is None:
            index = {n.id: n for n in self.nodes}
            self._cache["node_index"] = index
        return index[node_id]

    def __eq__(self, other: object) -> bool:
        # Compare the data only: `_cache` holds derived state (plans, compiled expressions).
        if not isinstance(other, Blueprint):
            return NotImplemented
        return (self.id, self.nodes, self.edges, self.metadata) == (
            other.id,
            other.nodes,
            other.edges,
            other.metadata,
        )

    __hash__ = None  # type: ignore[assignment]

    @property
    def version(self) -> str | None:
        return self.metadata.version

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (aliases, defaults left out)."""
        return self.model_dump(mode="json", by_alias=True, exclude_defaults=True)


__all__ = ["Blueprint", "BlueprintMetadata", "EdgeDefinition", "NodeConfig", "NodeDefinition"]
