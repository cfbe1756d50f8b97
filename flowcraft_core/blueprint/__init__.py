"""Blueprints: the data model, loading and validation, and the JSON Schema export.

A blueprint is loaded once (`load_blueprint`), which validates it completely and compiles its
expressions; the frozen `Blueprint` it returns is what the runtime executes.
"""

from .builder import Flow
from .builtin_params import parse_duration_ms, parse_until
from .loader import load_blueprint
from .model import Blueprint, BlueprintMetadata, EdgeDefinition, NodeConfig, NodeDefinition
from .schema import blueprint_json_schema
from .validate import compile_blueprint_expressions

__all__ = [
    "Blueprint",
    "BlueprintMetadata",
    "EdgeDefinition",
    "Flow",
    "NodeConfig",
    "NodeDefinition",
    "blueprint_json_schema",
    "compile_blueprint_expressions",
    "load_blueprint",
    "parse_duration_ms",
    "parse_until",
]
