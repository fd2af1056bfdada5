"""Recovery: what the next start does after a harness was killed (even with kill -9).

An experiment left `running` is closed as a crash ("interrupted"), never run again; the processes
it left are killed; the branch is moved back if it still points at a commit that was never judged.
"""

from __future__ import annotations

from autoresearch.core.records import Outcome
from autoresearch.core.status import Status
from autoresearch.run.process import kill_recorded
from autoresearch.store import gitops
from autoresearch.store.ledger import Ledger
from autoresearch.store.results_tsv import write_results_tsv
from autoresearch.store.workspace import Workspace

INTERRUPTED = "interrupted: the harness stopped during this experiment"


def recover_interrupted(ws: Workspace, ledger: Ledger, metric: str) -> list[int]:
    """Close experiments left running by a harness that was killed (results.tsv's second column is named
    `metric`, the task's). Returns the ids it closed."""
    ws = Workspace.of(ws)
    closed = []
    for exp in ledger.running():
        pgid = ws.run_paths(exp.id).pgid
        if pgid.exists():  # the training processes may have outlived the harness
            kill_recorded(pgid)
        if exp.commit and not exp.attempt_ref:  # killed between its commit and its attempt ref
            ws.save_attempt(exp.id, exp.commit)
        _move_branch_back(ws, exp)
        ledger.finish(exp.id, Outcome(Status.CRASH, None, None, {}, INTERRUPTED))
        closed.append(exp.id)
    if closed:
        write_results_tsv(ws.root / "results.tsv", ledger.experiments(), metric)
    return closed


def _move_branch_back(ws: Workspace, exp) -> None:
    """The branch may stand on the interrupted experiment's commit (committed by `exp`, or moved to
    a keep whose record was not written yet): put it back on the parent."""
    head, branch = ws.head(), ws.branch()
    if branch != exp.branch:
        return
    unjudged = exp.commit if exp.commit and exp.commit != exp.parent else None
    if unjudged is None and exp.commit is None and head != exp.parent:
        # killed between the commit and recording it: HEAD is that commit if its parent is ours
        if gitops.git(ws.root, "rev-parse", "HEAD^", check=False) == exp.parent:
            unjudged = head
            ws.save_attempt(exp.id, head)
    if unjudged and head == unjudged:
        ws.reset_branch(exp.parent)
