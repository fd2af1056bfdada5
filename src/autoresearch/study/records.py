"""Records: what the ledger keeps of one candidate, from its registration to its decision.

register (its commit kept reachable by an attempt ref, its diff, what it is judged against) ->
weigh each run as it comes in (recorded, then judged with all its runs so far) -> close with the
decision (ledger and results.tsv). Each step is recorded before the next one starts, so a harness
killed at any moment leaves a state that `recovery.recover_interrupted` puts right.
"""

from __future__ import annotations

import shutil
import statistics

from autoresearch.core.abort import Verdict
from autoresearch.core.budget import OVER_BUDGET, over_budget, warmup_bound
from autoresearch.core.judge import Decision, Evidence, judge, pooled_sigma
from autoresearch.core.machine import MACHINE_RERUNS, machine_slowdown
from autoresearch.core.records import Experiment, Outcome, RunRecord
from autoresearch.core.results import ExperimentResult
from autoresearch.core.status import Status
from autoresearch.core.task import Task
from autoresearch.run.trial import TrialResult
from autoresearch.store.ledger import Ledger
from autoresearch.store.results_tsv import write_results_tsv
from autoresearch.store.workspace import RunPaths, Workspace
from autoresearch.study.candidate import Candidate, Launch


class Recorder:
    """The ledger's side of candidates: one writer, the study's thread."""

    def __init__(self, ws: Workspace, ledger: Ledger, task: Task):
        self.ws, self.ledger, self.task = ws, ledger, task

    def register(self, exp_id: int, commit: str, against: Experiment | None, launch: Launch | None = None) -> Candidate:
        """Record the started experiment's commit (kept reachable by an attempt ref) and what it is judged against."""
        ws, ledger = self.ws, self.ledger
        row = ledger.get(exp_id)
        ref = ws.save_attempt(exp_id, commit)
        diff = ws.diff(row.parent, commit)
        ledger.set_commit(exp_id, commit, diff, ref)
        incumbent_runs = (ledger.run_metrics(against.id) or [against.metric]) if against else []
        ws.run_dir(exp_id).mkdir(parents=True, exist_ok=True)
        ledger.set_log_path(exp_id, ws.relative(ws.run_paths(exp_id).log))
        followed = dict(proposal=launch.proposal, replay_of=launch.replay_of, fix_attempt=launch.fix_attempt) \
            if launch else {}
        return Candidate(exp_id, commit, row.parent, row.description, diff, against, incumbent_runs,
                         proposer=row.proposer, **followed)

    def next_run(self, candidate: Candidate) -> RunPaths:
        return self.ws.run_paths(candidate.exp_id, candidate.runs + 1)

    def weigh(self, candidate: Candidate, trial: TrialResult) -> Decision:
        """Record one run of the candidate and judge all its runs so far (keep, discard, crash or rerun).
        A run the machine slowed into its timeout (or a memory kill) is run again, once: not a bug."""
        failure = trial.failure or self._over_budget(candidate, trial)
        candidate.over_budget = failure if failure.startswith(OVER_BUDGET) else ""
        metric = trial.metric if not failure else None  # an over-budget score is information, never a measurement
        slowed = self._slowed(candidate, trial) if failure else ""
        self._record_run(candidate, trial, metric)
        if slowed:
            candidate.machine_reruns += 1
            return Decision(Status.RERUN, f"{failure}, but {slowed}")
        return judge(self.task, candidate.evidence, failure)

    def _slowed(self, candidate: Candidate, trial: TrialResult) -> str:
        """Why this failed run is the machine's doing (its throughput against the same code's or the best's)."""
        if candidate.machine_reruns >= MACHINE_RERUNS:
            return ""
        ids = [candidate.exp_id] + ([candidate.against.id] if candidate.against else [])
        curves = self.ledger.curves(ids)
        mine = curves.get(candidate.exp_id, {})
        now = _throughput(mine.get(candidate.runs + 1, []))
        earlier = [_throughput(points) for run, points in mine.items() if run <= candidate.runs]
        best = candidate.against.metrics.get("tokens_per_sec") if candidate.against else None
        if not isinstance(best, (int, float)) and candidate.against:
            best = max((_throughput(p) or 0.0 for p in curves.get(candidate.against.id, {}).values()), default=None)
        reference = max([t for t in earlier if t] or [best or 0.0])
        return machine_slowdown(trial.run.timed_out, trial.run.killed_for, now, reference)

    def stopped_early(self, candidate: Candidate, trial: TrialResult, verdict: Verdict) -> Decision:
        """A first run stopped by the early-abort rule: recorded, and a discard that says why."""
        candidate.stopped_at = verdict.fraction
        self._record_run(candidate, trial, None)
        return Decision(Status.DISCARD, verdict.reason)

    def _record_run(self, candidate: Candidate, trial: TrialResult, metric: float | None) -> None:
        """One run into the ledger (with the slot or node that ran it), and the evidence of all runs so far."""
        ledger = self.ledger
        ledger.guard()  # a run outside a sandbox could have deleted the record: put it back now
        run = trial.run
        candidate.runs += 1
        candidate.wall += trial.wall_seconds
        candidate.last = trial
        where = {**trial.summary, "slot": candidate.slot}
        ledger.add_run(candidate.exp_id, candidate.runs, RunRecord(metric, where, run.exit_code, run.timed_out,
                                                                   run.wall_seconds, self.ws.relative(run.log_path)))
        if metric is not None:
            candidate.values.append(metric)
        sigma, dof = pooled_sigma(ledger.run_groups())
        memory = trial.summary.get("peak_vram_mb", 0.0)
        candidate.evidence = Evidence(candidate.values, candidate.incumbent_runs, sigma, dof, candidate.change,
                                      memory / 1024 if isinstance(memory, float) else 0.0, candidate.lines_added,
                                      candidate.lines_removed)

    def _over_budget(self, candidate: Candidate, trial: TrialResult) -> str:
        """The harness's clock against the budget; the warm-up bound comes from the branch's baseline."""
        task = self.task
        if trial.budget is None:
            return ""
        bound = None
        if candidate.against is not None:
            bound = warmup_bound(task.budget.warmup_seconds, self.ledger.baseline_warmups(candidate.against.branch))
        reason = over_budget(trial.budget, task.budget.kind, task.budget.value, bound)
        if reason:
            trial.summary[f"over_budget_{task.metric}"] = trial.metric  # what it would have scored: information only
        return reason

    def close(self, candidate: Candidate, decision: Decision) -> ExperimentResult:
        """Record the decision; results.tsv (its second column named after the task's metric) follows."""
        ws = self.ws
        for handoff in ws.run_dir(candidate.exp_id).glob("*.handoff"):  # models are large: keep a kept one's first
            if decision.status != Status.KEEP or handoff.name != ws.run_paths(candidate.exp_id).handoff.name:
                shutil.rmtree(handoff, ignore_errors=True)
        mean = statistics.fmean(candidate.values) if candidate.values else None
        summary = _summary(candidate, decision)
        incumbent_metric = statistics.fmean(candidate.incumbent_runs) if candidate.incumbent_runs else None
        trial = candidate.last
        self.ledger.finish(candidate.exp_id, Outcome(decision.status, mean, incumbent_metric, summary, decision.reason,
                                                     trial.run.exit_code, trial.run.timed_out, candidate.wall))
        write_results_tsv(ws.root / "results.tsv", self.ledger.experiments(), self.task.metric)
        return ExperimentResult(id=candidate.exp_id, status=Status(decision.status), metric=mean,
                                incumbent=incumbent_metric, reason=decision.reason, commit=candidate.commit,
                                parent=candidate.parent, description=candidate.description, metrics=summary,
                                wall_seconds=candidate.wall, log_path=ws.run_paths(candidate.exp_id).log,
                                runs=candidate.runs, slot=candidate.slot, proposer=candidate.proposer)


def _throughput(points: list) -> float | None:
    """The last tokens/s a run reported in its progress lines."""
    rates = [p.tokens_per_second for p in points if p.tokens_per_second]
    return rates[-1] if rates else None


def _summary(candidate: Candidate, decision: Decision) -> dict:
    """What the experiment's record says of it: its last run's summary and the judge's evidence."""
    trial, evidence = candidate.last, candidate.evidence
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
    return summary
