"""The registry of node implementations, keyed by the names blueprints `use`."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar

from pydantic import BaseModel

from .errors import RegistryError
from .node import BaseNode
from .reserved import BUILTIN_KEYS
from .typed import typed

T = TypeVar("T")


def check_implementation(name: str, impl: object) -> None:
    """A class node (BaseNode subclass) or any other callable; nothing else."""
    if inspect.isclass(impl):
        if issubclass(impl, BaseNode):
            return
        raise RegistryError(
            f"implementation {name!r}: class {impl.__name__} is not a BaseNode subclass", name=name
        )
    if not callable(impl):
        raise RegistryError(
            f"implementation {name!r} is neither callable nor a BaseNode subclass "
            f"(got {type(impl).__name__})",
            name=name,
        )


def check_name(name: object) -> str:
    if not isinstance(name, str) or not name:
        raise RegistryError(f"implementation name must be a non-empty string, got {name!r}")
    if name in BUILTIN_KEYS:
        raise RegistryError(f"{name!r} is a reserved built-in node name", name=name)
    return name


class NodeRegistry(Mapping[str, Any]):
    """Name -> implementation. Built-in names are reserved; re-registering needs `replace=True`."""

    def __init__(self, items: Mapping[str, Any] | None = None) -> None:
        self._items: dict[str, Any] = {}
        if items:
            for name, impl in items.items():
                self.register(name, impl)

    def register(
        self,
        name: str,
        impl: Any,
        *,
        replace: bool = False,
        params: type[BaseModel] | None = None,
        input: type[BaseModel] | None = None,
        output: type[BaseModel] | None = None,
    ) -> None:
        """Bind `name`; `params`/`input`/`output` models make it a typed node (see `typed`)."""
        check_name(name)
        check_implementation(name, impl)
        impl = typed(impl, params=params, input=input, output=output)
        if name in self._items and not replace:
            raise RegistryError(
                f"implementation {name!r} is already registered (pass replace=True)", name=name
            )
        self._items[name] = impl

    def node(
        self,
        name: str | None = None,
        *,
        params: type[BaseModel] | None = None,
        input: type[BaseModel] | None = None,
        output: type[BaseModel] | None = None,
    ) -> Callable[[T], T]:
        """Decorator: register under `name`, else `module.qualname`; models as in `register`.

        Returns the implementation unchanged (the registry holds the typed wrapper)."""

        def decorate(impl: T) -> T:
            key = name if name is not None else default_key(impl)
            self.register(key, impl, params=params, input=input, output=output)
            return impl

        return decorate

    def update(self, other: Mapping[str, Any], *, replace: bool = False) -> None:
        for name, impl in other.items():
            self.register(name, impl, replace=replace)

    def __getitem__(self, name: str) -> Any:
        return self._items[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"NodeRegistry({sorted(self._items)!r})"


def default_key(impl: object) -> str:
    """`module.qualname`: stable across processes (unlike a counter)."""
    module = getattr(impl, "__module__", None) or "unknown"
    qualname = getattr(impl, "__qualname__", None) or getattr(impl, "__name__", None)
    if not qualname:
        raise RegistryError(f"cannot derive a registry key for {impl!r}; give a name")
    return f"{module}.{qualname}"


def as_registry(registry: Mapping[str, Any] | None) -> Mapping[str, Any]:
    """Accept a NodeRegistry or any mapping; a plain mapping may not claim built-in names."""
    if registry is None:
        return {}
    if isinstance(registry, NodeRegistry):
        return registry
    if not isinstance(registry, Mapping):
        raise RegistryError(f"registry must be a mapping, got {type(registry).__name__}")
    for name, impl in registry.items():
        check_name(name)
        check_implementation(name, impl)
    return registry


__all__ = ["NodeRegistry", "as_registry", "default_key"]
