"""`autoresearch schema`: the JSON schema of autoresearch.toml, for editors and programs."""

from __future__ import annotations

import json
from pathlib import Path

from autoresearch.store.workspace import SCHEMA_FILE


def add_parser(sub) -> None:
    p = sub.add_parser("schema", help="the JSON schema of autoresearch.toml (editors complete and check the file "
                                      "with it: Taplo, Even Better TOML)")
    p.add_argument("-o", "--output", type=Path,
                   help=f"write it to this file (a workspace's autoresearch.toml points to {SCHEMA_FILE})")
    p.set_defaults(handler=command)


def command(args) -> int:
    from autoresearch.core.settings import json_schema

    text = json.dumps(json_schema(), indent=2) + "\n"
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text)
    else:
        print(text, end="")
    return 0
