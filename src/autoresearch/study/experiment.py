"""Experiment: one candidate run end to end.

commit the editable files -> run under budget and timeout -> read the summary -> judge against
the incumbent -> keep (branch stays) or discard (branch moves back; the attempt stays under
refs/autoresearch/attempts/) -> record in the ledger and results.tsv.

Each step is recorded before the next one starts, so a harness killed at any moment leaves a
state that `recover_interrupted` puts right on the next start.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import statistics
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from autoresearch.store import gitops
from autoresearch.core.judge import Decision, Evidence, change_size, classify_change, judge, pooled_sigma
from autoresearch.store.ledger import Experiment, Ledger, write_results_tsv
from autoresearch.run.process import kill_recorded
from autoresearch.core.task import Task, load_task
from autoresearch.run.trial import STATE_DIR, TrialResult, log_tail, run_trial  # noqa: F401 (log_tail: re-exported)



class ExperimentError(RuntimeError):
    """The experiment could not start; the message is one line that says what to do."""


@dataclass
class ExperimentResult:
    id: int
    status: str
    metric: float | None
    incumbent: float | None
    reason: str
    commit: str
    parent: str
    description: str
    metrics: dict
    wall_seconds: float
    log_path: Path
    runs: int = 1


def ledger_for(workspace: Path) -> Ledger:
    return Ledger(workspace / STATE_DIR / "ledger.sqlite")


@contextmanager
def workspace_lock(workspace: Path) -> Iterator[None]:
    """One experiment at a time per workspace (a second `exp` gets a clear error, not a race)."""
    lock_path = workspace / STATE_DIR / "lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            holder = lock.read().strip() or "another process"
            raise ExperimentError(f"another experiment is running in {workspace} ({holder}); wait for it or stop it") from None
        lock.truncate(0)
        lock.write(f"pid {os.getpid()}")
        lock.flush()
        yield


def run_experiment(workspace: Path, description: str, *, allow_empty: bool = False,
                   on_line: Callable[[str], None] | None = None, task: Task | None = None,
                   proposal_id: int | None = None) -> ExperimentResult:
    workspace = Path(workspace).resolve()
    task = task or load_task(workspace)
    description = " ".join(description.split())
    if not description:
        raise ExperimentError("an experiment needs a description: autoresearch exp -m \"what changed\"")
    with workspace_lock(workspace):
        ledger = ledger_for(workspace)
        try:
            recover_interrupted(workspace, ledger)
            return _run_locked(workspace, task, ledger, description, allow_empty, on_line, proposal_id)
        finally:
            ledger.close()


def _run_locked(workspace: Path, task: Task, ledger: Ledger, description: str, allow_empty: bool,
                on_line, proposal_id: int | None) -> ExperimentResult:
    touched = gitops.changed_paths(workspace, task.frozen)
    if touched:
        raise ExperimentError(f"frozen file changed: {', '.join(touched)}; restore it with `git checkout -- {' '.join(touched)}`")
    branch = gitops.current_branch(workspace)
    parent = gitops.head(workspace)
    incumbent = ledger.incumbent(branch)
    changed = gitops.changed_paths(workspace, task.editable)
    if not changed and incumbent is not None and not allow_empty:
        raise ExperimentError(f"nothing changed in {', '.join(task.editable)} since the last experiment: "
                              "edit it first, or pass --allow-empty to rerun the same code")

    exp_id = ledger.start(branch, parent, description, proposal_id)
    if changed or incumbent is not None:
        commit = gitops.commit_paths(workspace, task.editable, description, allow_empty=not changed)
    else:
        commit = parent  # the baseline runs the code as the workspace was made
    candidate = register(workspace, ledger, exp_id, commit, parent, description, incumbent)
    while True:  # one run, then reruns of the same commit while the judge asks for them
        log_path = candidate.next_log_path()
        trial = run_trial(workspace, task, commit, log_path, on_line)
        decision = weigh(workspace, task, ledger, candidate, trial)
        if decision.status != "rerun":
            break
        if on_line is not None:
            on_line(f"[autoresearch] {decision.reason}: running it again")
    if decision.status != "keep" and commit != parent:
        gitops.reset_branch(workspace, parent)
    return close(workspace, ledger, candidate, decision)


@dataclass
class Candidate:
    """An experiment while its runs come in."""
    exp_id: int
    commit: str
    parent: str
    description: str
    diff: str
    incumbent_runs: list[float]  # what it is judged against: its parent's runs
    run_dir: Path
    values: list[float] = field(default_factory=list)  # its valid metrics so far
    runs: int = 0
    wall: float = 0.0
    evidence: Evidence | None = None
    last: TrialResult | None = None

    def __post_init__(self) -> None:  # what the diff is, measured once for all its runs
        self.change = classify_change(self.diff)
        self.lines_added, self.lines_removed = change_size(self.diff)

    def next_log_path(self) -> Path:
        return self.run_dir / ("run.log" if self.runs == 0 else f"run{self.runs + 1}.log")


def register(workspace: Path, ledger: Ledger, exp_id: int, commit: str, parent: str, description: str,
             incumbent: Experiment | None) -> Candidate:
    """Record the candidate's commit (kept reachable by an attempt ref) and what it is judged against."""
    ref = gitops.save_attempt_ref(workspace, f"{exp_id:05d}", commit)
    diff = gitops.diff(workspace, parent, commit) if commit != parent else ""
    ledger.set_commit(exp_id, commit, diff, ref)
    incumbent_runs = (ledger.run_metrics(incumbent.id) or [incumbent.metric]) if incumbent else []
    run_dir = workspace / STATE_DIR / "runs" / f"{exp_id:05d}"
    run_dir.mkdir(parents=True, exist_ok=True)
    ledger.set_log_path(exp_id, str((run_dir / "run.log").relative_to(workspace)))
    return Candidate(exp_id, commit, parent, description, diff, incumbent_runs, run_dir)


