"""`autoresearch history`: every experiment with who proposed it and what that cost."""

from __future__ import annotations

import json

from autoresearch.interfaces.cli.common import workspace_flag
from autoresearch.store.workspace import Workspace


def add_parser(sub) -> None:
    p = sub.add_parser("history", help="every experiment with its proposal and proposer: tokens, cost, latency")
    workspace_flag(p)
    p.add_argument("--json", action="store_true", help="machine-readable, for programs and agents")
    p.add_argument("--all-branches", action="store_true")
    p.set_defaults(handler=command)


def command(args) -> int:
    from autoresearch.interfaces.history import history, render

    ws = Workspace.find(args.workspace)
    task, current = ws.task(), ws.branch()
    branch = None if args.all_branches else current
    with ws.open_ledger(readonly=True) as ledger:  # the briefing: the current branch's, also with --all-branches
        data = history(ledger, branch, task, briefed=current)
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        print("\n".join(render(data)))
    return 0
