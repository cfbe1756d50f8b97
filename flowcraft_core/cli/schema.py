"""`flowcraft schema`: print the blueprint JSON Schema (for editors and CI checks)."""

from __future__ import annotations

import argparse

from flowcraft_core.blueprint import blueprint_json_schema

from ._common import ExitCode, add_registry_option, dumps, load_registry, write_output


def register(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
) -> None:
    parser = subparsers.add_parser(
        "schema",
        parents=[common],
        help="print the blueprint JSON Schema",
        description="Print the JSON Schema of the blueprint format. With --registry, the "
        "params of typed nodes (registered with pydantic models) are described too.",
    )
    add_registry_option(parser)
    parser.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")
    parser.set_defaults(handler=schema_command)


def schema_command(args: argparse.Namespace) -> int:
    registry = load_registry(args.registry) if args.registry else None
    write_output(dumps(blueprint_json_schema(registry), indent=2) + "\n", args.output)
    return ExitCode.OK


__all__ = ["register", "schema_command"]
