"""Command line: `autoresearch init | adopt | prepare | exp | run | verify | export | history | report | dashboard |
mcp | status | request | schema`, one module per command.

It parses arguments, builds what a command needs (a study, its proposers, its executor), subscribes
the views and prints; the work itself lives in the layers below. Each command module imports its
heavy dependencies inside `command`, so `autoresearch --help` stays fast.
"""

from __future__ import annotations

import argparse
import sys

from autoresearch import __version__
from autoresearch.core.errors import UserError
from autoresearch.interfaces.cli import (
    adopt,
    dashboard,
    exp,
    export,
    history,
    init,
    mcp,
    prepare,
    report,
    request,
    run,
    schema,
    status,
    verify,
)

COMMANDS = (init, adopt, prepare, exp, run, verify, export, history, report, dashboard, mcp, status, request, schema)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    try:
        return args.handler(args) or 0
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    except (UserError, ValueError, FileNotFoundError) as exc:  # expected failures: one line, never a traceback
        print(f"autoresearch: {exc}", file=sys.stderr)
        return 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="autoresearch", description="An autonomous research loop for ML code.")
    parser.add_argument("--version", action="version", version=f"autoresearch {__version__}")
    sub = parser.add_subparsers(title="commands")
    for module in COMMANDS:
        module.add_parser(sub)
    return parser
