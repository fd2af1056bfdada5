"""Records: one candidate from its registration to its recorded decision.

register (its commit kept reachable by an attempt ref, its diff, what it is judged against) ->
weigh each run as it comes in (recorded, then judged with all its runs so far) -> close with the
decision (ledger and results.tsv). Each step is recorded before the next one starts, so a harness
killed at any moment leaves a state that `recovery.recover_interrupted` puts right.
"""

from __future__ import annotations

import shutil
import statistics
from dataclasses import dataclass, field

from autoresearch.core.abort import Verdict
from autoresearch.core.budget import OVER_BUDGET, over_budget, warmup_bound
from autoresearch.core.judge import Decision, Evidence, change_size, classify_change, judge, pooled_sigma
from autoresearch.core.records import Experiment, Outcome, RunRecord
from autoresearch.core.results import ExperimentResult
from autoresearch.core.status import Status
from autoresearch.core.task import Task
from autoresearch.run.trial import TrialResult
from autoresearch.store.ledger import Ledger
from autoresearch.store.results_tsv import write_results_tsv
from autoresearch.store.workspace import RunPaths, Workspace

SEEDS_PER_EXPERIMENT = 1000  # seeds k * 1000 + 1, ... belong to experiment k where its runs need seeds of their own


@dataclass
class Candidate:
    """An experiment while its runs come in."""
    exp_id: int
    commit: str
    parent: str  # the commit it was made on
    description: str
    diff: str
    against: Experiment | None  # the incumbent it is judged against (None for a baseline)
    incumbent_runs: list[float]  # that incumbent's runs
    proposer: str = ""
    values: list[float] = field(default_factory=list)  # its valid metrics so far
    runs: int = 0
    wall: float = 0.0
    evidence: Evidence | None = None
    last: TrialResult | None = None
    slot: str = ""
    over_budget: str = ""  # why its last run did not count: over the budget by the harness's clock
    stopped_at: float | None = None  # the share of the budget at which early abort stopped it

    def __post_init__(self) -> None:  # what the diff is, measured once for all its runs
        self.change = classify_change(self.diff)
        self.lines_added, self.lines_removed = change_size(self.diff)

    def seed(self, run: int) -> int:
        """The harness's seed of its run `run` (1, 2, ...): seed k for run k, so that run k of a candidate
        and of its incumbent share a seed. A change of seeds or comments alone is pooled with its parent's
        runs as the same code: its runs take seeds of their own, or they would repeat the parent's."""
        return run if not self.change else SEEDS_PER_EXPERIMENT * self.exp_id + run


def register(ws: Workspace, ledger: Ledger, exp_id: int, commit: str, against: Experiment | None) -> Candidate:
    """Record the started experiment's commit (kept reachable by an attempt ref) and what it is judged against."""
    row = ledger.get(exp_id)
    ref = ws.save_attempt(exp_id, commit)
    diff = ws.diff(row.parent, commit)
    ledger.set_commit(exp_id, commit, diff, ref)
    incumbent_runs = (ledger.run_metrics(against.id) or [against.metric]) if against else []
    ws.run_dir(exp_id).mkdir(parents=True, exist_ok=True)
    ledger.set_log_path(exp_id, ws.relative(ws.run_paths(exp_id).log))
    return Candidate(exp_id, commit, row.parent, row.description, diff, against, incumbent_runs, proposer=row.proposer)


def next_run(ws: Workspace, candidate: Candidate) -> RunPaths:
    return ws.run_paths(candidate.exp_id, candidate.runs + 1)


def weigh(ws: Workspace, task: Task, ledger: Ledger, candidate: Candidate, trial: TrialResult) -> Decision:
    """Record one run of the candidate and judge all its runs so far (keep, discard, crash or rerun)."""
    failure = trial.failure or _over_budget(task, ledger, candidate, trial)
    candidate.over_budget = failure if failure.startswith(OVER_BUDGET) else ""
    metric = trial.metric if not failure else None  # an over-budget score is information, never a measurement
    _record_run(ws, ledger, candidate, trial, metric)
    return judge(task, candidate.evidence, failure)


