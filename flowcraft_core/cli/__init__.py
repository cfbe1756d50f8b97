"""The `flowcraft` command line (SPEC 10): `run`, `validate`, `graph` and `schema`.

Each command group lives in its own module (`run`, `validate`, `graph`, `schema`) and is listed
in `COMMAND_GROUPS`; shared input handling (registries, blueprint directories, contexts, exit
codes) is in `_common`. `main(argv)` returns the exit code instead of exiting, so tests and
embedding programs can call it.
"""

from ._common import CliError, ExitCode
from ._main import COMMAND_GROUPS, build_parser, main

__all__ = ["COMMAND_GROUPS", "CliError", "ExitCode", "build_parser", "main"]
