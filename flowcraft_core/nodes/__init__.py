"""Built-in nodes, registered under reserved names (SPEC 5)."""

from __future__ import annotations

from typing import Any

from .loop import loop_controller

BUILTINS: dict[str, Any] = {
    "loop-controller": loop_controller,
}

__all__ = ["BUILTINS"]
