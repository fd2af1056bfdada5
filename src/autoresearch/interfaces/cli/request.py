"""`autoresearch request`: the next request a model would be sent, as it would be sent, and its cost.

Nothing is sent and nothing is written: the snapshot is the one a study takes for its next proposal
on the best (the branch's history, the harness's notes), before any run on the current commit.
"""

from __future__ import annotations

import json

from autoresearch.interfaces.cli.common import workspace_flag
from autoresearch.store.workspace import Workspace


def add_parser(sub) -> None:
    p = sub.add_parser("request", help="the next request a model would be sent (system prompt, cached prefix, "
                                       "changing part) with its size and cost; sends nothing")
    workspace_flag(p)
    p.add_argument("--agent", type=int, default=1, metavar="N", help="the Nth [[agent]] of autoresearch.toml (default 1)")
    p.add_argument("--model", help="price and name it for this model instead of the [agent]'s")
    p.add_argument("--base-url", help="as `run --base-url`: an OpenAI-compatible server")
    p.add_argument("--summary", action="store_true", help="only its size and cost")
    p.add_argument("--json", action="store_true", help="the texts, sizes and costs as JSON, for programs")
    p.set_defaults(handler=command)


def command(args) -> int:
    from autoresearch.core.errors import UserError
    from autoresearch.propose.agent import resolve
    from autoresearch.propose.preview import preview_request

    ws = Workspace.find(args.workspace)
    task = ws.task()
    if not 1 <= args.agent <= len(task.agents):
        raise UserError(f"--agent {args.agent}: autoresearch.toml has {len(task.agents)} agent(s)")
    settings = resolve(task.agents[args.agent - 1], model=args.model, base_url=args.base_url)
    preview = preview_request(_next_snapshot(ws, task), settings)
    if args.json:
        print(json.dumps(preview.as_dict(), indent=2))
        return 0
    if not args.summary:
        print(f"===== system prompt =====\n{preview.system}\n\n===== user message: the stable part (cached from "
              f"one request to the next) =====\n{preview.stable}\n===== user message: the changing part "
              f"=====\n{preview.changing}\n\n=====")
    print(preview.summary())
    return 0


def _next_snapshot(ws: Workspace, task):
    """What the study would show a proposer next: on the best, or on HEAD before any experiment."""
    from autoresearch.study.proposals import Choices, Proposals
    from autoresearch.study.snapshot import Snapshots

    snapshots = Snapshots(ws, task)
    if not ws.has_ledger():
        return snapshots.take(ws.head(), [])
    branch = ws.branch()
    with ws.open_ledger(readonly=True) as ledger:
        best = ledger.incumbent(branch)
        if best is None:
            return snapshots.take(ws.head(), [])
        proposals = Proposals({}, ledger, task, branch, snapshots, Choices(stagnation_after=task.study.stagnation_after))
        return proposals.snapshot(best.commit, [])
