"""The `jobstatus` command line: `rebuild`, `local`, `token`, `demo`, `smoke`, `jobs`.

Each subcommand lives beside the code it drives and registers itself here; their heavy imports
(moto, rich, PyJWT) stay inside the commands, out of every Lambda path.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Final

# Modules that define `register(subparsers)`; each parser sets `run=callable(args) -> int`.
COMMAND_MODULES: Final = ("ops.rebuild_cli", "local.cli", "ops.smoke", "ops.jobs_cli")


def version() -> str:
    """The installed package's version (`pyproject.toml`), or "unknown" when run from a bare checkout."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("jobstatus")
    except PackageNotFoundError:
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    """The parser with every registered subcommand."""
    parser = argparse.ArgumentParser(prog="jobstatus", description="Job-status service tools.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one subcommand; its return value is the exit code."""
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    return int(args.run(args))


if __name__ == "__main__":
    raise SystemExit(main())
