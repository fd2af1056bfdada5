"""`autoresearch verify`: re-measure the study's claims before anyone believes them."""

from __future__ import annotations

import json
from contextlib import ExitStack

from autoresearch.core.errors import UserError
from autoresearch.interfaces.cli.common import live_view, live_view_wanted, stderr, workspace_flag
from autoresearch.store.workspace import Workspace


def add_parser(sub) -> None:
    p = sub.add_parser("verify", help="re-measure the study's claims: records checked, baseline vs best rerun "
                                      "interleaved on validation and the held-out test split")
    workspace_flag(p)
    p.add_argument("--runs", type=int, default=3, help="runs of each side (default 3)")
    p.add_argument("--baseline", default="", help="a commit or ref to measure against (default: the baseline)")
    p.add_argument("--best", default="", help="a commit or ref to measure (default: the best kept commit)")
    p.add_argument("--ablate", action="store_true", help="also the best with each kept change taken out in turn")
    p.add_argument("--records-only", action="store_true", help="check the record only, run nothing")
    p.add_argument("--json", action="store_true", help="the whole result as JSON, for programs")
    p.add_argument("--plain", action="store_true", help="plain lines instead of the live view")
    p.set_defaults(handler=command)


def command(args) -> int:
    from autoresearch.core.events import EventBus
    from autoresearch.execute.local import LocalExecutor, plan_slots
    from autoresearch.interfaces.plain import PlainPrinter
    from autoresearch.interfaces.verification import render
    from autoresearch.study.verify import Verifier, VerifyOptions

    if args.runs < 1:
        raise UserError(f"--runs must be at least 1, not {args.runs}")
    ws = Workspace.find(args.workspace)
    task = ws.task()
    bus = EventBus()
    options = VerifyOptions(runs=args.runs, baseline=args.baseline, best=args.best, ablate=args.ablate,
                            records_only=args.records_only)
    with ExitStack() as stack:
        if not args.json:
            live = live_view_wanted(args)
            bus.subscribe(stack.enter_context(live_view(task)) if live else PlainPrinter(write=stderr))
        result = Verifier(ws, LocalExecutor(ws, task, plan_slots(1)), options, bus).run()
    print(json.dumps(result, indent=2) if args.json else "\n".join(render(result)))
    return 1 if result["problems"] else 0