def stopped_early(ws: Workspace, ledger: Ledger, candidate: Candidate, trial: TrialResult, verdict: Verdict) -> Decision:
    """A first run stopped by the early-abort rule: recorded, and a discard that says why."""
    candidate.stopped_at = verdict.fraction
    _record_run(ws, ledger, candidate, trial, None)
    return Decision(Status.DISCARD, verdict.reason)


def _record_run(ws: Workspace, ledger: Ledger, candidate: Candidate, trial: TrialResult, metric: float | None) -> None:
    """One run into the ledger (with the slot or node that ran it), and the evidence of all runs so far."""
    ledger.guard()  # a run outside a sandbox could have deleted the record: put it back now
    run = trial.run
    candidate.runs += 1
    candidate.wall += trial.wall_seconds
    candidate.last = trial
    where = {**trial.summary, "slot": candidate.slot}
    ledger.add_run(candidate.exp_id, candidate.runs, RunRecord(metric, where, run.exit_code, run.timed_out,
                                                               run.wall_seconds, ws.relative(run.log_path)))
    if metric is not None:
        candidate.values.append(metric)
    sigma, dof = pooled_sigma(ledger.run_groups())
    memory = trial.summary.get("peak_vram_mb", 0.0)
    candidate.evidence = Evidence(candidate.values, candidate.incumbent_runs, sigma, dof, candidate.change,
                                  memory / 1024 if isinstance(memory, float) else 0.0, candidate.lines_added,
                                  candidate.lines_removed)


def _over_budget(task: Task, ledger: Ledger, candidate: Candidate, trial: TrialResult) -> str:
    """The harness's clock against the budget; the warm-up bound comes from the branch's baseline."""
    if trial.budget is None:
        return ""
    bound = None
    if candidate.against is not None:
        bound = warmup_bound(task.budget.warmup_seconds, ledger.baseline_warmups(candidate.against.branch))
    reason = over_budget(trial.budget, task.budget.kind, task.budget.value, bound)
    if reason:
        trial.summary[f"over_budget_{task.metric}"] = trial.metric  # what it would have scored: information only
    return reason


def close(ws: Workspace, ledger: Ledger, candidate: Candidate, decision: Decision, metric: str) -> ExperimentResult:
    """Record the decision; results.tsv (its second column named `metric`, the task's) follows."""
    for handoff in ws.run_dir(candidate.exp_id).glob("*.handoff"):  # models are large: keep a kept one's first only
        if decision.status != Status.KEEP or handoff.name != ws.run_paths(candidate.exp_id).handoff.name:
            shutil.rmtree(handoff, ignore_errors=True)
    trial, evidence = candidate.last, candidate.evidence
    mean = statistics.fmean(candidate.values) if candidate.values else None
    summary = dict(trial.summary)
    summary.update(harness_wall_seconds=round(candidate.wall, 1), runs=candidate.runs, run_metrics=candidate.values,
                   sigma=evidence.sigma, margin=decision.margin, change=evidence.change,
                   lines_added=evidence.lines_added, lines_removed=evidence.lines_removed, provenance=trial.provenance)
    if trial.invalid:
        summary["invalid"] = trial.failure
    if candidate.over_budget:
        summary["over_budget"] = candidate.over_budget
    if candidate.stopped_at is not None:
        summary["stopped_at"] = candidate.stopped_at
    incumbent_metric = statistics.fmean(candidate.incumbent_runs) if candidate.incumbent_runs else None
    ledger.finish(candidate.exp_id, Outcome(decision.status, mean, incumbent_metric, summary, decision.reason,
                                            trial.run.exit_code, trial.run.timed_out, candidate.wall))
    write_results_tsv(ws.root / "results.tsv", ledger.experiments(), metric)
    return ExperimentResult(id=candidate.exp_id, status=Status(decision.status), metric=mean,
                            incumbent=incumbent_metric, reason=decision.reason, commit=candidate.commit,
                            parent=candidate.parent, description=candidate.description, metrics=summary,
                            wall_seconds=candidate.wall, log_path=ws.run_paths(candidate.exp_id).log,
                            runs=candidate.runs, slot=candidate.slot, proposer=candidate.proposer)
