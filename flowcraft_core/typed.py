"""Typed nodes: pydantic models for a node implementation's params, input and output.

A typed implementation is an ordinary registry entry (a wrapped function or a subclass of the
class node), so the in-process engine and the distributed worker run it the same way without
knowing about types. Params are checked once, when a blueprint meets the registry (load with
`registry=`, lint, `FlowRuntime` planning); input and output on every activation, because they
are data from other nodes.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final, TypeVar

from pydantic import BaseModel, ValidationError

from .errors import NonRetryableError, Problem
from .node import BaseNode, NodeContext
from .reserved import BATCH_SCATTER
from .results import NodeResult

if TYPE_CHECKING:
    from .blueprint.model import NodeDefinition

T = TypeVar("T")

#: Attribute holding the NodeTypes of a typed implementation.
TYPES_ATTR: Final = "__flowcraft_types__"
INVALID_PARAMS: Final = "INVALID_PARAMS"


@dataclass(frozen=True, slots=True)
class NodeTypes:
    """The declared models; any of them may be None (that part is not checked)."""

    params: type[BaseModel] | None = None
    input: type[BaseModel] | None = None
    output: type[BaseModel] | None = None

    def __post_init__(self) -> None:
        for part in ("params", "input", "output"):
            model = getattr(self, part)
            if model is not None and not (inspect.isclass(model) and issubclass(model, BaseModel)):
                raise TypeError(f"typed node {part}= must be a pydantic BaseModel subclass")

    @property
    def empty(self) -> bool:
        return self.params is None and self.input is None and self.output is None


class NodeValidationError(NonRetryableError):
    """A typed node's params, input or output does not match its model.

    Not retryable (the same data fails again); a fallback still applies.
    """

    def __init__(self, node_id: str, part: str, problems: list[tuple[str, str]]) -> None:
        self.node_id = node_id
        self.part = part
        self.problems = problems
        detail = "; ".join(f"{where}: {message}" for where, message in problems)
        super().__init__(f"node {node_id!r}: invalid {part}: {detail}")


def types_of(impl: object) -> NodeTypes | None:
    """The NodeTypes an implementation was declared with, if any."""
    found = getattr(impl, TYPES_ATTR, None)
    return found if isinstance(found, NodeTypes) else None


def _location(loc: Iterable[int | str], root: str) -> str:
    path = root
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


def _problems(exc: ValidationError, root: str) -> list[tuple[str, str]]:
    return [(_location(e["loc"], root), e["msg"]) for e in exc.errors(include_url=False)]


def _validated(model: type[BaseModel], value: Any, node_id: str, part: str) -> BaseModel:
    if isinstance(value, model):
        return value
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        raise NodeValidationError(node_id, part, _problems(exc, part)) from None


def _checked_result(output_model: type[BaseModel] | None, value: Any, node_id: str) -> Any:
    """Validate the node's output and hand back JSON data (a model becomes its dump)."""
    if output_model is None:
        return value
    if isinstance(value, BaseModel) or not isinstance(value, NodeResult | Mapping):
        model = _validated(output_model, value, node_id, "output")
        return NodeResult(output=model.model_dump(mode="json", by_alias=True))
    if isinstance(value, NodeResult):
        output, action = value.output, value.action
    else:
        extra = set(value) - {"output", "action"}
        if extra:  # normalize_result reports it, with the engine's wording
            return value
        output, action = value.get("output"), value.get("action")
    model = _validated(output_model, output, node_id, "output")
    return NodeResult(output=model.model_dump(mode="json", by_alias=True), action=action)


def _typed_context(types: NodeTypes, ctx: NodeContext) -> NodeContext:
    changes: dict[str, Any] = {}
    if types.input is not None:
        changes["input"] = _validated(types.input, ctx.input, ctx.node_id, "input")
    if types.params is not None:
        params = _validated(types.params, dict(ctx.params), ctx.node_id, "params")
        changes["params"] = MappingProxyType(params.model_dump(mode="json", by_alias=True))
    return dataclasses.replace(ctx, **changes) if changes else ctx


