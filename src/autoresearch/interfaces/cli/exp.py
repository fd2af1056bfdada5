"""`autoresearch exp`: one experiment by hand, judged and recorded like the loop's."""

from __future__ import annotations

from contextlib import ExitStack

from autoresearch.core.status import Status
from autoresearch.interfaces.cli.common import (
    live_view,
    live_view_wanted,
    say_what_the_sandbox_does_not_enforce,
    workspace_flag,
)
from autoresearch.store.workspace import Workspace


def add_parser(sub) -> None:
    p = sub.add_parser("exp", help="run the current train.py as one experiment: commit, train, judge, record")
    p.add_argument("-m", "--message", required=True, help="one line: what this experiment changes")
    workspace_flag(p)
    p.add_argument("--allow-empty", action="store_true", help="run even if nothing changed (a rerun of the same code)")
    p.add_argument("-q", "--quiet", action="store_true", help="do not stream the training output")
    p.add_argument("--plain", action="store_true", help="plain lines instead of the live view (default when not a terminal)")
    p.set_defaults(handler=command)


def command(args) -> int:
    from autoresearch.core.events import EventBus
    from autoresearch.interfaces.plain import result_line
    from autoresearch.run.trial import log_tail
    from autoresearch.study.manual import run_experiment

    ws = Workspace.find(args.workspace)
    task = ws.task()
    say_what_the_sandbox_does_not_enforce(task)
    bus = EventBus()
    with ExitStack() as stack:
        if not args.quiet and live_view_wanted(args):
            bus.subscribe(stack.enter_context(live_view(task)))
        elif not args.quiet:
            bus.subscribe(_print_output_and_notes)
        result = run_experiment(ws, args.message, allow_empty=args.allow_empty, task=task, bus=bus)
    print(f"{result_line(result)} | commit {result.commit[:7]}")
    if result.status == Status.CRASH and args.quiet:
        print(log_tail(result.log_path, 15))
    return 0


def _print_output_and_notes(event) -> None:
    """`exp` in plain mode: the training output as it comes, and the harness's notes."""
    from autoresearch.core.events import Note, RunOutput

    if isinstance(event, RunOutput):
        print(event.line, flush=True)
    elif isinstance(event, Note):
        print(event.text, flush=True)
