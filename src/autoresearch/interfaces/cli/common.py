"""What several commands share: the workspace flag, the live view or plain lines, the sandbox warning."""

from __future__ import annotations

import sys
from pathlib import Path


def workspace_flag(p) -> None:
    p.add_argument("-C", "--workspace", type=Path, default=Path("."), help="the workspace (default: here)")


def say_what_the_sandbox_does_not_enforce(task) -> None:
    """Once per command, on stderr: runs without bubblewrap are less isolated (README: Safety)."""
    from autoresearch.run.sandbox import find_sandbox
    missing = find_sandbox(task.sandbox.kind).not_enforced()
    if missing:
        print(f"autoresearch: no bubblewrap sandbox here (Linux: apt install bubblewrap); not enforced: "
              f"{'; '.join(missing)}", file=sys.stderr)


def stderr(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def live_view_wanted(args) -> bool:
    from autoresearch.interfaces.plain import live_view_wanted

    return live_view_wanted(args.plain, getattr(args, "verbose", False))


def live_view(task):
    from autoresearch.interfaces.view import LiveView

    return LiveView(task.budget.value if task.budget.kind == "seconds" else 0.0, metric=task.metric)