def _wrap_function(fn: Callable[..., Any], types: NodeTypes) -> Callable[..., Any]:
    # The executor runs plain callables in a thread: keep a plain function plain.
    if inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004 - async callable objects
    ):

        @functools.wraps(fn)
        async def run_async(ctx: NodeContext) -> Any:
            value = await fn(_typed_context(types, ctx))
            return _checked_result(types.output, value, ctx.node_id)

        return run_async

    @functools.wraps(fn)
    def run(ctx: NodeContext) -> Any:
        value = fn(_typed_context(types, ctx))
        if inspect.isawaitable(value):
            raise TypeError(f"typed node {ctx.node_id!r}: a plain function returned an awaitable")
        return _checked_result(types.output, value, ctx.node_id)

    return run


async def _call(method: Callable[..., Any], *args: Any) -> Any:
    value = method(*args)
    return await value if inspect.isawaitable(value) else value


def _wrap_class(cls: type[BaseNode], types: NodeTypes) -> type[BaseNode]:
    """A subclass whose prep sees validated input and whose post's result is checked."""

    async def prep(self: BaseNode, ctx: NodeContext) -> Any:
        return await _call(cls.prep, self, _typed_context(types, ctx))

    async def post(self: BaseNode, exec_result: Any, ctx: NodeContext) -> Any:
        value = await _call(cls.post, self, exec_result, ctx)
        return _checked_result(types.output, value, ctx.node_id)

    return type(
        cls.__name__,
        (cls,),
        {
            "prep": prep,
            "post": post,
            "__module__": cls.__module__,
            "__qualname__": cls.__qualname__,
            "__doc__": cls.__doc__,
        },
    )


def typed(
    impl: Any = None,
    *,
    params: type[BaseModel] | None = None,
    input: type[BaseModel] | None = None,
    output: type[BaseModel] | None = None,
) -> Any:
    """Declare models for a node implementation (function or BaseNode subclass).

    `typed(fn, input=Order)` returns the validating implementation; without `impl` it is a
    decorator. Inside, `ctx.input` is the validated model instance and `ctx.params` the
    validated params (defaults filled in); the output may be a model instance, or a mapping or
    NodeResult whose `output` matches the output model, and reaches the context as JSON data.
    """
    types = NodeTypes(params=params, input=input, output=output)

    def decorate(target: T) -> T:
        if types.empty:
            return target
        if inspect.isclass(target):
            if not issubclass(target, BaseNode):
                raise TypeError(f"typed(): {target.__name__} is not a BaseNode subclass")
            wrapped: Any = _wrap_class(target, types)
        elif callable(target):
            wrapped = _wrap_function(target, types)
        else:
            raise TypeError(f"typed() takes a function or a BaseNode subclass, got {target!r}")
        setattr(wrapped, TYPES_ATTR, types)
        return wrapped  # type: ignore[no-any-return]

    return decorate if impl is None else decorate(impl)


def param_problems(
    nodes: Iterable[NodeDefinition], registry: Mapping[str, object] | None
) -> list[Problem]:
    """Params of typed nodes (and batch items' `workerParams`) that do not match their model."""
    if not registry:
        return []
    found: list[Problem] = []
    for index, node in enumerate(nodes):
        checks: list[tuple[str, object, str]] = [(node.uses, node.params, ".params")]
        if node.uses == BATCH_SCATTER:
            worker = node.params.get("workerUsesKey")
            if isinstance(worker, str):
                item_params = node.params.get("workerParams") or {}
                checks.append((worker, item_params, ".params.workerParams"))
        for key, value, where in checks:
            impl = registry.get(key)
            types = types_of(impl) if impl is not None else None
            if types is None or types.params is None:
                continue
            try:
                types.params.model_validate(value)
            except ValidationError as exc:
                root = f"nodes[{index}]{where}"
                for path, message in _problems(exc, root):
                    found.append(
                        Problem(
                            path,
                            INVALID_PARAMS,
                            f"node {node.id!r}: {key!r} params: {message}",
                        )
                    )
    return found


def params_schemas(registry: Mapping[str, object] | None) -> dict[str, dict[str, Any]]:
    """JSON Schema of each typed implementation's params, by registry key."""
    out: dict[str, dict[str, Any]] = {}
    for key, impl in (registry or {}).items():
        types = types_of(impl)
        if types is not None and types.params is not None:
            out[key] = types.params.model_json_schema(by_alias=True)
    return out


__all__ = [
    "INVALID_PARAMS",
    "NodeTypes",
    "NodeValidationError",
    "param_problems",
    "params_schemas",
    "typed",
    "types_of",
]
