"""One experiment run by hand (`autoresearch exp`, the MCP tool `run_experiment`).

The edit is whatever the working tree holds: an outside agent (Claude Code, Codex, a person)
changed the editable files. It is committed on the branch, run and judged by the same machinery
as a study's candidates (one local slot), and the branch moves back unless it is kept.
"""

from __future__ import annotations

from autoresearch.core.errors import UserError
from autoresearch.core.events import EventBus, ExperimentFinished
from autoresearch.core.results import ExperimentResult
from autoresearch.core.settings import StudySettings
from autoresearch.core.status import Status
from autoresearch.core.task import Task
from autoresearch.execute.local import LocalExecutor, plan_slots
from autoresearch.store.gitops import AUTORESEARCH_REFS
from autoresearch.store.workspace import Workspace
from autoresearch.study.curves import CurveWatch
from autoresearch.study.records import Recorder
from autoresearch.study.recovery import recover_interrupted
from autoresearch.study.runs import Runs


class ExperimentError(UserError):
    """The experiment could not start; the message is one line that says what to do."""


def run_experiment(workspace: Workspace, description: str, *, allow_empty: bool = False, task: Task | None = None,
                   bus: EventBus | None = None, proposal_id: int | None = None) -> ExperimentResult:
    ws = Workspace.of(workspace)
    task = task or ws.task()
    description = " ".join(description.split())
    if not description:
        raise ExperimentError("an experiment needs a description: autoresearch exp -m \"what changed\"")
    with ws.lock(), ws.open_ledger() as ledger:
        recover_interrupted(ws, ledger, task.metric)
        changed_files = ws.changed([*task.frozen, *task.editable])  # one look at the working tree for both
        touched = [name for name in changed_files if name in task.frozen]
        if touched:
            raise ExperimentError(f"frozen file changed: {', '.join(touched)}; "
                                  f"restore it with `git checkout -- {' '.join(touched)}`")
        branch, parent = ws.branch(), ws.head()
        incumbent = ledger.incumbent(branch)
        changed = [name for name in changed_files if name in task.editable]
        if not changed and incumbent is not None and not allow_empty:
            raise ExperimentError(f"nothing changed in {', '.join(task.editable)} since the last experiment: "
                                  "edit it first, or pass --allow-empty to rerun the same code")
        exp_id = ledger.start(branch, parent, description, proposal_id)
        if changed or incumbent is not None:
            commit = ws.commit_working_tree(task.editable, description, allow_empty=not changed)
        else:
            commit = parent  # the baseline runs the code as the workspace was made
        executor = LocalExecutor(ws, task, plan_slots(1), coordinator_refs=(f"refs/heads/{branch}", AUTORESEARCH_REFS))
        result = _evaluate(executor, Recorder(ws, ledger, task), (exp_id, commit, incumbent), bus or EventBus())
        if result.status != Status.KEEP and commit != parent:
            ws.reset_branch(parent)
        return result


def _evaluate(executor: LocalExecutor, recorder: Recorder, started: tuple, bus: EventBus) -> ExperimentResult:
    """The started experiment (id, commit, incumbent) run alone to its decision and recorded: the pieces
    a study's candidates go through, with no proposers, no replays and no early abort."""
    exp_id, commit, incumbent = started
    runs = Runs(executor, recorder, CurveWatch(recorder.task, recorder.ledger, recorder.ws.branch(), None), bus)
    try:
        decided = runs.alone(recorder.register(exp_id, commit, incumbent), StudySettings.poll_s)
    finally:
        executor.close()
    result = recorder.close(decided, decided.decision)
    bus.publish(ExperimentFinished(result))
    return result