def weigh(workspace: Path, task: Task, ledger: Ledger, candidate: Candidate, trial: TrialResult) -> Decision:
    """Record one run of the candidate and judge all its runs so far (keep, discard, crash or rerun)."""
    ledger.guard()  # a run outside a sandbox could have deleted the record: put it back now
    run = trial.run
    candidate.runs += 1
    candidate.wall += trial.wall_seconds
    candidate.last = trial
    ledger.add_run(candidate.exp_id, candidate.runs, metric=trial.metric, metrics=trial.summary, exit_code=run.exit_code,
                   timed_out=run.timed_out, wall_seconds=run.wall_seconds, log_path=str(run.log_path.relative_to(workspace)))
    if trial.metric is not None and not trial.failure:
        candidate.values.append(trial.metric)
    sigma, dof = pooled_sigma(ledger.run_groups())
    memory = trial.summary.get("peak_vram_mb", 0.0)
    candidate.evidence = Evidence(candidate.values, candidate.incumbent_runs, sigma, dof, candidate.change,
                                  memory / 1024 if isinstance(memory, float) else 0.0, candidate.lines_added,
                                  candidate.lines_removed)
    return judge(task, candidate.evidence, trial.failure)


def close(workspace: Path, ledger: Ledger, candidate: Candidate, decision: Decision) -> ExperimentResult:
    """Record the decision; results.tsv follows."""
    for handoff in candidate.run_dir.glob("*.handoff"):  # models are large: keep the first run's of a kept commit only
        if decision.status != "keep" or handoff.name != "run.handoff":
            shutil.rmtree(handoff, ignore_errors=True)
    trial, evidence = candidate.last, candidate.evidence
    mean = statistics.fmean(candidate.values) if candidate.values else None
    summary = dict(trial.summary)
    summary.update(harness_wall_seconds=round(candidate.wall, 1), runs=candidate.runs, run_metrics=candidate.values,
                   sigma=evidence.sigma, margin=decision.margin, change=evidence.change,
                   lines_added=evidence.lines_added, lines_removed=evidence.lines_removed, provenance=trial.provenance)
    if trial.invalid:
        summary["invalid"] = trial.failure
    incumbent_metric = statistics.fmean(candidate.incumbent_runs) if candidate.incumbent_runs else None
    ledger.finish(candidate.exp_id, status=decision.status, metric=mean, incumbent=incumbent_metric, metrics=summary,
                  reason=decision.reason, exit_code=trial.run.exit_code, timed_out=trial.run.timed_out,
                  wall_seconds=candidate.wall)
    write_results_tsv(workspace / "results.tsv", ledger.experiments())
    return ExperimentResult(id=candidate.exp_id, status=decision.status, metric=mean, incumbent=incumbent_metric,
                            reason=decision.reason, commit=candidate.commit, parent=candidate.parent,
                            description=candidate.description, metrics=summary, wall_seconds=candidate.wall,
                            log_path=candidate.run_dir / "run.log", runs=candidate.runs)


def recover_interrupted(workspace: Path, ledger: Ledger) -> list[int]:
    """Close experiments left 'running' by a harness that was killed, and move the branch back
    if it still points at a commit that was never judged. Returns the ids it closed."""
    closed = []
    for exp in ledger.running():
        pgid_file = workspace / STATE_DIR / "runs" / f"{exp.id:05d}" / "pgid"
        if pgid_file.exists():  # the training processes may have outlived the harness
            kill_recorded(pgid_file)
        head = gitops.head(workspace)
        branch = gitops.current_branch(workspace)
        unjudged = exp.commit if exp.commit and exp.commit != exp.parent else None
        if unjudged is None and exp.commit is None and head != exp.parent and branch == exp.branch:
            # killed between the commit and recording it: HEAD is that commit if its parent is ours
            if gitops.git(workspace, "rev-parse", "HEAD^", check=False) == exp.parent:
                unjudged = head
                gitops.save_attempt_ref(workspace, f"{exp.id:05d}", head)
        if unjudged and head == unjudged and branch == exp.branch:
            gitops.reset_branch(workspace, exp.parent)
        ledger.finish(exp.id, status="crash", metric=None, incumbent=None, metrics={},
                      reason="interrupted: the harness stopped during this experiment", exit_code=None,
                      timed_out=False, wall_seconds=None)
        closed.append(exp.id)
    if closed:
        write_results_tsv(workspace / "results.tsv", ledger.experiments())
    return closed
