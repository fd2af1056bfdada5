"""`autoresearch status`: this branch's experiments and the best so far."""

from __future__ import annotations

from autoresearch.interfaces.cli.common import workspace_flag
from autoresearch.store.workspace import Workspace


def add_parser(sub) -> None:
    p = sub.add_parser("status", help="the experiments of this branch and the best so far")
    workspace_flag(p)
    p.set_defaults(handler=command)


def command(args) -> int:
    from autoresearch.store.results_tsv import results_tsv_rows

    ws = Workspace.find(args.workspace)
    branch = ws.branch()
    with ws.open_ledger(readonly=True) as ledger:
        experiments, best = ledger.experiments(branch), ledger.incumbent(branch)
    print(f"branch {branch}: {len(experiments)} experiments")
    for line in results_tsv_rows(experiments, ws.task().metric):
        print(line)
    if best is not None:
        print(f"best: {best.metric:.6f} at {best.commit[:7]} ({best.description})")
    return 0
